"""`umbra` as a new user types it, wrong: every misuse ends with one line on
stderr (`Error: ...`, naming what is wrong), no traceback, and the exit status
docs/console.md "CLI exit codes" gives (tools/clierrors.py). Run for real as
subprocesses (.venv/bin/umbra)."""
import os
import socket
import subprocess
import sys

import pytest

from tools import ROOT
from tools.console.server import free_port

UMBRA = os.path.join(os.path.dirname(sys.executable), "umbra")
DOWN = "http://127.0.0.1:%d" % free_port()  # nothing listens there


def umbra(*args, cwd):
    env = {k: v for k, v in os.environ.items()
           if k not in ("UMBRA_CONSOLE", "UMBRA_KEY", "UMBRA_DB", "UMBRA_TRACEBACK")}
    return subprocess.run([UMBRA] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=cwd)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "bad.json").write_text("{bad")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "deep.json").write_text("[" * 5000 + "]" * 5000)
    (tmp_path / "nocompute.json").write_text('{"name": "x", "steps": [{"id": "a"}]}')
    (tmp_path / "notdb.db").write_text("this is not an SQLite database\n")
    return tmp_path


MISUSES = [
    # (arguments, exit status, words the one line must hold)
    (("plan", "bad.json"), 2, "bad.json is not JSON"),
    (("plan", "list.json"), 2, "holds no JSON object"),
    (("plan", "deep.json"), 2, "deep.json nests too deeply"),
    (("plan", "nocompute.json"), 2, "steps[0].compute_s"),
    (("plot", "bad.json"), 2, "bad.json is not JSON"),
    (("plot", "list.json"), 2, "not a plan document"),
    (("plot", "dep-x", "--key", "k", "--console", DOWN), 3, "cannot reach the Console"),
    (("demo", "--job", "missing.json"), 2, "missing.json: No such file"),
    (("demo", "--job", "bad.json"), 2, "bad.json is not JSON"),
    (("demo", "--job", "nocompute.json"), 2, "steps[0].compute_s"),
    (("keys", "create", "--user", "--db", "notdb.db"), 2, "notdb.db as the Console database"),
    # a folder that cannot be made (its parent is a file: unwritable even for root)
    (("keys", "create", "--user", "--db", "notdb.db/c.db"), 2, "notdb.db/c.db as the Console"),
    (("console", "--port", "99999", "--db", "c.db"), 2, "99999"),
    (("console", "--db", "notdb.db", "--port", str(free_port())), 2, "not a database"),
    (("satellites", "list", "--console", DOWN), 3, "cannot reach the Console"),
    (("events", "dep-x", "--console", DOWN), 3, "cannot reach the Console"),
    (("submit", "bad.json", "--satellite", "25544", "--console", DOWN), 2, "not JSON"),
    (("sim", "windows", "--satellite", "X", "--tle", "missing.tle"), 2, "missing.tle"),
    (("sim", "windows", "--satellite", "X", "--elements", "deep.json"), 2, "not valid JSON"),
    (("satellites", "add", "--id", "x", "--name", "x", "--elements", "[" * 5000), 2, "bad JSON"),
    (("submit", "deep.json", "--satellite", "25544", "--console", DOWN), 2, "not JSON"),
    (("keys", "list", "--db", "absent.db"), 2, "no Console database at absent.db"),
    (("plot", "dep-x", "--db", "absent.db"), 2, "no Console database at absent.db"),
    (("faults", "--campaign", "crash", "--keep", "notdb.db/x"), 2, "--keep folder notdb.db/x"),
]


@pytest.mark.parametrize("args,status,words", MISUSES, ids=[" ".join(m[0][:2]) + " " + m[2]
                                                           for m in MISUSES])
def test_a_misused_command_says_what_is_wrong_in_one_line_and_exits_with_its_status(
        files, args, status, words):
    if args[0] == "demo" and os.path.exists(os.path.join(ROOT, "var", "demo")):
        before = sorted(os.listdir(os.path.join(ROOT, "var", "demo")))
    else:
        before = None
    r = umbra(*args, cwd=files)
    assert r.returncode == status, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1 and words in lines[0], r.stderr
    if before is not None:  # a bad job file is refused before the last demo is wiped
        assert sorted(os.listdir(os.path.join(ROOT, "var", "demo"))) == before


def test_reading_a_database_that_does_not_exist_creates_nothing(tmp_path):
    r = umbra("satellites", "list", "--db", tmp_path / "no" / "such" / "c.db", cwd=tmp_path)
    assert r.returncode == 2 and "no Console database at" in r.stderr
    assert not (tmp_path / "no").exists()


def test_plot_of_a_missing_file_names_the_file_not_an_http_error(tmp_path):
    r = umbra("plot", "missing.json", "--key", "k", "--console", DOWN, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == "Error: no such file: missing.json (a plan file, or a deployment id)"


def test_console_on_a_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = umbra("console", "--db", tmp_path / "c.db", "--port", port, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("Error: cannot listen on 127.0.0.1:%d" % port)


def test_an_unforeseen_exception_is_one_line_and_exit_70_not_a_traceback(monkeypatch):
    """The safety net under every command (tools/cli.py): a bug still ends in one
    line naming the exception; UMBRA_TRACEBACK=1 gives the traceback."""
    import types

    import click
    from click.testing import CliRunner

    from tools import cli

    @click.command()
    def broken():
        {}["missing"]

    module = types.ModuleType("umbra_broken_command")
    module.broken = broken
    monkeypatch.setitem(sys.modules, "umbra_broken_command", module)
    monkeypatch.setitem(cli.COMMANDS, "broken", ("umbra_broken_command", "broken", "a bug"))
    monkeypatch.delenv("UMBRA_TRACEBACK", raising=False)
    r = CliRunner().invoke(cli.main, ["broken"])
    assert r.exit_code == 70
    assert r.output.strip() == ("Error: internal error: KeyError: 'missing' "
                                "(UMBRA_TRACEBACK=1 shows where)")
    monkeypatch.setenv("UMBRA_TRACEBACK", "1")
    r = CliRunner().invoke(cli.main, ["broken"])
    assert isinstance(r.exception, KeyError)
