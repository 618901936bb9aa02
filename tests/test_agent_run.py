"""`umbra agent run` as a user runs it (.venv/bin/umbra, a real Console on
loopback, the firmware under the real MicroPython unix port): how a run ends.
A run ends at --hours / --until with exit 0 and one summary; a start-up
error ends it with one clear line and exit 2, never a restart loop; a reset
loop ends after --max-restarts; SIGTERM / SIGINT end it within a second with
no node process left behind."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tools import ROOT
from tools.console import auth
from tools.scenario import START, Ground

UMBRA = os.path.join(os.path.dirname(sys.executable), "umbra")


@pytest.fixture(scope="module")
def ground(tmp_path_factory):
    g = Ground(tmp_path_factory.mktemp("console"))
    yield g
    g.close()


def agent_run(ground, tmp_path, *extra, agent_id="sat-25544", timeout=60):
    key = auth.create_key(ground.db, "agent", agent_id, rate_limited=False,
                          satellite_id="25544")["key"]
    argv = [UMBRA, "agent", "run", "--agent-id", agent_id, "--api-url", ground.url,
            "--api-key", key, "--satellite-id", "25544", "--state-dir", str(tmp_path / agent_id)]
    argv += [str(a) for a in extra]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        raise AssertionError("umbra agent run did not end in %ss:\n%s" % (timeout, out[-3000:]))


def summaries(stdout):
    out = []
    for ln in stdout.splitlines():
        if ln.startswith("{") and '"node"' in ln:
            out.append(json.loads(ln))
    return out


def test_hours_ends_the_run_with_exit_0_and_one_summary_without_a_restart(ground, tmp_path):
    r = agent_run(ground, tmp_path, "--sim", "--tle", ground.tle_path, "--start", START,
                  "--hours", "2", "--quiet", timeout=60)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.stderr == ""
    (line,) = r.stdout.splitlines()  # --quiet: the summary and nothing else
    assert json.loads(line)["sim_time"] == "2008-09-20T15:15:00Z"
    # without it, the node's lines and the summary once
    r = agent_run(ground, tmp_path, "--sim", "--tle", ground.tle_path, "--start", START,
                  "--hours", "2", agent_id="sat-hours", timeout=60)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "node reset" not in r.stdout
    (summary,) = summaries(r.stdout)
    assert summary["sim_time"] == "2008-09-20T15:15:00Z"
    assert summary["boots"] == 1 and summary["mode"] == "normal"


def test_until_ends_the_run_and_the_next_run_carries_on_from_there(ground, tmp_path):
    r = agent_run(ground, tmp_path, "--sim", "--tle", ground.tle_path, "--start", START,
                  "--hours", "4", "--until", "2008-09-20T14:00:00Z", agent_id="sat-until")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (first,) = summaries(r.stdout)
    assert first["sim_time"] == "2008-09-20T14:00:00Z"
    r = agent_run(ground, tmp_path, "--sim", agent_id="sat-until")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (second,) = summaries(r.stdout)
    assert second["sim_time"] == "2008-09-20T17:15:00Z" and second["boots"] == 2


def test_a_missing_tle_is_named_and_ends_the_command_with_exit_2(ground, tmp_path):
    r = agent_run(ground, tmp_path, "--sim", "--tle", str(tmp_path / "missing.tle"),
                  "--start", START, "--hours", "1")
    assert r.returncode == 2
    assert "missing.tle" in r.stderr and "Traceback" not in r.stdout + r.stderr


@pytest.mark.parametrize("text", ["ISS (ZARYA) and nothing else\n",  # once an IndexError, restarted for ever
                                  "ISS\nthis is not\na two-line element set\n"], ids=["one-line", "garbage"])
def test_a_garbage_tle_ends_the_command_with_one_clear_error_and_exit_2_not_a_restart_loop(
        ground, tmp_path, text):
    bad = tmp_path / "garbage.tle"
    bad.write_text(text)
    t0 = time.monotonic()
    r = agent_run(ground, tmp_path, "--sim", "--tle", str(bad), "--start", START, "--hours", "1",
                  timeout=30)
    assert r.returncode == 2, r.stdout[-2000:]
    assert "node reset" not in r.stdout
    assert "garbage.tle" in r.stderr and "not a TLE" in r.stderr
    assert time.monotonic() - t0 < 15


def test_a_heap_too_small_to_start_ends_the_command_with_exit_2(ground, tmp_path):
    r = agent_run(ground, tmp_path, "--sim", "--tle", ground.tle_path, "--start", START,
                  "--hours", "1", "--heap", "8K", timeout=30)
    assert r.returncode == 2, r.stdout[-2000:]
    assert "node reset" not in r.stdout
    assert "did not start" in r.stderr and "MemoryError" in r.stderr


# --- the supervisor against a node that really crashes (a real child process) ----------

CRASHER = r"""
import os, sys, time
with open(sys.argv[1], "a") as f:
    f.write("%d\n" % os.getpid())
print("WDT", flush=True)
time.sleep(float(sys.argv[2]))
print("boom: the node fell over", flush=True)
sys.exit(1)
"""

SUPERVISE = r"""
import sys
from tools.agent_cli import NodeProcess, supervise_with_signals
argv = [sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3]]
node = NodeProcess(argv, None, watchdog_s=5.0, echo=print)
kw = {} if sys.argv[4] == "default" else {"max_restarts": int(sys.argv[4])}
code, why = supervise_with_signals(node, **kw)
print("WHY", why, flush=True)
sys.exit(code)
"""


def supervisor(tmp_path, crash_after_s, max_restarts="default"):
    pids = tmp_path / "pids"
    return subprocess.Popen([sys.executable, "-c", SUPERVISE, CRASHER, str(pids), str(crash_after_s),
                             str(max_restarts)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True), pids


def test_a_reset_loop_ends_after_the_default_max_restarts_and_says_why(tmp_path):
    proc, pids = supervisor(tmp_path, 0.01)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3, out
    starts = pids.read_text().split()
    assert len(starts) == 11  # the first start and 10 restarts
    assert "reset 11 times in a row" in out and "boom: the node fell over" in out


def test_max_restarts_sets_the_limit(tmp_path):
    proc, pids = supervisor(tmp_path, 0.01, max_restarts=2)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3, out
    assert len(pids.read_text().split()) == 3


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "X"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_restart_loop_ends_it_within_a_second_leaving_no_node(tmp_path, sig):
    for i, delay in enumerate((0.05, 0.17, 0.31, 0.47, 0.62)):
        run = tmp_path / str(i)
        run.mkdir()
        # a node that crashes every few milliseconds: the signal lands during
        # a start, a wait, a read, at random
        proc, pids = supervisor(run, 0.002, max_restarts=1000000)
        time.sleep(0.4 + delay)
        proc.send_signal(sig)
        t0 = time.monotonic()
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("the supervisor hung after %s" % sig.name)
        assert time.monotonic() - t0 < 1.0
        assert proc.returncode == (130 if sig == signal.SIGINT else 143)
        time.sleep(0.05)
        left = [int(p) for p in pids.read_text().split() if _alive(int(p))]
        assert left == [], "node processes left behind (zombies or running): %r" % left
