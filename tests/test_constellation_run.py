"""A constellation job run by the fleet's own firmware (firmware/constellation.py,
the agent's constellation role), every member's unchanged agent on one
simulated clock with the fleet's ISL network (tools/planner/fleetforecast.py):
handoffs over ISL, failover with the checkpoint, takeover of a silent owner,
fencing by epoch, and `partial` when no alternate is left."""
import collections
import json
import os

import pytest

from tools import ROOT
from tools.planner import constellation, fleetforecast

import fleet

TRAIN = os.path.join(ROOT, "examples", "fleets", "train-4.json")


@pytest.fixture(scope="module")
def train():
    with open(TRAIN) as f:
        doc = json.load(f)
    world = fleet.FleetWorld(doc, hours=24)
    return doc, constellation.make_constellation_plan(doc, doc["job"], world.start)


def fly(train, faults=()):
    doc, cplan = train
    world = fleet.FleetWorld(doc, hours=24)
    return fleetforecast.run(world, cplan, doc["job"], faults=list(faults))


def of(out, etype):
    return [e for e in out.merged() if e["type"] == etype]


def owners(cplan):
    return dict((s["step_id"], s["satellite"]) for s in cplan["steps"])


def completions(out):
    by_step = collections.defaultdict(list)
    for e in of(out, "constellation.step_completed"):
        by_step[e["step_id"]].append((e["payload"]["epoch"], e["satellite_id"]))
    return by_step


def accepted_once(out, steps):
    """Every step completed, and its highest epoch completed once (what the
    Console counts)."""
    by_step = completions(out)
    assert sorted(by_step) == sorted(steps)
    for sid, done in by_step.items():
        top = max(e for e, _ in done)
        assert [d for d in done if d[0] == top] == [d for d in done if d[0] == top][:1], (sid, done)
    return by_step


def test_the_nominal_fleet_job_runs_each_step_on_its_satellite_once_and_ends_on_the_aggregator(train):
    doc, cplan = train
    out = fly(train)
    own = owners(cplan)
    by_step = accepted_once(out, own)
    for sid, done in by_step.items():
        assert done == [(1, own[sid])]  # where the plan put it, at the plan's epoch
    ends = of(out, "job.completed")
    assert [e["satellite_id"] for e in ends] == [own["aggregate"]]
    assert of(out, "job.failed") == [] and of(out, "constellation.failover") == []
    # outputs crossed the fleet over ISL, multi-hop where the plan routed so
    started = of(out, "isl_transfer.started")
    assert started and all(e["payload"]["to"] != e["satellite_id"] for e in started)
    assert len(of(out, "isl_transfer.completed")) == len(started)
    for e in of(out, "isl_transfer.completed"):
        assert e["payload"]["total_duration_s"] > 0
    assert all(state is None for state in out.state.values())  # every member ended its part
    # ... each with one constellation.satellite_complete, its child deployment's end
    for sat, evs in out.events.items():
        kinds = [e["type"] for e in evs]
        assert kinds.count("constellation.satellite_complete") == 1, sat
        assert kinds[-1] == ("job.completed" if sat == own["aggregate"]
                             else "constellation.satellite_complete"), sat
    done = dict((e["satellite_id"], e["payload"]) for e in of(out, "constellation.satellite_complete"))
    assert sum(p["steps_completed"] for p in done.values()) == len(own)
    # each member's events are its own stream, numbered by it, none twice
    for sat, evs in out.events.items():
        seqs = [e["seq"] for e in evs]
        assert seqs == sorted(set(seqs)), sat


def test_a_drained_owner_hands_its_step_over_with_its_checkpoint_and_the_job_completes(train):
    doc, cplan = train
    own = owners(cplan)
    victim = own["infer_a"]
    out = fly(train, [{"kind": "drain", "satellite": victim, "at_s": 1800, "soc": 0.08}])
    fo = of(out, "constellation.failover")
    assert [(e["satellite_id"], e["step_id"], e["payload"]["reason"]) for e in fo] == \
        [(victim, "infer_a", "battery_critical")]
    to = fo[0]["payload"]["to_satellite"]
    ack = of(out, "constellation.failover_acknowledged")
    assert [(e["satellite_id"], e["payload"]["to_satellite"]) for e in ack] == [(to, to)]
    assert ack[0]["payload"]["from_checkpoint"] >= 1
    # the new owner goes on from where the checkpoint was, not from 0: it
    # reports only the quarter marks past the checkpoint's
    before = [e["payload"]["percent"] for e in out.events[victim]
              if e["type"] == "step.progress" and e["step_id"] == "infer_a"]
    after = [e["payload"]["percent"] for e in out.events[to]
             if e["type"] == "step.progress" and e["step_id"] == "infer_a"]
    assert before and after and after[0] > before[-1] and after[-1] == 75
    by_step = accepted_once(out, own)
    assert by_step["infer_a"] == [(fo[0]["payload"]["epoch"], to)]
    assert len(of(out, "job.completed")) == 1


