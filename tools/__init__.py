"""Umbra host tools: the `umbra` command (Console, planner, bridge, deploy, bench, plots).

The portable code in firmware/, lib/ and sim/ is organised as flat MicroPython
modules (as they sit on a board's /lib). The host imports the very same files:
importing `tools` puts those three folders on sys.path.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORTABLE_DIRS = tuple(os.path.join(ROOT, d) for d in ("lib", "firmware", "sim"))

for _d in reversed(PORTABLE_DIRS):
    if _d not in sys.path:
        sys.path.insert(0, _d)
