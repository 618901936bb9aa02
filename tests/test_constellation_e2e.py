"""A constellation job end to end under the MicroPython unix port: every
satellite of examples/fleets/train-4.json runs its unchanged firmware (.mpy)
as a node of its own, all on one simulated clock through the ISL hub, each
polling its own child deployment of a real Console on loopback during its
own ground passes (tools/demo_fleet.py, `umbra demo --fleet`). The Console
judges: the parent's status, which completion of each step counted
(highest epoch), every event once."""
import collections

import pytest

from tools import demo_fleet

pytestmark = pytest.mark.timeout(300)


def fly(tmp_path, **kw):
    lines = []
    code, s = demo_fleet.run(workdir=str(tmp_path / "demo"), echo=lines.append, **kw)
    s["lines"] = lines
    return code, s


def of(s, etype):
    return [e for e in s["events"] if e["type"] == etype]


def exactly_once(s):
    """Every satellite's events reached the Console once each, numbered by it without a gap."""
    by_sat = collections.defaultdict(list)
    for e in s["events"]:
        by_sat[e["satellite_id"]].append(e["seq"])
    for sat, seqs in by_sat.items():
        assert len(seqs) == len(set(seqs)), sat
        assert sorted(seqs) == list(range(min(seqs), max(seqs) + 1)), sat
    return by_sat


def counted(s):
    return dict((st["step_id"], st.get("completed_by") or {}) for st in s["steps"])


def test_a_satellite_losing_power_mid_step_hands_it_over_with_its_checkpoint_and_the_job_completes(
        tmp_path):
    code, s = fly(tmp_path)  # the demo as `make demo-fleet` runs it
    assert code == 0 and s["status"] == "completed", "\n".join(s["lines"][-30:])
    plan_owner = dict((st["step_id"], st["satellite"]) for st in s["plan"]["steps"])
    fo = of(s, "constellation.failover")
    assert len(fo) == 1 and fo[0]["payload"]["reason"] in ("battery_critical", "compute_unavailable")
    step, victim, to = fo[0]["step_id"], fo[0]["satellite_id"], fo[0]["payload"]["to_satellite"]
    assert victim == plan_owner[step] and to not in (None, victim)
    ack = of(s, "constellation.failover_acknowledged")
    assert [(e["satellite_id"], e["step_id"]) for e in ack] == [(to, step)]
    assert ack[0]["payload"]["from_checkpoint"] >= 1  # resumed from the checkpoint, not from 0
    before = [e["payload"]["percent"] for e in s["events"] if e["satellite_id"] == victim
              and e["type"] == "step.progress" and e["step_id"] == step]
    after = [e["payload"]["percent"] for e in s["events"] if e["satellite_id"] == to
             and e["type"] == "step.progress" and e["step_id"] == step]
    assert before and after and after[0] > before[-1]
    # the handoff carried the step's input over ISL; outputs went to the aggregator
    assert any(e["satellite_id"] == victim and e["payload"]["to"] == to
               for e in of(s, "isl_transfer.completed"))
    # each step counted once, the handed-over one from its new owner's epoch
    c = counted(s)
    assert sorted(c) == sorted(plan_owner)
    assert c[step]["satellite_id"] == to and c[step]["epoch"] > 1
    for sid, by in c.items():
        if sid != step:
            assert (by["satellite_id"], by["epoch"]) == (plan_owner[sid], 1)
    ends = of(s, "job.completed")
    assert [e["satellite_id"] for e in ends] == [plan_owner[s["plan"]["steps"][-1]["step_id"]]]
    exactly_once(s)
    assert all(n["outcome"] == "done" for n in s["nodes"])


def test_the_nominal_fleet_job_executes_as_the_fleet_forecast_predicts(tmp_path):
    code, s = fly(tmp_path, fault=False)
    assert code == 0 and s["status"] == "completed"
    # the same events on the same satellites (type, step) as the firmware's own forecast
    assert s["extra"] == 0 and s["as_predicted"] == s["predicted_n"], "\n".join(s["lines"][-12:])
    assert of(s, "constellation.failover") == []
    assert all(by["epoch"] == 1 for by in counted(s).values())
    exactly_once(s)


