"""Fault-injection campaigns at a reduced size: the firmware under the real
MicroPython unix port, in its simulated world, against a real Console, with
the seeded injector (sim/faults.py) inside the node process. The Console is
the judge (tools/faults_cli.py judge())."""
import json
import os
import subprocess
import sys

import pytest

import agentconfig
from tools import ROOT
from tools import faults_cli as fc

ONE_STEP_JOB = {"name": "one step", "steps": [{"id": "a", "compute_s": 60, "output_mb": 0.5}]}


def assert_clean(s):
    assert s["events_lost"] == 0, s["bad_runs"]
    assert s["events_duplicated"] == 0, s["bad_runs"]
    assert s["wrong_state"] == 0, s["bad_runs"]


def test_a_fault_script_is_checked_before_it_runs(portable):
    r = portable("""
import faults
bad = [[{"kind": "teleport"}], [{"kind": "power_cut"}], [{"kind": "raise", "at_s": 3}],
       [{"kind": "hang"}], [{"kind": "sensor", "sensor": "gps"}], [{"kind": "reset", "at_s": -1}], {}]
for script in bad:
    try:
        faults.check_script(script)
        print("accepted", script)
    except ValueError as exc:
        print("refused:", exc)
ok = faults.check_script([{"kind": "reset", "at_s": 5}, {"kind": "power_cut", "write": 3}])
print([f["id"] for f in ok])
""")
    lines = r.stdout.strip().splitlines()
    assert all(ln.startswith("refused:") for ln in lines[:-1]), r.stdout
    assert lines[-1] == "[0, 1]"


def test_the_injector_replays_the_same_choices_for_the_same_seed(portable):
    r = portable("""
import faults
a = faults.Rng(7); b = faults.Rng(7); c = faults.Rng(8)
xa = [a.below(1000) for _ in range(5)]
print(xa == [b.below(1000) for _ in range(5)], xa != [c.below(1000) for _ in range(5)], xa)
""")
    assert r.stdout.startswith("True True"), r.stdout


def test_a_seeded_sample_of_power_cuts_in_the_two_step_campaign_job_clean_and_torn_loses_nothing(tmp_path):
    """The exhaustive campaign (every write index of the two-step job, clean
    and torn: `make bench` area faults, `umbra faults power-cut`) is too long
    for make test; a seeded sample of its indices runs here."""
    import random
    import time
    lab = fc.Lab(str(tmp_path))
    try:
        writes = lab.run(fc.SMALL_JOB, [])["writes"]
        assert writes >= 40
        rng = random.Random(15)
        recs = []
        t0 = time.monotonic()
        for n in sorted(rng.sample(range(1, writes + 1), 12)):
            fault = {"kind": "power_cut", "write": n}
            if rng.random() < 0.5:
                fault["torn"] = 5
            rec = lab.run(fc.SMALL_JOB, [fault])
            rec["write"] = n
            recs.append(rec)
        s = fc.summarise("power-cut", recs, {}, time.monotonic() - t0)
    finally:
        lab.close()
    assert s["injected_by_kind"] == {"power_cut": 12}
    assert s["jobs_completed"] == 12
    assert_clean(s)


def test_a_power_cut_at_every_write_index_of_a_small_job_ends_completed_with_nothing_lost_or_duplicated():
    s = fc.run_campaign("power-cut", job=ONE_STEP_JOB)
    assert s["writes_per_job"] >= 20
    assert s["runs"] == s["writes_per_job"] == s["write_indices"]  # every index, not a sample
    assert s["injected_by_kind"] == {"power_cut": s["runs"]}
    assert s["jobs_completed"] == s["runs"]
    assert_clean(s)


def test_thirty_percent_request_loss_with_duplicates_and_delays_loses_and_duplicates_nothing():
    link = {"kind": "link", "at_s": 0, "drop": 0.3, "dup": 0.1, "delay": 0.1, "delay_ms": 500}
    s = fc.run_campaign("link", runs=3, seed=3, link=link)
    assert s["jobs_completed"] == 3
    assert s["injected"] > 50
    assert_clean(s)


def test_corrupted_requests_lose_no_events():
    link = {"kind": "link", "at_s": 0, "drop": 0.2, "corrupt": 0.1}
    s = fc.run_campaign("link", runs=3, seed=5, link=link)
    assert s["jobs_completed"] == 3
    assert_clean(s)


def test_an_exception_in_every_task_is_detected_and_the_job_still_completes():
    s = fc.run_campaign("crash", runs=1, seed=2)
    assert s["runs"] == len(fc.TASKS)
    assert s["injected_by_kind"].get("raise") == 3 * len(fc.TASKS)
    assert s["jobs_completed"] == s["runs"]
    assert s["detected"] >= s["injected"]   # each one a fault.detected task_crash
    assert_clean(s)


def test_hundreds_of_stored_bit_flips_are_each_detected_or_harmless(tmp_path):
    lab = fc.Lab(str(tmp_path))
    try:
        sw = fc.storage_sweep(lab, 300, seed=11)
    finally:
        lab.close()
    assert sw.get("flips") == 300, sw
    assert sw["files"] >= 2   # a snapshot slot and a log at least
    assert sw["silent"] == 0 and sw["unreadable"] == 0
    assert sw["detected"] + sw["masked"] == 300
    assert sw["detected"] > 0


