"""The Operator Agent end to end: the firmware under the real MicroPython unix
port, in its simulated world on the simulated clock, against a real Console
over HTTP on loopback."""
import random
import time

import pytest

from tools import upy
from tools.scenario import (ECLIPSE_1, PASS_1, PASS_2_START, Ground, Node, load_job, types)
from tools.timefmt import parse


@pytest.fixture
def ground(tmp_path):
    g = Ground(tmp_path)
    yield g
    g.close()


def assert_exactly_once(ground, agent_id):
    seqs = ground.all_seqs(agent_id)
    assert seqs == list(range(1, len(seqs) + 1)), "seq at the Console has gaps or repeats"
    return seqs


def test_a_job_completes_and_the_console_holds_every_event_once_with_contiguous_seq(
        ground, tmp_path):
    dep = ground.deploy(load_job("standard-pipeline.json"))
    node = Node(ground, tmp_path)
    code, summary, out = node.run()
    assert code == 0, out
    assert ground.status(dep) == "completed"
    evs = ground.events(dep)
    kinds = types(evs)
    assert kinds[0] == "job.accepted" and kinds[-1] == "job.completed"
    for step in ("ingest", "features", "pack"):
        done = [e for e in evs if e["type"] == "step.completed" and e["step_id"] == step]
        assert len(done) == 1
        progress = [e["payload"]["percent"] for e in evs
                    if e["type"] == "step.progress" and e["step_id"] == step]
        assert progress == [25, 50, 75]
    assert "security.encrypted" in kinds and "transfer.completed" in kinds
    assert kinds.count("placement.decided") == 4
    seqs = assert_exactly_once(ground, node.agent_id)
    assert [e["type"] for e in ground.agent_events(node.agent_id)] == ["agent.booted"]
    assert len(seqs) == len(evs) + 1


def test_the_demo_mission_runs_compiled_to_mpy_in_a_160k_heap(ground, tmp_path):
    """The demo scenario (agent and its world in one process, every module an
    .mpy) completes under -X heapsize=160K (x64), with no reset on the way: ~100 KB
    on a 32-bit MCU, where the frozen firmware needs 56K (make bench, area board).
    The node runs in its .mpy folder, as a board in its flash root (tools/scenario.py
    Node.cwd): the modules' file names, interned for good, are short whatever
    pytest's folder is. make bench reports how far below that it still goes."""
    mpy_dir = upy.compile_portable(str(tmp_path / "mpy"))
    dep = ground.deploy(load_job("demo-mission.json"))
    node = Node(ground, tmp_path, heap="160K", mpy_dir=mpy_dir)
    code, summary, out = node.run(timeout=180)
    assert code == 0, out[-3000:]
    assert ground.status(dep) == "completed", out[-3000:]
    kinds = types(ground.events(dep))
    for kind in ("pass_step.merged", "window_step.completed", "eclipse_step.completed",
                 "transfer.completed", "job.completed"):
        assert kind in kinds
    assert summary["reboots"] == 0, "a MemoryError storm reset the agent"
    assert_exactly_once(ground, node.agent_id)


def test_events_wait_while_the_link_is_down_and_arrive_at_the_next_pass(ground, tmp_path):
    dep = ground.deploy(load_job("standard-pipeline.json"))
    node = Node(ground, tmp_path)
    # Run until 16:00: the agent has worked through an eclipse, but its only
    # contact so far ended at 13:28:41.
    code, summary, out = node.run(until="2008-09-20T16:00:00Z", until_idle=False)
    assert code == 4, out  # stopped at --until, job not finished
    held = summary["seq"]
    seen = ground.events(dep)
    assert seen, "the first pass delivered the first events"
    last_pass_end = parse(PASS_1[1])
    assert all(parse(e["timestamp"]) <= last_pass_end for e in seen)
    assert len(seen) + 1 < held, "events made after the pass are held on board"
    # The next pass (17:50) carries the rest, in batches.
    code, summary, out = node.run()
    assert code == 0, out
    later = [e for e in ground.events(dep) if parse(e["timestamp"]) > last_pass_end]
    assert len(later) >= 10
    assert all(parse(e["timestamp"]) < parse(PASS_2_START) + 600 for e in later)
    assert ground.status(dep) == "completed"
    assert_exactly_once(ground, node.agent_id)


