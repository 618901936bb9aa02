"""Recovery without an operator (RELIABILITY.md): safe mode after unexplained
resets, cleared from the ground; the firmware integrity check at boot; SEU
scrubbing of the triple-redundant critical state. The firmware runs under the
real MicroPython unix port against a real Console."""
import json
import os
import subprocess
import time

import pytest

from tools import ROOT, upy
from tools.scenario import Ground, Node


@pytest.fixture
def ground(tmp_path):
    g = Ground(tmp_path)
    yield g
    g.close()


def test_five_unexplained_resets_put_the_agent_in_safe_mode_until_the_ground_clears_it(
        ground, tmp_path):
    node = Node(ground, tmp_path)
    # boots 2..6 are unexplained (no power-on, no intended reset): the 6th is the 5th in a row
    # 30 s of simulated time each, inside the 13:21-13:28 pass, so every boot is reported
    for i in range(6):
        code, summary, out = node.run(until=_at(13 * 3600 + 22 * 60 + 30 * i), until_idle=False,
                                      reset_cause=None if i == 0 else "unknown")
        assert summary is not None, out
    health = ground.agent_events(node.agent_id)
    boots = [e for e in health if e["type"] == "agent.booted"]
    assert [e["payload"]["reset_cause"] for e in boots] == ["power_on"] + ["unknown"] * 5
    safe = [e for e in health if e["type"] == "agent.safe_mode"]
    assert len(safe) == 1 and "5 unexplained resets" in safe[0]["payload"]["reason"]
    # the ground sees it: telemetry says safe_mode, and a job waits instead of running
    code, summary, out = node.run(until="2008-09-20T13:25:30Z", until_idle=False)
    agent = ground.agent(node.agent_id)
    assert agent["status"] == "safe_mode" and agent["telemetry"]["mode"] == "safe"
    dep = ground.deploy({"name": "after safe mode", "steps": [{"id": "a", "compute_s": 60}]})
    code, summary, out = node.run(until="2008-09-20T13:27:00Z", until_idle=False)
    assert ground.status(dep) in ("pending", "dispatched") and ground.events(dep) == []
    # cleared from the Console: the next poll tells the agent, and work resumes
    r = ground.http.post("/api/agents/%s/clear-safe-mode" % node.agent_id)
    assert r.status_code == 200, r.text
    code, summary, out = node.run()
    assert code == 0, out
    assert ground.status(dep) == "completed"
    assert ground.agent(node.agent_id)["telemetry"]["mode"] == "normal"


def test_a_module_changed_after_deploy_is_caught_at_boot_and_the_agent_enters_safe_mode(
        ground, tmp_path):
    from tools import deploy
    from tools.console import auth
    board = tmp_path / "board"
    key = auth.create_key(ground.db, "agent", "sat-board", rate_limited=False,
                          satellite_id="25544")
    cfg = {"agent_id": "sat-board", "api_url": ground.url, "api_key": key["key"],
           "satellite_id": "25544", "storage_root": str(board / "flash")}
    cfg_path = tmp_path / "umbra.json"
    cfg_path.write_text(json.dumps(cfg))
    deploy.build(str(board), config=str(cfg_path))
    # one flipped bit after deploy, in a module the agent loads only when it needs it
    with open(board / "lib" / "handlers.mpy", "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0x04]))
    env = dict(os.environ, MICROPYPATH=".frozen:" + str(board / "lib"))
    proc = subprocess.Popen([upy.micropython_exe(), "boot.py", "umbra.json"], cwd=str(board),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        safe = []
        while time.monotonic() < deadline and not safe:
            time.sleep(0.3)
            health = [] if not _registered(ground, "sat-board") else ground.agent_events("sat-board")
            safe = [e for e in health if e["type"] == "agent.safe_mode"]
    finally:
        proc.kill()
        proc.wait()
    assert safe, "no agent.safe_mode reached the Console"
    assert "integrity" in safe[0]["payload"]["reason"] and "handlers.mpy" in safe[0]["payload"]["reason"]
    detected = [e for e in health if e["type"] == "fault.detected"]
    assert detected and detected[0]["payload"]["kind"] == "integrity"


def _at(seconds_of_day):
    h, rest = divmod(seconds_of_day, 3600)
    return "2008-09-20T%02d:%02d:%02dZ" % (h, rest // 60, rest % 60)


def _registered(ground, agent_id):
    return any(a["agent_id"] == agent_id for a in ground.http.get("/api/agents").json()["agents"])


def test_an_upset_in_the_critical_state_is_outvoted_or_restored_and_reported(mpy, tmp_path):
    res = mpy("""
        import json, clock, hal, agentconfig
        from agent import Agent
        from link import HttpLink
        cfg = agentconfig.make({"agent_id": "sat-x", "api_url": "http://127.0.0.1:9",
                                "time_sync": False})
        c = clock.SimClock(1.2e9)
        a = Agent(cfg, c, hal.Sensors(), HttpLink(cfg, "0"), %r).boot()
        seq0 = a.state["seq"]
        a.tmr["seq"].flip(1, 3)            # one copy upset: outvoted
        a.scrub()
        one = a.tmr["seq"].copies == [a.state["seq"]] * 3
        a.state["mode"] = "sXfe"           # the live value upset: the cells outvote it
        a.scrub()
        live = a.state["mode"]
        for i in range(3):                 # all three copies differ: restore from flash
            a.tmr["deployment"].flip(i, i)
        a.scrub()
        types = [json.loads(e[2])["type"] + ":" + str(json.loads(e[2])["payload"].get("action"))
                 for e in a.journal.outbox(100, 1 << 20)]
        print(json.dumps({"one": one, "live": live, "types": types, "stats": a.stats,
                          "seq_ok": a.state["seq"] == a.tmr["seq"].vote()[0]}))
        """ % str(tmp_path), timeout=60).check()
    r = res.last_json
    assert r["one"] and r["live"] == "normal" and r["seq_ok"]
    assert r["stats"]["seu_corrected"] == 2 and r["stats"]["seu_restored"] == 1
    assert r["types"].count("fault.recovered:tmr_vote") == 2
    assert r["types"].count("fault.recovered:restored_checkpoint") == 1
