"""The orbital planner (tools/planner): every rule of STEPS.md on the
ISS near its catalog TLE epoch, where the world is known (tools/scenario.py):
from 13:15 the first pass is 13:21:09-13:28:41 (Hartebeesthoek), eclipse-1
13:48:19-14:19:41, the next passes from 17:50."""
import glob
import json
import os

import pytest

from tools import planner
import planner_rules as rules
import timeutil
from tools import ROOT
from tools.console import catalog, eventcheck

START = timeutil.parse_iso("2008-09-20T13:15:00Z")


def iss():
    for name, l1, l2 in catalog.read_seed():
        if l1[2:7] == "25544":
            return {"id": "25544", "name": name, "tle": [l1, l2]}
    raise AssertionError("the ISS is in the shipped catalog")


def plan(steps, hours=12, bus=None, **job):
    sat = iss()
    if bus:
        sat["bus"] = bus
    job["steps"] = steps
    return planner.make_plan(sat, job, START, hours)


def refused(steps, **kw):
    with pytest.raises(planner.PlanError) as exc:
        plan(steps, **kw)
    return exc.value


def of(p, etype, step_id=None):
    return [e for e in p["events"] if e["type"] == etype
            and (step_id is None or e["step_id"] == step_id)]


def t(ev):
    return timeutil.parse_iso(ev["timestamp"])


def window(p, wid):
    return [w for w in p["orbital_environment"]["windows"] if w["id"] == wid][0]


# ------------------------------------------------------------------ the plan document

@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "examples", "jobs", "*.json"))))
def test_every_shipped_example_plans_with_a_valid_stream_in_time_order(path):
    with open(path) as f:
        job = json.load(f)["custom_job"]
    p = planner.make_plan(iss(), job, START, 12)
    for key in ("id", "created_at", "version", "satellite", "job", "orbital_environment",
                "placement_decisions", "schedule", "transfer_schedule", "hazards", "plan", "events"):
        assert key in p
    assert p["plan"]["status"] == "scheduled"
    times = [t(e) for e in p["events"]]
    assert times == sorted(times)
    assert all(eventcheck.check(e) is None for e in p["events"])
    assert p["events"][0]["type"] == "job.accepted" and p["events"][-1]["type"] == "job.completed"
    assert len(of(p, "step.completed")) == len([s for s in p["schedule"] if s["location"] == "onboard"])
    deadline = job.get("policy", {}).get("deadline_orbits")
    if deadline:
        assert times[-1] - START <= deadline * p["satellite"]["period_min"] * 60


def test_environment_lists_windows_bus_and_summary():
    p = plan([{"id": "a", "compute_s": 60}])
    env = p["orbital_environment"]
    assert env["bus"] == {"battery_wh": 80, "solar_w": 45, "bus_load_w": 8, "compute_w": 20,
                          "memory_mb": 512, "storage_mb": 8192, "downlink_mbps": 10}
    kinds = [w["kind"] for w in env["windows"]]
    assert env["summary"]["total_windows"] == len(kinds)
    assert env["summary"]["eclipse_windows"] == kinds.count("eclipse") > 5
    assert env["summary"]["comms_windows"] == kinds.count("contact") > 3
    assert window(p, "eclipse-1")["start"] == "2008-09-20T13:48:19Z"
    assert 0.3 < env["eclipse_fraction"] < 0.4
    assert p["satellite"]["norad_id"] == 25544


def test_job_is_accepted_at_the_first_contact_and_placed_at_the_executors_next_look():
    p = plan([{"id": "a", "compute_s": 60}])
    acc = of(p, "job.accepted")[0]
    assert acc["timestamp"] == "2008-09-20T13:21:12Z"   # AOS 13:21:09, the agent looks every 3 s
    assert 0 <= t(of(p, "placement.decided")[0]) - t(acc) <= 3
    assert of(p, "plan.created")[0]["payload"]["total_duration_s"] == p["plan"]["total_duration_s"]


def test_a_cycle_is_400_and_names_the_steps():
    err = refused([{"id": "a", "compute_s": 1, "depends_on": ["b"]},
                   {"id": "b", "compute_s": 1, "depends_on": ["a"]}])
    assert err.status == 400 and "dependency_cycle" in err.reason and "a" in err.reason