def test_ram_bit_flips_in_the_tmr_cells_are_voted_out_and_the_job_completes():
    s = fc.run_campaign("bitflip", runs=2, seed=4, sweep=0, ram_per_run=40, storage_per_run=0)
    assert "flip_ram" not in s["skipped"], s["skipped"]  # the agent must expose its TMR cells
    assert s["injected_by_kind"].get("flip_ram") == 80
    assert s["jobs_completed"] == 2
    assert s["detected"] > 0 and s["recovered"] >= s["detected"] // 2
    assert_clean(s)


# The journal: mid-pass. The outbox spool (the events waiting for the ground,
# two copies): after the pass, while events wait for the next one; an upset
# in copy a is read past from copy b and the boot rebuilds a.
@pytest.mark.parametrize("job,at,where,bit,detected", [
    (fc.SMALL_JOB, 60, "journal.0.log", 100, 1),
    (fc.LONG_JOB, 600, "outbox.a.", 200, 1),
], ids=["journal", "outbox_spool"])
def test_a_flipped_bit_in_stored_state_loses_and_duplicates_nothing(tmp_path, job, at, where, bit,
                                                                      detected):
    lab = fc.Lab(str(tmp_path))
    try:
        rec = lab.run(job, [{"kind": "flip_storage", "at_s": fc.JOB_T0 + at, "file": where,
                             "bit": bit}])
    finally:
        lab.close()
    assert rec["injected_by_kind"] == {"flip_storage": 1}
    assert rec["status"] == "completed"
    assert rec["events_lost"] == 0 and rec["wrong_state"] == 0
    assert rec["events_duplicated"] == 0
    assert rec["detected"] >= detected  # storage_corrupt: read from the other copy, rebuilt


def test_a_stuck_handler_under_the_real_time_watchdog_is_reset_three_times_then_quarantined():
    assert "quarantine_resets" in agentconfig.defaults()  # the agent quarantines a hanging step
    s = fc.run_campaign("hang", runs=1, seed=1)
    assert s["injected_by_kind"].get("hang") == 3
    assert s["quarantined"] == 1
    assert s["jobs_failed"] == 1      # the quarantined step fails the job
    assert s["rest_of_job_ran"]       # ... but its independent step still ran
    assert s["next_jobs_completed"] == 1
    assert_clean(s)


def test_umbra_faults_prints_the_campaign_figures_as_json():
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "faults", "--campaign", "power-cut",
                           "--runs", "3", "--seed", "1", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    for key in fc.FIGURES:
        assert key in doc
    assert doc["runs"] == 3 and doc["injected"] == 3 and doc["events_lost"] == 0


def test_the_fault_injector_needs_the_simulated_world(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "agent", "run", "--agent-id", "sat-1",
                           "--api-url", "http://127.0.0.1:9", "--api-key", "k",
                           "--state-dir", str(tmp_path / "node"),
                           "--faults", os.path.join(ROOT, "README.md")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--sim" in proc.stderr


def test_a_brownout_only_script_steps_the_battery_down_once_without_the_computers_injector(portable, tmp_path):
    # sim/worldfaults.py: what a node whose script only browns out runs instead
    # of faults.Injector (nodestart picks it: faultscript.world_only); the
    # once-state survives a restart
    r = portable("""
import json, faultscript, worldfaults, orbitio, orbit
from spacecraft import SimulatedSatellite
o = orbit.Orbit(orbitio.keplerian_elements({"altitude_km": 550, "epoch": 0}))
script = [{"kind": "brownout", "at_s": 100, "soc": 0.08}]
mixed = [{"kind": "brownout", "at_s": 100}, {"kind": "reset", "at_s": 5}]
try:
    faultscript.check_world([{"kind": "brownout", "at_s": -1}])
    refused = None
except ValueError as exc:
    refused = str(exc)
print(json.dumps([faultscript.world_only(script), faultscript.world_only(mixed),
                  faultscript.world_only({}), faultscript.world_only([]), refused]))
script = faultscript.check_world(script)
class Clock:
    ms = 0
    def now_ms(self):
        return self.ms
class Node:
    pass
node = Node(); node.clock = Clock()
node.sat = SimulatedSatellite("s", o, 0, bus={"initial_soc": 0.9}, stations=[])
lines = []
state = %r
inj = worldfaults.WorldFaults(script, 3, state, lines.append, faultscript.load_fired(state, 3))
node.clock.ms = 99000
inj.tick(node, 99000)
before = node.sat.battery_percent()
node.clock.ms = 100000
inj.tick(node, 100000)
after = node.sat.battery_percent()
inj.tick(node, 100500)
again = worldfaults.WorldFaults(script, 3, state, lines.append, faultscript.load_fired(state, 3))
again.tick(node, 200000)
other_seed = faultscript.load_fired(state, 4)
print(json.dumps({"before": before, "after": after, "lines": lines, "report": inj.report(),
                  "again": again.report(), "other_seed": other_seed}))
""" % str(tmp_path / "faults.state")).check()
    suits, out = [json.loads(x) for x in r.stdout.strip().splitlines()[-2:]]
    assert suits == [True, False, False, False, "fault 0: at_s must be a number >= 0"]
    assert out["before"] > 80 and abs(out["after"] - 8.0) < 1e-6
    assert out["lines"] == [{"fault": "brownout", "id": 0, "t_s": 100, "soc_before": 0.9, "soc_after": 0.08}]
    assert out["report"]["injected"] == {"brownout": 1}
    assert out["again"]["injected"] == {}   # fired once, remembered across the restart
    assert out["other_seed"] == {}          # another script's state is not this one's