def test_a_lost_owner_falls_silent_and_its_first_alternate_takes_the_step_over(train):
    doc, cplan = train
    own = owners(cplan)
    victim = own["infer_a"]
    out = fly(train, [{"kind": "loss", "satellite": victim, "at_s": 1800}])
    fo = of(out, "constellation.failover")
    assert len(fo) == 1 and fo[0]["payload"]["reason"] == "silent"
    assert fo[0]["payload"]["from_satellite"] == victim and fo[0]["satellite_id"] != victim
    by_step = accepted_once(out, own)
    assert by_step["infer_a"] == [(fo[0]["payload"]["epoch"], fo[0]["satellite_id"])]
    assert fo[0]["payload"]["epoch"] > 1
    assert len(of(out, "job.completed")) == 1


def test_a_partitioned_owner_that_comes_back_never_makes_its_step_count_twice(train):
    doc, cplan = train
    own = owners(cplan)
    victim = own["infer_a"]
    out = fly(train, [{"kind": "partition", "satellite": victim, "from_s": 1800, "to_s": 3000}])
    by_step = accepted_once(out, own)
    done = sorted(by_step["infer_a"])
    # cut off, the old owner finished at its epoch; the taker's higher epoch is what counts
    assert done[0] == (1, victim) and done[-1][0] > 1 and done[-1][1] != victim
    # the cut-off satellite took nothing over: it heard no one
    assert all(e["satellite_id"] != victim for e in of(out, "constellation.failover"))
    assert len(of(out, "job.completed")) == 1
    assert all(state is None for state in out.state.values())


def test_no_eligible_alternate_fails_the_step_and_the_job_ends_partial(train):
    doc, cplan = train
    own = owners(cplan)
    agg = own["aggregate"]
    assert [s["alternates"] for s in cplan["steps"] if s["step_id"] == "aggregate"] == [[]]
    out = fly(train, [{"kind": "heat", "satellite": agg, "at_s": 2500, "temperature_c": 85}])
    fo = of(out, "constellation.failover")
    assert [(e["step_id"], e["payload"]["reason"], e["payload"]["to_satellite"]) for e in fo] == \
        [("aggregate", "thermal_exceedance", None)]
    failed = of(out, "job.failed")
    assert [(e["satellite_id"], e["payload"]["status"]) for e in failed] == [(agg, "partial")]
    assert "aggregate" in failed[0]["payload"]["reason"]
    assert of(out, "job.completed") == []
    assert all(state is None for state in out.state.values())


def test_a_constellation_part_naming_an_unknown_step_is_refused_with_the_step_named(train):
    doc, cplan = train
    bad = json.loads(json.dumps(cplan))
    bad["steps"][0]["step_id"] = "nope"
    out = fly((doc, bad))
    failed = of(out, "job.failed")
    assert failed and all("nope" in e["payload"]["reason"] for e in failed)
    assert of(out, "job.accepted") == []


def test_a_small_seeded_campaign_never_counts_a_step_twice_nor_loses_an_event():
    from tools import fleetcampaign
    s = fleetcampaign.run(runs=6, seed=3)
    assert s["runs"] == 6 and sum(s["injected_by_kind"].values()) >= 6
    assert s["completed_twice"] == 0 and s["events_lost"] == 0 and s["events_duplicated"] == 0
    assert s["unexplained"] == 0, s["bad_runs"]
    assert sum(s["outcomes"].values()) == 6


def test_the_judge_counts_a_step_completed_twice_at_its_highest_epoch(train):
    # the campaign's own yardstick must see what it is there to see
    from tools import fleetcampaign
    doc, cplan = train
    out = fly(train)
    sat = owners(cplan)["infer_a"]
    done = [e for e in out.events[sat] if e["type"] == "constellation.step_completed"][0]
    out.events[sat].append(dict(done, seq=10 ** 6))
    rec = fleetcampaign.judge(out, cplan, [])
    assert rec["completed_twice"] == 1 and rec["outcome"] == "completed"


