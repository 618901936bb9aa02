"""Constellation planning (tools/planner/constellation.py, CONSTELLATION.md
"Fleet and plan"): the assignment against exhaustive search, the train's
plan, routes that are the fleet router's, and refusals that name the step."""
import itertools
import json
import math
import os
import random

import pytest

import timeutil
from tools import ROOT
from tools.planner import PlanError, normalise_job
from tools.planner import constellation as cp

TRAIN = os.path.join(ROOT, "examples", "fleets", "train-4.json")


def train():
    with open(TRAIN) as f:
        return json.load(f)


def random_dag(rng, n):
    steps = []
    for i in range(n):
        deps = sorted(rng.sample(range(i), min(i, rng.choice((0, 1, 1, 2))))) if i else []
        steps.append({"id": "s%d" % i, "compute_s": rng.choice((120, 300, 600, 900)),
                      "output_mb": rng.choice((1, 20, 200)),
                      "depends_on": ["s%d" % d for d in deps]})
    return {"name": "random", "steps": steps, "policy": {"deadline_orbits": 4}}


def optimum(model, order, by_id, candidates):
    best = math.inf
    for combo in itertools.product(*[candidates[sid] for sid in order]):
        span = model.schedule(order, by_id, dict(zip(order, combo)))[1]
        best = min(best, span)
    return best


@pytest.mark.parametrize("seed", range(20))
def test_the_assignment_is_within_10_percent_of_exhaustive_search(seed):
    """Seeded DAGs of 4 to 6 steps on 3 or 4 satellites of the train: the
    planner's span against the best of every assignment (enumerated here)."""
    rng = random.Random(seed)
    doc = train()
    fleet = doc["fleet"][:rng.choice((3, 4))]
    job = random_dag(rng, rng.choice((4, 5, 6)))
    plan = cp.make_constellation_plan({"epoch": doc["epoch"], "fleet": fleet}, job,
                                      timeutil.parse_iso(doc["epoch"]), stream=False)
    # the same model the planner used, rebuilt here for the enumeration
    import fleetfile
    sats = fleetfile.load({"epoch": doc["epoch"], "fleet": fleet})
    norm, order = normalise_job(job)
    by_id = dict((s["id"], s) for s in norm["steps"])
    t0 = timeutil.parse_iso(doc["epoch"])
    model = cp._Model(sats, t0, t0 + plan["horizon_s"])
    aggs = [s["satellite_id"] for s in sats if s["role"] == "aggregator"]
    sinks = cp._aggregator_steps(norm["steps"], order)
    candidates = dict((sid, aggs if sid in sinks and aggs else [s["satellite_id"] for s in sats])
                      for sid in order)
    best = optimum(model, order, by_id, candidates)
    assert best < math.inf
    assert plan["metrics"]["critical_path_s"] <= 1.10 * best + 1e-6, (plan["metrics"], best)
    # what the plan says is what its assignment gives
    a = dict((s["step_id"], s["satellite"]) for s in plan["steps"])
    assert abs(model.schedule(order, by_id, a)[1] - plan["metrics"]["critical_path_s"]) < 0.1


def test_the_trains_plan_assigns_every_step_routes_its_isl_edges_and_lists_alternates():
    doc = train()
    plan = cp.make_constellation_plan(doc, doc["job"], timeutil.parse_iso(doc["epoch"]))
    steps = dict((s["step_id"], s) for s in plan["steps"])
    assert set(steps) == set(s["id"] for s in doc["job"]["steps"])
    ids = [s["satellite_id"] for s in doc["fleet"]]
    for s in plan["steps"]:
        assert s["satellite"] in ids and s["satellite"] not in s["alternates"]
        assert set(s["alternates"]) <= set(ids)
    # the fan-in sink runs on the aggregator
    agg = [s["satellite_id"] for s in doc["fleet"] if s["role"] == "aggregator"]
    assert steps["aggregate"]["satellite"] in agg
    # every edge across satellites has the router's path, from the producer to the consumer
    edges = 0
    for s in plan["steps"]:
        for d in s["depends_on"]:
            if steps[d]["satellite"] != s["satellite"]:
                edges += 1
                route = s["isl_route"] if isinstance(s["isl_route"], list) else s["isl_route"][d]
                assert route[0] == steps[d]["satellite"] and route[-1] == s["satellite"]
                assert s["start"] >= steps[d]["finish"]
    assert plan["metrics"]["isl_transfers"] == edges
    assert len(plan["isl_routing"]) >= edges
    assert 0 < plan["metrics"]["reliability"] <= 1
    assert plan["metrics"]["satellites_used"] == len(set(s["satellite"] for s in plan["steps"]))


