"""Predicted equals executed (STEPS.md "The plan"): the real firmware agent, run
in the simulated world against a real Console, emits the stream the planner
predicted for a standard job: same types, same order, same step ids,
timestamps within 10 s."""
import timeutil
from tools import scenario


def test_the_agent_executes_the_predicted_stream_of_the_standard_pipeline(tmp_path):
    ground = scenario.Ground(tmp_path)
    try:
        job = scenario.load_job("standard-pipeline.json")
        r = ground.http.post("/v1/plan", json={"satellite_id": "25544", "custom_job": job,
                                               "planning": {"start": scenario.START}})
        assert r.status_code == 200, r.text
        plan = r.json()
        r = ground.http.post("/api/deployments", json={"plan_id": plan["id"], "mode": "live"})
        dep = r.json()["id"]
        code, _, out = scenario.Node(ground, tmp_path).run()
        assert code == 0, out[-2000:]
        executed = [e for e in ground.events(dep)]
    finally:
        ground.close()
    predicted = plan["events"]
    assert [(e["type"], e["step_id"]) for e in executed] == \
        [(e["type"], e["step_id"]) for e in predicted]
    for a, b in zip(executed, predicted):
        dt = abs(timeutil.parse_iso(a["timestamp"]) - timeutil.parse_iso(b["timestamp"]))
        assert dt <= 10, (a, b)
    said = [e for e in executed if e["type"] == "checkpoint.predicted"][0]["payload"]
    plan_haz = plan["hazards"]
    assert said["hazards_count"] == plan_haz["hazards_count"]
    assert said["checkpoints_count"] == plan_haz["checkpoints_count"]
