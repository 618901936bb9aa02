"""The predicted stream is the agent's own run (tools/planner/forecast.py):
deterministic, the very stream the firmware emits when handed the plan's
workload, and what the agent refuses is what the plan refuses."""
import json

import pytest

import timeutil
from tools import planner
from tools.planner import forecast
from tools.scenario import START, load_job
from tools.console import catalog
from tools.console.db import Database

JOBS = ["standard-pipeline.json", "demo-mission.json", "orbital-primitives.json"]


@pytest.fixture(scope="module")
def iss(tmp_path_factory):
    db = Database(str(tmp_path_factory.mktemp("catalog") / "c.db"))
    catalog.seed(db)
    return catalog.get(db, "25544")


def make(iss, job, hours=12):
    return planner.make_plan(iss, job, timeutil.parse_iso(START), hours, plan_id="plan-x",
                             created_at=0)


@pytest.mark.parametrize("name", JOBS)
def test_the_same_job_and_start_give_the_same_plan_byte_for_byte(iss, name):
    a, b = make(iss, load_job(name)), make(iss, load_job(name))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.mark.parametrize("name", JOBS)
def test_the_agent_handed_the_final_plan_emits_exactly_the_predicted_stream(iss, name):
    """The plan's summary and hazard counts, which the agent echoes, come from
    the run itself: handed the finished plan, the agent emits the prediction
    again, payloads and timestamps included."""
    import orbit
    import spacecraft
    import stations
    p = make(iss, load_job(name))
    spec = planner.workload_spec(p, "plan-x", forecast.DEPLOYMENT_ID, "25544")
    orb = orbit.Orbit(orbit.parse_tle(iss["tle"][0], iss["tle"][1], iss["name"]))
    start = timeutil.parse_iso(START)
    timeline = spacecraft.Timeline(orb, start, 13 * 3600, stations.default_stations(), 5.0)
    sat = spacecraft.SimulatedSatellite("25544", orb, start, timeline=timeline,
                                        stations=stations.default_stations())
    run = forecast.run(spec, sat, start, start + 12 * 3600)
    assert run.events == p["events"]


def test_a_50_step_dag_over_48_h_is_taken_by_the_board_and_runs_to_its_end(iss):
    """The job record on flash leaves out a step's fields at their defaults
    (accept.workload_step; journal.apply puts them back): the planner's
    50-step bench DAG, with primitives, fits the board's journal."""
    from tools.benches.planner import dag
    p = make(iss, dag(50), hours=48)
    kinds = [e["type"] for e in p["events"]]
    assert kinds[0] == "job.accepted" and kinds[-1] == "job.completed"
    assert kinds.count("step.completed") == 50
    assert len(p["schedule"]) == 50


def test_a_job_the_agent_refuses_is_a_422_saying_why(iss):
    # 60 steps with the longest names, each after the two before: over the
    # board's largest journal record (firmware/journal.py MAX_RECORD)
    name = "step-%02d-" + "x" * 56
    steps = [{"id": name % i, "compute_s": 60, "output_mb": 1,
              "depends_on": [name % j for j in (i - 2, i - 1) if j >= 0]} for i in range(60)]
    with pytest.raises(planner.PlanError) as err:
        make(iss, {"name": "too big for the board", "steps": steps})
    assert err.value.status == 422
    assert err.value.reason.startswith("the agent refuses the job: too_large")