def test_a_step_pauses_at_eclipse_entry_and_resumes_at_exit(ground, tmp_path):
    dep = ground.deploy(load_job("standard-pipeline.json"))
    code, _, out = Node(ground, tmp_path).run()
    assert code == 0, out
    evs = ground.events(dep)
    paused = [e for e in evs if e["type"] == "step.paused"]
    resumed = [e for e in evs if e["type"] == "step.resumed"]
    assert [e["payload"]["reason"] for e in paused] == ["eclipse"]
    assert paused[0]["step_id"] == resumed[0]["step_id"] == "features"
    assert abs(parse(paused[0]["timestamp"]) - parse(ECLIPSE_1[0])) <= 5
    assert abs(parse(resumed[0]["timestamp"]) - parse(ECLIPSE_1[1])) <= 5
    # a checkpoint is saved before the predictable pause, and progress is kept
    before = evs[evs.index(paused[0]) - 1]
    assert before["type"] == "checkpoint.saved"
    assert resumed[0]["payload"]["progress_fraction"] == paused[0]["payload"]["progress_fraction"]


def _one_step_job(power_w, compute_s=600):
    return {"name": "hot step", "steps": [{"id": "work", "name": "Work", "compute_s": compute_s,
                                          "output_mb": 1, "power_w": power_w}]}


def test_low_battery_pauses_the_step_until_the_battery_recovers(ground, tmp_path):
    dep = ground.deploy(_one_step_job(power_w=60, compute_s=1800))
    # 14 % charge and a weak array: the bus recharges to ~17 % before the job
    # arrives at the first pass; then 60 W of compute (halved below 30 %) drains it
    bus = {"initial_soc": 0.14, "solar_w": 30.0, "k_c_per_w": 0.5}
    code, _, out = Node(ground, tmp_path, bus=bus).run()
    assert code == 0, out
    evs = ground.events(dep)
    paused = [e for e in evs if e["type"] == "step.paused"]
    assert paused and paused[0]["payload"]["reason"] == "battery"
    resumed = [e for e in evs if e["type"] == "step.resumed"]
    assert resumed and parse(resumed[0]["timestamp"]) > parse(paused[0]["timestamp"])
    assert ground.status(dep) == "completed"


def test_heat_pauses_the_step_above_75c_until_it_cools_to_70c(ground, tmp_path):
    dep = ground.deploy(_one_step_job(power_w=30, compute_s=1200))
    code, _, out = Node(ground, tmp_path).run()
    assert code == 0, out
    evs = ground.events(dep)
    paused = [e for e in evs if e["type"] == "step.paused"]
    assert paused and paused[0]["payload"]["reason"] == "thermal"
    i = evs.index(paused[0])
    assert any(e["type"] == "step.resumed" for e in evs[i:])
    assert ground.status(dep) == "completed"


@pytest.mark.parametrize("job,reason", [
    ({"name": "bad type", "steps": [{"id": "a", "type": "teleport", "compute_s": 10}]},
     "unknown_step_type"),
    ({"name": "cycle", "steps": [{"id": "a", "compute_s": 10, "depends_on": ["b"]},
                                 {"id": "b", "compute_s": 10, "depends_on": ["a"]}]},
     "dependency_cycle"),
    ({"name": "unknown dep", "steps": [{"id": "a", "compute_s": 10, "depends_on": ["zz"]}]},
     "unknown_dependency"),
    ({"name": "absurd", "steps": [{"id": "a", "compute_s": 1e12}]}, "bad_field"),
    ({"name": "too many", "steps": [{"id": "s%d" % i, "compute_s": 1} for i in range(500)]},
     "too_many_steps"),
])
def test_a_bad_workload_is_refused_with_job_failed_and_the_next_good_job_runs(
        ground, tmp_path, job, reason):
    bad = ground.deploy_raw(job)
    good = ground.deploy({"name": "good", "steps": [{"id": "a", "compute_s": 60,
                                                     "output_mb": 0.5}]})
    code, _, out = Node(ground, tmp_path).run()
    assert code == 0, out
    evs = ground.events(bad)
    assert types(evs) == ["job.failed"]
    assert evs[0]["payload"]["status"] == "failed"
    assert evs[0]["payload"]["reason"].startswith(reason)
    assert ground.status(bad) == "failed"
    assert ground.status(good) == "completed"
    assert_exactly_once(ground, "sat-25544")