def test_an_owner_never_heard_from_is_taken_over_only_after_unheard_s(train):
    # lost before its first pass: it never polled its part, so no one ever hears it
    doc, cplan = train
    own = owners(cplan)
    victim = own["infer_a"]
    out = fly(train, [{"kind": "loss", "satellite": victim, "at_s": 1}])
    fo = of(out, "constellation.failover")
    assert [(e["step_id"], e["payload"]["reason"]) for e in fo] == [("infer_a", "silent")]
    others_part = min(e["timestamp"] for e in of(out, "job.accepted") if e["satellite_id"] != victim)
    import timeutil
    waited = timeutil.parse_iso(fo[0]["timestamp"]) - timeutil.parse_iso(others_part)
    assert waited >= 6 * 3600  # unheard_s: it may only not have had its first pass yet
    assert out.events[victim] == [] and len(of(out, "job.completed")) == 1


def test_a_constellation_part_for_a_satellite_without_an_isl_is_refused_and_nothing_kept(train):
    # the forecast's one-satellite run: the same agent, no ISL port
    from tools.planner import forecast
    import spacecraft
    doc, cplan = train
    sat_id = cplan["steps"][0]["satellite"]
    spec = fleetforecast.member_spec(cplan, doc["job"], sat_id, deployment_id=forecast.DEPLOYMENT_ID)
    world = fleet.FleetWorld(doc, hours=6)
    orb = [s for s in world.satellites if s["satellite_id"] == sat_id][0]["orbit"]
    sat = spacecraft.SimulatedSatellite(sat_id, orb, world.start)
    out = forecast.run(spec, sat, world.start, world.start + 6 * 3600)
    assert out.accepted_at is None and out.failure is not None
    assert "no inter-satellite link" in out.failure
    assert [e["type"] for e in out.events] == ["job.failed"]


def test_a_member_cut_off_when_a_step_was_told_done_still_ends_its_part_once_a_dependant_is_done(train):
    # 99902, in the middle of the train, is cut off while infer_a completes on 99903 (its
    # notice cannot reach 99902, nor 99901 through it) and until after 99903's part is
    # over; the aggregator's later notice of aggregate reaches it: aggregate took
    # infer_a's output, so infer_a is done too, and 99902 ends its part
    out = fly(train, [{"kind": "partition", "satellite": "99902", "from_s": 1754, "to_s": 2626}])
    assert len(of(out, "job.completed")) == 1
    assert all(state is None for state in out.state.values()), out.state   # every member ended
    ends = [e["satellite_id"] for e in of(out, "constellation.satellite_complete")]
    assert sorted(ends) == ["99901", "99902", "99903", "99904"]


def deadline_of(cplan):
    return int(cplan["start"] + cplan["horizon_s"])


def test_a_lost_closer_with_no_alternate_is_ended_partial_by_its_substitute_at_the_deadline(train):
    # the aggregator (owner of the last step, no alternate) is lost before its inputs
    # arrive: no one can run aggregate, and its owner cannot fail it. At the job's
    # deadline (the plan's horizon) the first member heard, in the job's satellite
    # order, claims it at a raised epoch, fails it and ends the job partial; every
    # member left ends its part
    import timeutil
    from tools import fleetcampaign
    doc, cplan = train
    agg = owners(cplan)["aggregate"]
    faults = [{"kind": "loss", "satellite": agg, "at_s": 1673}]
    out = fly(train, faults)
    failed = of(out, "job.failed")
    assert len(failed) == 1 and failed[0]["payload"]["status"] == "partial"
    sub = failed[0]["satellite_id"]
    assert sub != agg and "aggregate" in failed[0]["payload"]["reason"]
    assert timeutil.parse_iso(failed[0]["timestamp"]) >= deadline_of(cplan)
    fo = [e for e in of(out, "constellation.failover") if e["step_id"] == "aggregate"]
    ack = [e for e in of(out, "constellation.failover_acknowledged") if e["step_id"] == "aggregate"]
    assert [(e["satellite_id"], e["payload"]["from_satellite"], e["payload"]["reason"])
            for e in fo] == [(sub, agg, "deadline")]
    assert [(e["satellite_id"], e["payload"]["epoch"]) for e in ack] == \
        [(sub, fo[0]["payload"]["epoch"])] and fo[0]["payload"]["epoch"] > 1
    assert of(out, "job.completed") == []
    assert all(state is None for sat, state in out.state.items() if sat != agg), out.state
    rec = fleetcampaign.judge(out, cplan, faults)
    assert (rec["outcome"], rec["explained"], rec["parts_open"], rec["events_duplicated"],
            rec["ends_fenced"]) == ("partial", True, 0, 0, 0)


