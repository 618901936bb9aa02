"""How an `umbra` command ends when it cannot do its work: one line on stderr
(`Error: ...`), never a traceback, and an exit status from this table
(docs/console.md "CLI exit codes").

    0    success
    1    the command ran and what it reports failed: the job failed or was
         cancelled, execution diverged from the plan, a fault campaign found a
         violation, the Console refused a request (its status and error shown),
         a job that cannot be planned (422)
    2    usage or input error: a bad option or value, a file missing, unreadable,
         not JSON or not what the command reads, an invalid job (400), a --db
         that is not a Console database or cannot be created, a port out of range
         or in use
    3    the Console cannot be reached
    70   an internal error (a bug): one line; UMBRA_TRACEBACK=1 shows the traceback
    130  interrupted (Ctrl-C, SIGTERM)
"""
import json

import click

OK = 0
FAILED = 1
USAGE = 2
UNREACHABLE = 3
INTERNAL = 70
INTERRUPTED = 130


class InputError(click.ClickException):
    """Bad input (exit 2), reported without click's usage banner."""
    exit_code = USAGE


class Unreachable(click.ClickException):
    """The Console did not answer (exit 3)."""
    exit_code = UNREACHABLE


def read_json_file(path, what="file"):
    """The JSON document in `path`; InputError naming the file otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise InputError("cannot read %s %s: %s" % (what, path, exc.strerror or exc))
    except UnicodeDecodeError:
        raise InputError("%s %s is not UTF-8 text" % (what, path))
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError("%s %s is not JSON: %s" % (what, path, exc))
    except RecursionError:
        raise InputError("%s %s nests too deeply to read" % (what, path))


def open_database(path, create=True):
    """A Console Database at path; InputError (exit 2) if it cannot be one.
    create=False: it must exist already (read/revoke never create an empty one)."""
    from tools.console.db import Unusable, connect
    try:
        return connect(path, create=create)
    except Unusable as exc:
        raise InputError(str(exc))
