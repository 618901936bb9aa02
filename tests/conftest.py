"""Test harness: run firmware code under the real MicroPython unix port.

`mpy(code, heap=None, timeout=60)` runs a snippet under `.venv/bin/micropython`
(or $MICROPYTHON) with lib/, firmware/ and sim/ on its module path and returns
a Result (returncode, stdout, stderr, json_lines). `portable` does the same under
MicroPython *and* CPython: tests of portable modules take it, and run twice.
"""
import os
import sys
import textwrap

import pytest

import tools  # noqa: F401  (portable folders on sys.path for CPython-side tests)
from tools import upy

ROOT = tools.ROOT


class Runner:
    def __init__(self, impl):
        self.impl = impl

    def __call__(self, code, heap=None, timeout=60, **kw):
        return upy.run_code(textwrap.dedent(code), impl=self.impl, heap=heap, timeout=timeout, **kw)

    def script(self, path, heap=None, timeout=60, **kw):
        return upy.run_script(path, impl=self.impl, heap=heap, timeout=timeout, **kw)

    def __repr__(self):
        return self.impl


@pytest.fixture(scope="session")
def mpy():
    exe = upy.micropython_exe()
    if not os.path.exists(exe) and os.sep in exe:
        pytest.fail("MicroPython unix port not found at %s (run `make setup`)" % exe)
    return Runner("micropython")


@pytest.fixture(params=["micropython", "cpython"])
def portable(request):
    return Runner(request.param)


@pytest.fixture
def cpy():
    return Runner("cpython")