def test_the_trains_plan_predicts_the_fleet_stream_its_agents_fly_the_same_every_time():
    """The plan's `events`: the fleet's own agents flying the plan
    (fleetforecast.py), merged in time order, each with its satellite: every
    step started and completed once on its planned satellite, each ISL edge
    a transfer from the producer's satellite to the consumer's, the job
    completed on the last step's satellite; byte for byte the same again."""
    doc = train()
    t0 = timeutil.parse_iso(doc["epoch"])
    plan = cp.make_constellation_plan(doc, doc["job"], t0)
    evs = plan["events"]
    assert evs and all(set(e) == set(cp.STREAM_FIELDS) for e in evs)
    times = [(timeutil.parse_iso(e["timestamp"]), e["satellite_id"]) for e in evs]
    assert times == sorted(times)
    owner = dict((s["step_id"], s["satellite"]) for s in plan["steps"])
    for sid, sat in owner.items():
        for etype in ("constellation.step_started", "constellation.step_completed"):
            assert [e["satellite_id"] for e in evs
                    if e["type"] == etype and e["step_id"] == sid] == [sat], (etype, sid)
    sent = [(e["satellite_id"], e["payload"]["to"]) for e in evs
            if e["type"] == "isl_transfer.completed"]
    for s in plan["steps"]:
        for d in s["depends_on"]:
            if owner[d] != s["satellite"]:
                assert (owner[d], s["satellite"]) in sent, (d, s["step_id"])
    ends = [e for e in evs if e["type"] in ("job.completed", "job.failed")]
    assert [(e["type"], e["satellite_id"]) for e in ends] == \
        [("job.completed", plan["steps"][-1]["satellite"])]
    # every satellite that may run a step flew it; the others did not
    used = set(owner.values()) | set(a for s in plan["steps"] for a in s["alternates"])
    assert set(e["satellite_id"] for e in evs) == used
    again = cp.make_constellation_plan(doc, doc["job"], t0)
    assert json.dumps(again, sort_keys=True) == json.dumps(plan, sort_keys=True)
    assert cp.make_constellation_plan(doc, doc["job"], t0, stream=False)["events"] == []


def test_an_edge_between_the_trains_ends_routes_multi_hop_and_the_stream_carries_every_hop():
    """The train with its middle satellites as aggregators low on energy: a
    compute step can only go to 99901, and max_reliability puts its consumer
    on the far aggregator, 99904; the edge's route goes through the middle,
    and the predicted stream's transfer takes that route hop by hop."""
    doc = train()
    fleet = [dict(s) for s in doc["fleet"]]
    for s in fleet[1:3]:
        s.update(role="aggregator", bus={"initial_soc": 0.2})
    job = {"name": "far ends", "policy": {"objective": "max_reliability", "deadline_orbits": 6},
           "steps": [{"id": "capture", "compute_s": 600, "output_mb": 20, "role": "compute"},
                     {"id": "sink", "compute_s": 300, "output_mb": 1, "role": "aggregator",
                      "depends_on": ["capture"]}]}
    plan = cp.make_constellation_plan({"epoch": doc["epoch"], "fleet": fleet}, job,
                                      timeutil.parse_iso(doc["epoch"]))
    steps = dict((s["step_id"], s) for s in plan["steps"])
    assert (steps["capture"]["satellite"], steps["sink"]["satellite"]) == ("99901", "99904")
    route = steps["sink"]["isl_route"]
    assert route[0] == "99901" and route[-1] == "99904" and len(route) >= 3
    evs = plan["events"]
    started = [e for e in evs if e["type"] == "isl_transfer.started"]
    assert [(e["satellite_id"], e["payload"]["to"], e["payload"]["hop_count"])
            for e in started] == [("99901", "99904", len(route) - 1)]
    hops = [(e["payload"]["from"], e["payload"]["to"]) for e in evs
            if e["type"] == "isl_transfer.hop_completed"]
    assert hops == list(zip(route, route[1:]))
    assert [e["satellite_id"] for e in evs if e["type"] == "job.completed"] == ["99904"]