def test_a_workload_with_a_bad_signature_is_refused_as_unauthenticated(ground, tmp_path):
    dep = ground.deploy({"name": "signed", "steps": [{"id": "a", "compute_s": 60}]})
    node = Node(ground, tmp_path, uplink=True, cfg={"uplink_key": "not-the-console-key"})
    code, _, out = node.run()
    assert code == 0, out
    evs = ground.events(dep)
    assert types(evs) == ["job.failed"]
    assert evs[0]["payload"]["reason"].startswith("unauthenticated")


def test_a_signed_workload_with_the_right_key_runs(ground, tmp_path):
    dep = ground.deploy({"name": "signed", "steps": [{"id": "a", "compute_s": 60}]})
    code, _, out = Node(ground, tmp_path, uplink=True).run()
    assert code == 0, out
    assert ground.status(dep) == "completed"


def test_killing_the_agent_at_random_moments_loses_and_duplicates_nothing(ground, tmp_path):
    dep = ground.deploy(load_job("standard-pipeline.json"))
    node = Node(ground, tmp_path)
    rng = random.Random(20261122)
    kills = 0
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        # 4000 simulated seconds per wall second: the 4.6-hour run lasts seconds,
        # and every kill lands somewhere inside it
        proc = node.start(speed=4000)
        try:
            proc.wait(rng.uniform(0.05, 0.4))
        except Exception:
            proc.kill()  # SIGKILL: no chance to tidy up
            proc.wait()
            kills += 1
            continue
        if proc.returncode == 0:
            break
    code, _, out = node.run()  # once more to the end (it is idle already if done)
    assert code == 0, out
    assert kills >= 12, "too few kills landed (%d)" % kills
    assert ground.status(dep) == "completed"
    evs = ground.events(dep)
    kinds = types(evs)
    assert kinds.count("job.accepted") == 1 and kinds.count("job.completed") == 1
    for step in ("ingest", "features", "pack"):
        assert sum(1 for e in evs if e["type"] == "step.completed" and e["step_id"] == step) == 1
    seqs = assert_exactly_once(ground, node.agent_id)
    health = ground.agent_events(node.agent_id)
    boots = [e for e in health if e["type"] == "agent.booted"]
    assert len(boots) >= 3  # many kills land before the boot is journaled: those leave no trace
    assert [e["payload"]["boot_count"] for e in boots] == sorted(e["payload"]["boot_count"] for e in boots)
    assert len(seqs) == len(evs) + len(health)


@pytest.mark.parametrize("policy, starts", [("retry_immediate", 2), ("fail", 1)])
def test_a_failing_step_is_retried_by_its_policy_then_the_job_fails(ground, tmp_path, policy, starts):
    """A handler whose input is missing fails at its first slice: with
    retry_immediate (max_retries 1) it starts twice, with `fail` once, and the
    job ends failed naming the step; nothing runs after it."""
    job = {"name": "missing input", "steps": [
        {"id": "sum", "compute_s": 30, "output_mb": 0.1, "handler": "crc32",
         "input": "no-such-file.bin", "retry_policy": policy, "max_retries": 1},
        {"id": "after", "compute_s": 30, "output_mb": 0.1, "depends_on": ["sum"]}]}
    dep = ground.deploy(job)
    node = Node(ground, tmp_path)
    code, _, out = node.run()
    assert code == 0, out
    evs = ground.events(dep)
    assert ground.status(dep) == "failed"
    started = [e for e in evs if e["type"] == "step.started"]
    assert [e["step_id"] for e in started] == ["sum"] * starts
    retried = [e for e in evs if e["type"] == "fault.detected" and e["step_id"] == "sum"]
    assert len(retried) == starts - 1
    assert evs[-1]["type"] == "job.failed" and "sum" in evs[-1]["payload"]["reason"]
    assert_exactly_once(ground, node.agent_id)