def test_an_unknown_handler_or_missing_compute_is_400():
    assert refused([{"id": "a", "compute_s": 1, "handler": "nope"}]).status == 400
    assert refused([{"id": "a"}]).status == 400


# ------------------------------------------------------------------ standard steps

def test_standard_step_pauses_across_the_eclipse_with_a_checkpoint_and_resumes_at_sun():
    p = plan([{"id": "long", "compute_s": 2400, "checkpoint_interval_s": 0}])
    types = [e["type"] for e in p["events"] if e["step_id"] == "long"]
    assert types == ["placement.decided", "step.started", "step.progress", "step.progress",
                     "checkpoint.saved", "step.paused", "step.resumed", "step.progress",
                     "step.completed"]
    paused, resumed = of(p, "step.paused")[0], of(p, "step.resumed")[0]
    assert paused["payload"]["reason"] == "eclipse"
    assert 0 <= t(paused) - timeutil.parse_iso("2008-09-20T13:48:19Z") <= 5
    assert 0 <= t(resumed) - timeutil.parse_iso("2008-09-20T14:19:41Z") <= 3
    done = of(p, "step.completed")[0]
    # 2400 s of work plus the eclipse
    assert done["payload"]["duration_s"] == pytest.approx(2400 + resumed["payload"]["paused_s"], abs=6)


def test_checkpoint_interval_saves_between_progress_marks():
    p = plan([{"id": "a", "compute_s": 1000, "checkpoint_interval_s": 100}])
    cks = [t(e) for e in of(p, "checkpoint.saved", "a")]
    marks = [t(e) for e in of(p, "step.progress", "a")] + [t(of(p, "step.started", "a")[0])]
    assert len(cks) >= 6
    for c in cks:   # at least every 100 s since the last progress or checkpoint
        last = max([m for m in marks + cks if m < c])
        assert 99 <= c - last <= 106


def test_low_battery_halves_compute_capacity_and_doubles_the_time():
    full = plan([{"id": "a", "compute_s": 600}])
    low = plan([{"id": "a", "compute_s": 600}], bus={"initial_soc": 0.25, "solar_w": 18})
    d_full = of(full, "step.completed")[0]["payload"]["duration_s"]
    d_low = of(low, "step.completed")[0]["payload"]["duration_s"]
    assert d_full == 600 and d_low == pytest.approx(1200, abs=10)


def test_outputs_nobody_onboard_consumes_are_downlinked_at_the_bus_rate_across_passes():
    p = plan([{"id": "a", "compute_s": 30, "output_mb": 100},
              {"id": "b", "compute_s": 30, "output_mb": 700, "depends_on": ["a"]}],
             security={"encryption": "aes128"})
    ts = p["transfer_schedule"]
    assert ts["total_downlink_mb"] == 700   # a's output is consumed on board by b
    assert ts["passes_used"] >= 2           # 700 MB at 10 Mbps: 560 s, more than one pass
    assert sum(x["data_mb"] for x in ts["transfers"]) == pytest.approx(700)
    assert of(p, "security.encrypted")[0]["payload"]["algorithm"] == "AES-128-CBC"
    types = [e["type"] for e in p["events"] if e["type"].startswith("transfer.")]
    assert types[0] == "transfer.started" and types[-1] == "transfer.completed"
    assert types.count("transfer.pass_started") == ts["passes_used"]
    assert [e["payload"]["data_transferred_mb"] for e in of(p, "transfer.progress")] == [175, 350, 525]


def test_deadline_not_met_is_422_naming_the_step_and_the_deadline():
    err = refused([{"id": "big", "compute_s": 20000}], policy={"deadline_orbits": 2})
    assert err.status == 422 and "'big'" in err.reason and "deadline" in err.reason


def test_horizon_is_stretched_to_cover_the_deadline_up_to_48_hours():
    p = plan([{"id": "a", "compute_s": 60}], hours=2, policy={"deadline_orbits": 10})
    assert p["orbital_environment"]["prediction_hours"] == pytest.approx(10 * 91.596 / 60, abs=0.01)
    p = plan([{"id": "a", "compute_s": 60}], hours=2, policy={"deadline_orbits": 100})
    assert p["orbital_environment"]["prediction_hours"] == 48


# ------------------------------------------------------------------ eclipse steps