def test_an_owner_cut_off_mid_step_is_taken_over_and_its_late_completion_does_not_count(tmp_path):
    # the owner of infer_a (99903 in this plan) is cut off from every other
    # satellite for 40 minutes from 25 minutes in: it finishes its step alone,
    # an alternate has taken it over meanwhile
    code, s = fly(tmp_path, faults={"99903": [{"kind": "partition", "at_s": 1500, "for_s": 2400}]})
    assert s["status"] == "completed", "\n".join(s["lines"][-30:])
    # (99903 is the relay between 99902 and 99904 in this train: cut off, it
    # splits the fleet, and a step on the far side may be taken over too;
    # epochs keep each step's count at one)
    take = [e for e in of(s, "constellation.failover") if e["payload"]["reason"] == "silent"
            and e["step_id"] == "infer_a"]
    assert [e["payload"]["from_satellite"] for e in take] == ["99903"]
    taker = take[0]["satellite_id"]
    assert all(e["satellite_id"] != "99903" for e in of(s, "constellation.failover"))
    c = counted(s)
    assert c["infer_a"]["satellite_id"] == taker and c["infer_a"]["epoch"] > 1
    done = [(e["satellite_id"], e["payload"]["epoch"]) for e in of(s, "constellation.step_completed")
            if e["step_id"] == "infer_a"]
    assert ("99903", 1) in done and (taker, c["infer_a"]["epoch"]) in done  # it did finish, late
    step = [st for st in s["steps"] if st["step_id"] == "infer_a"][0]
    assert [(x["satellite_id"], x["epoch"]) for x in step["ignored_completions"]] == [("99903", 1)]
    assert len(of(s, "job.completed")) == 1
    assert all(by.get("satellite_id") for by in c.values())  # every step counted, once
    exactly_once(s)


def test_no_eligible_alternate_fails_the_step_and_the_parent_reads_partial(tmp_path):
    # the aggregator's temperature reads 85 degC from the middle of the job: its
    # step has no alternate
    hot = {"kind": "sensor", "sensor": "temperature", "mode": "stuck", "at_s": 2000,
           "for_s": 20000, "value": 85.0}
    code, s = fly(tmp_path, faults={"99904": [hot]})
    assert code == 1 and s["status"] == "partial", "\n".join(s["lines"][-30:])
    failed = of(s, "job.failed")
    assert [(e["satellite_id"], e["payload"]["status"]) for e in failed] == [("99904", "partial")]
    fo = [(e["step_id"], e["payload"]["to_satellite"]) for e in of(s, "constellation.failover")
          if e["satellite_id"] == "99904"]
    assert ("aggregate", None) in fo  # no alternate for the aggregator's step
    exactly_once(s)


def test_a_lost_closer_is_ended_partial_by_its_substitute_at_the_deadline_and_the_parent_reads_partial(
        tmp_path):
    # the aggregator (owner of the last step, no alternate) is lost before its inputs
    # arrive: at the job's deadline (the plan's 6 orbits) the first member heard claims
    # aggregate at a raised epoch, fails it and ends the job; the Console finishes the
    # lost closer's child with it
    code, s = fly(tmp_path, fault=False, faults={"99904": [{"kind": "lost", "at_s": 1673}]})
    assert code == 1 and s["status"] == "partial", "\n".join(s["lines"][-30:])
    failed = of(s, "job.failed")
    assert len(failed) == 1 and failed[0]["satellite_id"] != "99904"
    assert failed[0]["payload"]["status"] == "partial" and "aggregate" in failed[0]["payload"]["reason"]
    fo = [e for e in of(s, "constellation.failover") if e["payload"]["reason"] == "deadline"]
    assert [(e["satellite_id"], e["step_id"], e["payload"]["from_satellite"]) for e in fo] == \
        [(failed[0]["satellite_id"], "aggregate", "99904")]
    step = [st for st in s["steps"] if st["step_id"] == "aggregate"][0]
    assert step["owner"] == failed[0]["satellite_id"] and step["epoch"] > 1
    assert of(s, "job.completed") == []
    exactly_once(s)


def test_a_transfer_whose_route_is_lost_mid_way_waits_for_it_and_the_job_completes(tmp_path):
    # the 400 MB of capture_a, 99904 -> 99903 (the only route) from ~00:19:51,
    # take ~63 s: the pair's link goes down 30 s into it, for 3 minutes
    code, s = fly(tmp_path, fault=False,
                  faults={"99904": [{"kind": "isl_down", "peer": "99903", "at_s": 1220, "for_s": 180}]})
    assert code == 0 and s["status"] == "completed", "\n".join(s["lines"][-30:])
    out = [e for e in of(s, "isl_transfer.completed")
           if e["satellite_id"] == "99904" and e["payload"]["to"] == "99903"]
    assert len(out) == 1 and out[0]["payload"]["total_duration_s"] > 180  # it waited the outage out
    assert of(s, "constellation.failover") == []  # a lost link is no reason to fail over
    assert all(by["epoch"] == 1 for by in counted(s).values())
    exactly_once(s)
