"""The fleet world (docs/fleet.md "Running the fleet"): every satellite of a
fleet runs its unchanged firmware under MicroPython, each with its own
spacecraft model, flash and world store, over the same simulated horizon,
against one real Console; each talks to the Console only during its own
ground passes; a reset of one (an injected reset, a killed process) drops
only that one's RAM while the others run on."""
import json
import os
import threading
import time

import pytest

from tools import ROOT
from tools.fleetrun import FleetRun
from tools.scenario import Ground
import fleet
import orbitscan
import stations
import timeutil

TRAIN = os.path.join(ROOT, "examples", "fleets", "train-4.json")
HOURS = 2.0


@pytest.fixture
def ground(tmp_path):
    g = Ground(tmp_path)
    yield g
    g.close()


def test_every_satellite_runs_its_own_firmware_and_a_reset_stays_its_own(ground, tmp_path):
    with open(TRAIN) as f:
        world = fleet.FleetWorld(json.load(f), hours=HOURS)
    run = FleetRun(world, ground, tmp_path / "fleet",
                   faults={"99902": [{"kind": "reset", "at_s": 1800}]})   # an injected reset
    out = {}
    th = threading.Thread(target=lambda: out.update(run.run()))
    th.start()
    # and 99903's process killed once it runs: a power cycle of its computer
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not getattr(run.procs.get("99903"), "fed", False):
        time.sleep(0.05)
    victim = run.procs["99903"].proc
    assert victim.poll() is None, "99903 ended before it could be killed"
    victim.kill()
    th.join(timeout=300)
    assert not th.is_alive()
    rows = {r["satellite_id"]: r for r in out["satellites"]}
    end = timeutil.iso_utc(world.start + int(HOURS * 3600))
    for sid, r in rows.items():
        assert r["outcome"] == "done" and r["exit"] == 4, r       # ran to the end of the horizon
        assert r["sim_time"] == end, r
    assert rows["99902"]["reboots"] == 1 and rows["99902"]["boots"] == 2
    assert rows["99903"]["restarts"] == 1 and rows["99903"]["boots"] == 2
    for sid in ("99901", "99904"):
        assert rows[sid]["reboots"] == 0 and rows[sid]["boots"] == 1 and rows[sid]["restarts"] == 0

    # each one registered with the Console as itself, and talked to it only in its own passes
    agents = {a["agent_id"]: a for a in ground.http.get("/api/agents").json()["agents"]}
    assert sorted(agents) == ["sat-99901", "sat-99902", "sat-99903", "sat-99904"]
    t0 = world.start
    for sat in world.satellites:
        sid = sat["satellite_id"]
        wins = orbitscan.find_windows(sat["orbit"], t0, t0 + HOURS * 3600, stations.default_stations())
        contacts = [(w["start"], w["end"]) for w in wins if w["kind"] == "contact"]
        assert contacts, sid
        row = ground.db.query("SELECT satellite_id, telemetry FROM agents WHERE agent_id = ?",
                              ("sat-" + sid,))[0]
        assert row["satellite_id"] == sid
        said = timeutil.parse_iso(json.loads(row["telemetry"])["timestamp"])
        assert any(a - 2 <= said <= b + 2 for a, b in contacts), (sid, said - t0, contacts)
        # polls at most every 10 s while a pass lasts, and none outside
        in_pass = sum(b - a for a, b in contacts)
        polls = rows[sid]["polls"]
        assert 0 < polls <= in_pass / 10 + 2 * len(contacts) + 2, (sid, polls, in_pass)


def test_a_second_run_carries_every_satellite_on_from_its_own_world_store(ground, tmp_path):
    with open(TRAIN) as f:
        world = fleet.FleetWorld(json.load(f), hours=HOURS)
    first = FleetRun(world, ground, tmp_path / "fleet", until_s=3600).run()
    half = timeutil.iso_utc(world.start + 3600)
    assert [r["sim_time"] for r in first["satellites"]] == [half] * 4
    # the host process that ran them is gone; a new one runs the same folder
    second = FleetRun(world, ground, tmp_path / "fleet").run()
    end = timeutil.iso_utc(world.start + int(HOURS * 3600))
    for r in second["satellites"]:
        assert r["outcome"] == "done" and r["sim_time"] == end, r
        assert r["boots"] == 2, r              # its computer started again: its second boot
    for sat in world.members:
        path = tmp_path / "fleet" / ("node-" + sat["agent_id"]) / "world"
        assert path.exists()