def eclipse_step(sid, **kw):
    s = {"id": sid, "type": "eclipse", "compute_s": 360, "power_w": 20, "energy_budget_wh": 10}
    s.update(kw)
    return s


def test_eclipse_step_waits_for_the_eclipse_and_checks_its_energy_at_start_and_half():
    p = plan([eclipse_step("night")])
    types = [e["type"] for e in p["events"] if e["step_id"] == "night"]
    assert types == ["placement.decided", "eclipse_step.scheduled", "eclipse_step.energy_check",
                     "eclipse_step.started", "step.started", "step.progress", "step.progress",
                     "eclipse_step.energy_check", "step.progress", "step.completed",
                     "eclipse_step.completed"]
    assert of(p, "eclipse_step.scheduled")[0]["payload"]["window"] == "eclipse-1"
    check = of(p, "eclipse_step.energy_check")[0]["payload"]
    assert check["needed_wh"] == 2.0 and check["allowed_wh"] == 10 and check["ok"] is True
    started = t(of(p, "step.started")[0])
    assert 0 <= started - timeutil.parse_iso("2008-09-20T13:48:19Z") <= 3
    assert of(p, "eclipse_step.completed")[0]["payload"]["energy_consumed_wh"] == pytest.approx(2.0)
    assert p["schedule"][0]["window_id"] == "eclipse-1"


def test_the_half_way_energy_check_holds_the_step_to_what_is_left_of_its_budget():
    """The budget is the most the step may draw in eclipse: at 50 % (1 Wh of its
    10 drawn) it may draw 9 Wh more, whatever the battery could give."""
    p = plan([eclipse_step("night")])
    start, half = [e["payload"] for e in of(p, "eclipse_step.energy_check")]
    assert start["allowed_wh"] == 10 and half["needed_wh"] == 1.0
    assert half["allowed_wh"] == pytest.approx(9.0, abs=0.01) and half["ok"] is True


def test_two_eclipse_steps_share_one_allowance_in_priority_order():
    # each needs 6 Wh, the eclipse allows 10: the higher priority runs, the other waits an orbit
    p = plan([eclipse_step("lo", compute_s=1080, priority=1),
              eclipse_step("hi", compute_s=1080, priority=5)])
    assert t(of(p, "eclipse_step.started", "hi")[0]) < t(of(p, "step.started", "lo")[0])
    deferred = of(p, "eclipse_step.deferred", "lo")[0]["payload"]
    assert deferred["needed_wh"] == 6.0 and deferred["allowed_wh"] == 4.0
    assert deferred["next_window"] == "eclipse-2"
    assert [s["window_id"] for s in p["schedule"]] == ["eclipse-2", "eclipse-1"]


def test_min_battery_soc_binds_before_the_policy_fraction():
    p = plan([eclipse_step("night", min_battery_soc=0.9, energy_budget_wh=100, compute_s=180)])
    check = of(p, "eclipse_step.energy_check")[0]["payload"]
    e1 = window(p, "eclipse-1")
    battery_wh = 80 * check["battery_percent"] / 100
    expect = battery_wh - 0.9 * 80 - 8 * e1["duration_s"] / 3600
    assert check["allowed_wh"] == pytest.approx(expect, abs=0.05)
    assert check["allowed_wh"] < 0.65 * battery_wh and check["ok"] is True


def test_eclipse_step_needing_more_than_allowed_is_deferred_and_422_when_never_allowed():
    # 0.95 of the battery must stay: 20 W for 10 minutes never fits an eclipse
    err = refused([eclipse_step("night", min_battery_soc=0.95, compute_s=600, energy_budget_wh=100)])
    assert err.status == 422 and "'night'" in err.reason and "eclipse" in err.reason
    # a budget too small for the first eclipse's allowance but fine in a later one: not here,
    # the budget is per step, so a deferral is reported with the next window
    p = plan([eclipse_step("a", compute_s=1080, priority=2), eclipse_step("b", compute_s=1080)])
    d = of(p, "eclipse_step.deferred", "b")[0]
    assert d["payload"]["reason"].startswith("insufficient_energy")


