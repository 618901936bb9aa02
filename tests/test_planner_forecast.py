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


def test_a_job_the_agent_refuses_is_a_422_saying_why(iss):
    steps = [{"id": "s%d" % i, "compute_s": 60, "output_mb": 1,
              "depends_on": ["s%d" % (i - 1)] if i else []} for i in range(60)]
    with pytest.raises(planner.PlanError) as err:
        make(iss, {"name": "too big for the board", "steps": steps})
    assert err.value.status == 422
    assert err.value.reason.startswith("the agent refuses the job: too_large")