def test_umbra_plan_fleet_prints_the_predicted_stream_the_same_every_time():
    import subprocess
    import sys
    runs = [subprocess.run([sys.executable, "-m", "tools.cli", "plan", "--fleet", TRAIN, "--json"],
                           cwd=ROOT, capture_output=True, timeout=120) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    doc = json.loads(runs[0].stdout)
    assert doc["events"] and doc["events"][-1]["type"] == "job.completed"
    text = subprocess.run([sys.executable, "-m", "tools.cli", "plan", "--fleet", TRAIN,
                           "--events"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "predicted fleet stream: %d events from" % len(doc["events"]) in text.stdout
    assert "job.completed" in text.stdout.splitlines()[-1]


def test_far_ends_route_through_the_middle_of_the_train():
    """Two steps that must sit at the train's two ends (a one-satellite fleet
    each would be no choice at all: the candidates are the ends only, here by
    giving the middle satellites no sunlight budget via a tight fleet of the
    ends and the middle as relays): the edge goes multi-hop."""
    doc = train()
    import fleetfile
    sats = fleetfile.load(doc)
    t0 = timeutil.parse_iso(doc["epoch"])
    model = cp._Model(sats, t0, t0 + 6 * 3600)
    r = model.route("99901", "99904", t0, 20.0)
    assert r is not None and r["path"][0] == "99901" and r["path"][-1] == "99904"
    assert len(r["path"]) >= 3  # the ends are ~10000 km apart: through the middle


@pytest.mark.parametrize("bad, why", [
    ({"fleet": []}, "fleet: the fleet is empty"),
    ({"epoch": "2026-03-08T00:00:00Z",
      "fleet": [{"satellite_id": "a", "orbit": {"altitude_km": 550, "inclination_deg": 51}},
                {"satellite_id": "a", "orbit": {"altitude_km": 550, "inclination_deg": 51}}]},
     "appears twice"),
])
def test_a_fleet_that_does_not_load_is_a_400_naming_the_satellite(bad, why):
    job = {"name": "x", "steps": [{"id": "a", "compute_s": 60}]}
    with pytest.raises(PlanError) as err:
        cp.make_constellation_plan(bad, job, 0)
    assert err.value.status == 400 and why in err.value.reason


def test_a_cycle_is_a_422_naming_its_steps():
    doc = train()
    job = {"name": "loop", "steps": [{"id": "a", "compute_s": 60, "depends_on": ["b"]},
                                     {"id": "b", "compute_s": 60, "depends_on": ["a"]}]}
    with pytest.raises(PlanError) as err:
        cp.make_constellation_plan(doc, job, timeutil.parse_iso(doc["epoch"]))
    assert err.value.status == 422 and "cycle" in err.value.reason and "a, b" in err.value.reason


def test_a_step_that_cannot_finish_in_the_horizon_is_a_422_naming_it():
    doc = train()
    job = {"name": "long", "steps": [{"id": "huge", "compute_s": 200000}],
           "policy": {"deadline_orbits": 2}}
    with pytest.raises(PlanError) as err:
        cp.make_constellation_plan(doc, job, timeutil.parse_iso(doc["epoch"]))
    assert err.value.status == 422 and "'huge'" in err.value.reason


def test_the_console_plans_a_constellation_over_http_and_refuses_bad_fleets(tmp_path):
    import httpx
    from tools.console import auth
    from tools.console.server import serve_in_thread
    doc = train()
    console = serve_in_thread(str(tmp_path / "c.db"))
    try:
        user = {"X-API-Key": auth.create_key(console.db, "user")["key"]}
        agent = {"X-API-Key": auth.create_key(console.db, "agent", "sat-99901",
                                              satellite_id="25544")["key"]}
        url = console.url + "/v1/constellation/plan"
        body = {"fleet": doc["fleet"], "epoch": doc["epoch"], "job": doc["job"]}
        r = httpx.post(url, json=body, headers=user, timeout=60)
        assert r.status_code == 200, r.text
        local = cp.make_constellation_plan(doc, doc["job"], timeutil.parse_iso(doc["epoch"]))
        assert r.json()["metrics"] == local["metrics"]
        assert [s["satellite"] for s in r.json()["steps"]] == \
            [s["satellite"] for s in local["steps"]]
        # the same predicted stream; its job_id is the plan's id (the Console's own)
        assert r.json()["events"] == [dict(e, job_id=r.json()["id"]) for e in local["events"]]
        assert httpx.post(url, json=body, headers=agent, timeout=60).status_code == 403
        twice = dict(body, fleet=[doc["fleet"][0], doc["fleet"][0]])
        r = httpx.post(url, json=twice, headers=user, timeout=60)
        assert r.status_code == 400 and "99901 appears twice" in r.json()["error"]
        long = dict(body, job={"name": "long", "steps": [{"id": "huge", "compute_s": 200000}],
                               "policy": {"deadline_orbits": 2}})
        r = httpx.post(url, json=long, headers=user, timeout=60)
        assert r.status_code == 422 and "'huge'" in r.json()["error"]
    finally:
        console.stop()