def test_eclipse_step_longer_than_an_eclipse_resumes_in_the_next_one():
    p = plan([eclipse_step("long", compute_s=2400, energy_budget_wh=20)])
    assert [e["payload"]["reason"] for e in of(p, "step.paused", "long")] == ["eclipse"]
    resumed = of(p, "step.resumed", "long")[0]
    e2 = window(p, "eclipse-2")
    assert 0 <= t(resumed) - timeutil.parse_iso(e2["start"]) <= 3
    assert of(p, "eclipse_step.completed", "long")


def test_aggressive_policy_with_a_low_min_soc_is_warned_in_the_event_reason():
    p = plan([eclipse_step("x", eclipse_policy="aggressive", min_battery_soc=0.1)])
    assert "aggressive_low_min_soc" in of(p, "eclipse_step.scheduled")[0]["payload"]["reason"]
    p = plan([eclipse_step("x", eclipse_policy="aggressive", min_battery_soc=0.3)])
    assert "reason" not in of(p, "eclipse_step.scheduled")[0]["payload"]


def test_eclipse_allowance_rule_takes_the_smallest_of_its_three_terms():
    step = {"energy_budget_wh": 12.5, "eclipse_policy": "balanced", "min_battery_soc": 0.3}
    assert rules.eclipse_allowance_wh(step, 64, 80, 8, 0.5) == 12.5              # budget
    assert rules.eclipse_allowance_wh(dict(step, energy_budget_wh=99), 30, 80, 8, 0.5) == \
        pytest.approx(30 - 24 - 4)                                               # min soc
    assert rules.eclipse_allowance_wh(dict(step, energy_budget_wh=99, min_battery_soc=0,
                                           eclipse_policy="conservative"), 60, 80, 8, 0.5) == \
        pytest.approx(24)                                                        # f * B
    assert rules.eclipse_allowance_wh(step, 10, 80, 8, 0.5) == 0                 # never negative
    assert rules.eclipse_needed_wh({"power_w": 30}, 120, 20) == 1.0
    assert rules.eclipse_needed_wh({}, 360, 20) == 2.0


# ------------------------------------------------------------------ window steps

TIERS = {"minimal": {"compute_s": 60, "memory_mb": 64, "output_mb": 1},
         "standard": {"compute_s": 300, "memory_mb": 128, "output_mb": 5},
         "enhanced": {"compute_s": 900, "memory_mb": 256, "output_mb": 20},
         "maximum": {"compute_s": 1800, "memory_mb": 1024, "output_mb": 50}}


def test_tier_rule_fits_with_exactly_five_seconds_of_margin():
    step = {"quality_tiers": TIERS, "min_tier": "minimal", "preferred_tier": "enhanced"}
    # window_end - ready = 905 s -> available 900: enhanced fits exactly
    assert rules.select_tier(step, 905 - rules.TIER_MARGIN_S, 448) == "enhanced"
    assert rules.select_tier(step, 904.9 - rules.TIER_MARGIN_S, 448) == "standard"
    assert rules.select_tier(step, 10000, 448) == "enhanced"          # never above preferred
    assert rules.select_tier(step, 10000, 100) == "minimal"           # memory bound
    assert rules.select_tier(step, 905 - 5, 448, capacity=0.5) == "standard"   # half capacity
    assert rules.select_tier(dict(step, min_tier="standard"), 200, 448) is None


def test_window_step_picks_the_best_tier_for_the_time_left_in_the_sunlit_window():
    p = plan([{"id": "w", "type": "window", "quality_tiers": TIERS}])
    sel = of(p, "window_step.tier_selected", "w")[0]
    ready = t(sel)
    end = timeutil.parse_iso(window(p, "sunlit-1")["end"])
    assert sel["payload"]["available_s"] == pytest.approx(end - ready - 5, abs=1)
    assert sel["payload"]["tier"] == "enhanced"   # 1800 s does not fit, nor 1024 MB of 448 free
    assert p["placement_decisions"][0]["quality_tier"] == "enhanced"
    assert p["schedule"][0]["tier"] == "enhanced"
    assert of(p, "window_step.completed", "w")[0]["payload"]["output_mb"] == 20
    assert of(p, "step.completed", "w")[0]["payload"]["duration_s"] == 900


