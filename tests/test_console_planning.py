"""make_plan (the Console's door to the orbital planner) and simulated
deployments: normalised jobs, placement of `either` steps, a valid predicted
stream, and simulations that pace, cancel and resume."""
import json
import os
import time

import httpx
import pytest

import timeutil
from tools import ROOT
from tools.console import auth, catalog, deployments, eventcheck, planning
from tools.console.db import Database
from tools.console.server import serve_in_thread

NOW = 1772884800  # 2026-03-07T12:00:00Z


@pytest.fixture
def db(tmp_path):
    d = Database(str(tmp_path / "console.db"))
    catalog.seed(d)
    return d


def test_example_job_plans_with_aliases_resolved_and_a_valid_predicted_stream(db):
    with open(os.path.join(ROOT, "examples", "jobs", "standard-pipeline.json")) as f:
        job = json.load(f)["custom_job"]
    job["steps"][0]["duration_s"] = job["steps"][0].pop("compute_s")
    plan = planning.make_plan(catalog.get(db, "25544"), job, None, NOW)
    steps = plan["job"]["steps"]
    assert steps[0]["compute_s"] == 300 and "duration_s" not in steps[0]
    assert all(s["type"] == "standard" and s["retry_policy"] == "retry_immediate" for s in steps)
    for ev in plan["events"]:
        assert eventcheck.check(ev) is None
        assert ev["job_id"] == plan["job"]["id"]
    times = [timeutil.parse_iso(e["timestamp"]) for e in plan["events"]]
    # accepted at the first ground contact after the start, completed after the downlink
    assert times == sorted(times) and NOW <= times[0] < NOW + 12 * 3600
    assert abs(times[-1] - times[0] - plan["plan"]["total_duration_s"]) < 1
    assert plan["plan"]["total_duration_s"] >= 3360
    per_step = [e["type"] for e in plan["events"] if e["step_id"] == "features"
                and e["type"] not in ("checkpoint.saved", "step.paused", "step.resumed")]
    assert per_step == ["placement.decided", "step.started", "step.progress", "step.progress",
                        "step.progress", "step.completed"]
    assert [p["percent"] for p in (e["payload"] for e in plan["events"]
                                   if e["type"] == "step.progress" and e["step_id"] == "pack")] \
        == [25, 50, 75]
    # the 60 W "either" step does not fit a 20 W compute budget
    assert plan["placement_decisions"][-1] == {"step_id": "analyse", "location": "ground",
                                               "reason": "insufficient_onboard_resources"}


def test_either_steps_go_where_the_data_is_smaller(db):
    sat = catalog.get(db, "25544")
    job = {"steps": [{"id": "raw", "compute_s": 10, "output_mb": 100},
                     {"id": "reduce", "location": "either", "compute_s": 10, "output_mb": 5,
                      "depends_on": ["raw"]},
                     {"id": "inflate", "location": "either", "compute_s": 10, "output_mb": 50,
                      "input_mb": 5, "depends_on": ["reduce"]}]}
    decisions = planning.make_plan(sat, job, None, NOW)["placement_decisions"]
    assert [(d["location"], d["reason"]) for d in decisions] == [
        ("onboard", "preset_defined"), ("onboard", "data_reduction"),
        ("ground", "downlink_budget")]


def test_steps_are_scheduled_after_their_dependencies_whatever_the_listing_order(db):
    job = {"steps": [{"id": "c", "compute_s": 5, "depends_on": ["b"]},
                     {"id": "a", "compute_s": 5},
                     {"id": "b", "compute_s": 5, "depends_on": ["a"]}]}
    plan = planning.make_plan(catalog.get(db, "25544"), job, None, NOW)
    assert [s["step_id"] for s in plan["schedule"]] == ["a", "b", "c"]


def _simulated(db, speed):
    plan = planning.make_plan(catalog.get(db, "25544"), {
        "steps": [{"id": "a", "compute_s": 600}, {"id": "b", "compute_s": 600}]}, None, NOW)
    deployments.save_plan(db, plan)
    return plan, deployments.create(db, plan, "simulated", speed)


def test_a_cancelled_simulation_ends_with_job_failed_cancelled(tmp_path):
    with serve_in_thread(str(tmp_path / "c.db")) as srv:
        key = {"X-API-Key": auth.create_key(srv.db, "user")["key"]}
        plan, dep = _simulated(srv.db, speed=1)  # real time: minutes between events
        srv.app.state.console.simulator.start(dep)
        deadline = time.monotonic() + 10
        while not deployments.list_events(srv.db, dep) and time.monotonic() < deadline:
            time.sleep(0.05)
        r = httpx.post(srv.url + "/api/deployments/%s/cancel" % dep, headers=key)
        assert r.json()["status"] == "cancelled"
        with httpx.stream("GET", srv.url + "/api/deployments/%s/events" % dep, headers=key,
                          params={"follow": 1}, timeout=20) as s:
            body = "".join(s.iter_text())
        last = [json.loads(line[5:]) for line in body.splitlines()
                if line.startswith("data:")][-2]
        assert last["type"] == "job.failed" and last["payload"]["status"] == "cancelled"
        assert deployments.get(srv.db, dep)["status"] == "cancelled"
        assert len(deployments.list_events(srv.db, dep)) < len(plan["events"])


def test_a_restarted_console_resumes_an_unfinished_simulation_without_duplicates(tmp_path):
    path = str(tmp_path / "c.db")
    db = Database(path)
    catalog.seed(db)
    plan, dep = _simulated(db, speed=0)
    first = [dict(e, seq=i + 1) for i, e in enumerate(plan["events"][:5])]
    deployments.store_events(db, dep, "sim:" + dep, "sim", first)  # the Console died here
    with serve_in_thread(path) as srv:
        deadline = time.monotonic() + 10
        while deployments.get(srv.db, dep)["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        seqs = [e["seq"] for _, e in deployments.list_events(srv.db, dep)]
    assert seqs == list(range(1, len(plan["events"]) + 1))
