"""Host-side time helpers (ISO 8601 UTC), built on the portable timeutil."""
import time

import tools  # noqa: F401
import timeutil


def now_iso():
    return timeutil.iso_utc(time.time())


def iso(epoch_s):
    return timeutil.iso_utc(epoch_s)


def parse(text):
    return timeutil.parse_iso(text)