def test_window_step_whose_min_tier_does_not_fit_is_deferred_to_the_next_window():
    # 'a' ends at 13:41:15: 7 minutes of sun left, min_tier standard needs 300 s... but enhanced
    # is the lowest acceptable here (900 s): deferred to sunlit-2
    p = plan([{"id": "a", "compute_s": 1200},
              {"id": "w", "type": "window", "quality_tiers": TIERS, "min_tier": "enhanced",
               "preferred_tier": "enhanced", "depends_on": ["a"]}])
    d = of(p, "window_step.deferred", "w")[0]
    assert d["payload"]["next_window"] == "sunlit-2"
    sel = of(p, "window_step.tier_selected", "w")[0]
    assert sel["payload"]["tier"] == "enhanced"
    assert 0 <= t(sel) - timeutil.parse_iso(window(p, "sunlit-2")["start"]) <= 3
    assert p["schedule"][1]["window_id"] == "sunlit-2"


def test_eclipse_kind_window_step_runs_in_the_eclipse():
    p = plan([{"id": "w", "type": "window", "window_kind": "eclipse", "quality_tiers": TIERS}])
    sel = of(p, "window_step.tier_selected", "w")[0]
    assert sel["payload"]["tier"] == "enhanced"
    assert of(p, "step.started", "w")[0]["payload"]["window"] == "eclipse-1"


# ------------------------------------------------------------------ pass steps

def test_pass_step_is_cut_into_one_segment_per_pass_of_at_most_pass_minus_five_seconds():
    p = plan([{"id": "c", "type": "pass", "compute_s": 1000, "output_mb": 100}], hours=24)
    dec = of(p, "pass_step.decomposed", "c")[0]["payload"]
    segs = p["schedule"][0]["segments"]
    assert dec["segments"] == len(segs) >= 3 and dec["passes"] == [g["pass_id"] for g in segs]
    assert sum(g["compute_s"] for g in segs) == pytest.approx(1000, abs=0.5)
    for g in segs:
        w = window(p, g["pass_id"])
        assert g["compute_s"] <= w["duration_s"] - 5 + 0.5
    started = of(p, "pass_step.segment_started", "c")
    assert [e["payload"]["segment_index"] for e in started] == list(range(1, len(segs) + 1))
    assert [e["payload"]["reason"] for e in of(p, "step.paused", "c")] == ["link"] * (len(segs) - 1)
    merged = of(p, "pass_step.merged", "c")[0]["payload"]
    assert merged["output_mb"] == pytest.approx(100) and merged["merge_strategy"] == "concat"


def test_a_pass_shorter_than_min_pass_duration_is_skipped():
    p = plan([{"id": "c", "type": "pass", "compute_s": 60, "min_pass_duration_s": 460}])
    passes = of(p, "pass_step.decomposed", "c")[0]["payload"]["passes"]
    assert "contact-1" not in passes   # 452 s of Hartebeesthoek pass
    assert all(window(p, pid)["duration_s"] >= 460 for pid in passes)


def test_more_segments_than_max_segments_is_422():
    err = refused([{"id": "c", "type": "pass", "compute_s": 3000, "max_segments": 2}])
    assert err.status == 422 and "'c'" in err.reason and "max_segments is 2" in err.reason


def test_merge_strategies():
    assert rules.merged_output_mb("concat", [1, 2, 3]) == 6
    assert rules.merged_output_mb("reduce", [1, 2, 3]) == 3
    assert rules.merged_output_mb("latest", [1, 2, 3]) == 3
    assert rules.pass_segment_s(100, 300) == 95 and rules.pass_segment_s(100, 30) == 30
    assert rules.pass_segment_s(5, 30) == 0


# ------------------------------------------------------------------ placement

def test_either_placement_reasons():
    bus = {"compute_w": 20, "memory_mb": 512, "memory_base_mb": 64}
    e = {"location": "either"}
    assert rules.placement({"location": "onboard"}, bus, 0) == ("onboard", "preset_defined")
    assert rules.placement(dict(e, power_w=30), bus, 0) == ("ground", "insufficient_onboard_resources")
    assert rules.placement(dict(e, memory_mb=500), bus, 0) == ("ground", "insufficient_onboard_resources")
    assert rules.placement(dict(e, output_mb=1), bus, 10) == ("onboard", "data_reduction")
    assert rules.placement(dict(e, output_mb=10, input_mb=5), bus, 100) == ("ground", "downlink_budget")