def test_a_member_cut_off_until_the_others_parts_are_over_ends_its_own_at_the_deadline(train):
    # 99901 is cut off from before infer_b's handover until after every other member's
    # part is over: no one tells it more. Past the job's deadline it ends its part
    import timeutil
    doc, cplan = train
    agg = owners(cplan)["aggregate"]
    out = fly(train, [{"kind": "heat", "satellite": agg, "at_s": 1702, "temperature_c": 86.6},
                      {"kind": "partition", "satellite": "99901", "from_s": 2171, "to_s": 4570}])
    assert [e["satellite_id"] for e in of(out, "job.completed")] == [agg]
    assert all(state is None for state in out.state.values()), out.state
    ends = dict((e["satellite_id"], e) for e in of(out, "constellation.satellite_complete"))
    assert sorted(ends) == ["99901", "99902", "99903", "99904"]
    assert timeutil.parse_iso(ends["99901"]["timestamp"]) >= deadline_of(cplan)
    assert of(out, "job.failed") == []


def test_a_closer_cut_off_past_the_deadline_and_its_substitute_both_end_but_only_the_higher_epoch_counts(train):
    # the aggregator is cut off from before its inputs arrive until after the deadline:
    # it fails aggregate there (deadline) and ends the job as its owner at epoch 1, while
    # the others' substitute claims aggregate at a raised epoch and ends it too. The
    # Console and the judge count the end of the last step's highest epoch only
    from tools import fleetcampaign
    from tools.console import constellations
    doc, cplan = train
    agg = owners(cplan)["aggregate"]
    until = deadline_of(cplan) - int(cplan["start"])
    faults = [{"kind": "partition", "satellite": agg, "from_s": 2000, "to_s": until + 1800}]
    out = fly(train, faults)
    failed = of(out, "job.failed")
    assert len(failed) == 2 and agg in [e["satellite_id"] for e in failed]
    sub = [e["satellite_id"] for e in failed if e["satellite_id"] != agg][0]
    view = dict((s["step_id"], s) for s in constellations.step_view(cplan, out.merged()))
    assert view["aggregate"]["owner"] == sub and view["aggregate"]["epoch"] > 1
    assert view["aggregate"]["completed_by"] is None
    assert of(out, "job.completed") == []
    rec = fleetcampaign.judge(out, cplan, faults)
    assert (rec["outcome"], rec["events_duplicated"], rec["ends_fenced"], rec["parts_open"]) == \
        ("partial", 0, 1, 0)


def test_a_closer_lost_after_its_last_step_before_its_downlink_is_ended_partial_by_the_ground(train):
    # the aggregator completes aggregate, tells the others over ISL (they end their
    # parts), and is lost while its downlink waits for a pass: the result and the
    # job's end are lost with it, and no member ends the job. The ground does, past
    # the deadline and its grace: the lost closer's part failed, the job partial,
    # explained by the loss
    from tools import fleetcampaign
    doc, cplan = train
    agg = owners(cplan)["aggregate"]
    faults = [{"kind": "loss", "satellite": agg, "at_s": 3116}]
    out = fly(train, faults)
    held = [(e["type"], e["step_id"]) for e in out.events[agg] if e["seq"] in out.unsent[agg]]
    assert ("constellation.step_completed", "aggregate") in held  # done, never downlinked
    assert not [e for e in out.consoles[agg].events if e["type"].startswith("job.") and
                e["type"] != "job.accepted"]
    assert of(out, "job.completed") == [] and of(out, "job.failed") == []
    assert all(state is None for sat, state in out.state.items() if sat != agg), out.state
    statuses, grounded = fleetcampaign.ground_view(out, cplan, faults)
    assert grounded == [agg] and statuses[agg] == "failed"
    assert all(st == "completed" for sat, st in statuses.items() if sat != agg)
    rec = fleetcampaign.judge(out, cplan, faults)
    assert (rec["outcome"], rec["explained"], rec["ground_ended"], rec["parts_open"],
            rec["events_lost"], rec["events_duplicated"], rec["completed_twice"]) == \
        ("partial", True, 1, 0, 0, 0, 0)
    # the ground's end on a satellite that was not lost is not explained by the faults
    rec = fleetcampaign.judge(out, cplan, [{"kind": "drain", "satellite": agg, "at_s": 3116,
                                             "soc": 0.08}])
    assert rec["outcome"] == "partial" and not rec["explained"]
