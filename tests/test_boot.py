"""boot.py as a board runs it (the unix port on the real clock, against the
real Console on loopback): a board whose real-time clock was never set, and
a missing or bad umbra.json."""
import calendar
import json
import os
import subprocess
import time

import pytest

from test_bare_board import BARE
from tools import ROOT, upy
from tools.console import auth
from tools.scenario import Ground

BOOT = os.path.join(ROOT, "boot.py")


@pytest.fixture
def ground(tmp_path):
    g = Ground(tmp_path)
    yield g
    g.close()


def start_boot(tmp_path, config, bare=False):
    """boot.py with `config` as umbra.json (None: no file), in its own folder."""
    board = tmp_path / "board"
    board.mkdir()
    if config is not None:
        (board / "umbra.json").write_text(config if isinstance(config, str) else json.dumps(config))
    extra = ()
    if bare:  # the RTC never set, no gmtime (test_bare_board.py)
        folder = tmp_path / "bare"
        folder.mkdir()
        (folder / "time.py").write_text(BARE["time.py"])
        extra = (str(folder),)
    argv, env = upy.command(BOOT, args=["umbra.json"], extra_path=extra)
    return subprocess.Popen(argv, cwd=str(board), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def agent_events_when(ground, agent_id, done, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    evs = []
    while time.monotonic() < deadline:
        agents = ground.http.get("/api/agents").json()["agents"]
        if any(a["agent_id"] == agent_id for a in agents):
            evs = ground.agent_events(agent_id)
            if done(evs):
                break
        time.sleep(0.3)
    return evs


def stop(proc):
    proc.kill()
    out, _ = proc.communicate(timeout=10)
    return out


def parse(stamp):
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


def test_a_board_with_an_unset_clock_reports_agent_booted_at_its_real_time(ground, tmp_path):
    key = auth.create_key(ground.db, "agent", "sat-rtc", rate_limited=False, satellite_id="25544")
    started = time.time()
    proc = start_boot(tmp_path, {"agent_id": "sat-rtc", "api_url": ground.url, "api_key": key["key"],
                                 "satellite_id": "25544", "storage_root": "."}, bare=True)
    try:
        evs = agent_events_when(ground, "sat-rtc", lambda evs: evs)
    finally:
        out = stop(proc)
    assert [e["type"] for e in evs] == ["agent.booted"], out
    # stamped before the first contact set the clock, sent after it: its real time
    stamped = parse(evs[0]["timestamp"])
    assert started - 2 <= stamped <= time.time() + 1, (evs[0]["timestamp"], out)


def test_a_bad_config_that_still_names_the_agent_boots_safe_mode_and_tells_the_console_why(
        ground, tmp_path):
    key = auth.create_key(ground.db, "agent", "sat-bad", rate_limited=False, satellite_id="25544")
    proc = start_boot(tmp_path, {"agent_id": "sat-bad", "api_url": ground.url, "api_key": key["key"],
                                 "satellite_id": "25544", "storage_root": ".",
                                 "poll_interval_s": 3})  # refused: the Console's rate limit
    try:
        evs = agent_events_when(ground, "sat-bad",
                                lambda evs: any(e["type"] == "agent.safe_mode" for e in evs))
        running = proc.poll() is None
    finally:
        out = stop(proc)
    assert running, "boot.py exited: " + out
    safe = [e for e in evs if e["type"] == "agent.safe_mode"]
    assert len(safe) == 1, out
    assert "poll_interval_s must be >= 10" in safe[0]["payload"]["reason"]
    assert "umbra.json" in safe[0]["payload"]["reason"]
    # ... and on the board's console (the REPL)
    first = json.loads(out.splitlines()[0])
    assert first["mode"] == "safe" and "poll_interval_s must be >= 10" in first["error"]


@pytest.mark.parametrize("config, why", [
    (None, "no config umbra.json"),
    ("{not json", "bad config umbra.json"),
    ({"agent_id": "sat-x", "watchdog_timeout_ms": 1}, "bad config umbra.json"),  # no api_key
])
def test_without_a_usable_config_boot_says_why_and_exits_2_on_the_unix_port(tmp_path, config, why):
    proc = start_boot(tmp_path, config)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    line = json.loads(out.splitlines()[0])
    assert line["mode"] == "safe" and line["error"].startswith(why)
