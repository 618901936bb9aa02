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


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server for the session (tools/pgtemp.py); skips with the
    reason when this machine has none."""
    from tools import pgtemp
    why = pgtemp.available()
    if why:
        pytest.skip("PostgreSQL: " + why)
    with pgtemp.PgServer() as pg:
        yield pg


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_target(request, tmp_path_factory):
    """new(name) -> a new empty Console database to give `--db` / create_app: a
    SQLite file, then (the module's tests again) a PostgreSQL database."""
    if request.param == "sqlite":
        return lambda name="console": str(tmp_path_factory.mktemp(name) / "console.db")
    pg = request.getfixturevalue("pg_server")
    return lambda name="console": pg.new_database(name)
