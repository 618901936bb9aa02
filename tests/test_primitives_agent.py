"""Predicted equals executed for every shipped example job (STEPS.md "The
plan"): the real firmware, under the MicroPython unix port in its simulated
world against a real Console, emits the event stream the planner predicted —
same types, same order, same step ids, timestamps within 10 s."""
import os

import pytest

import timeutil
from tools import ROOT
from tools.scenario import START, Ground, Node, load_job

EXAMPLES = sorted(f for f in os.listdir(os.path.join(ROOT, "examples", "jobs")) if f.endswith(".json"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_agent_executes_what_the_planner_predicted(tmp_path, name):
    ground = Ground(tmp_path)
    try:
        r = ground.http.post("/v1/plan", json={"satellite_id": "25544", "custom_job": load_job(name),
                                               "planning": {"start": START}})
        assert r.status_code == 200, r.text
        plan = r.json()
        dep = ground.http.post("/api/deployments", json={"plan_id": plan["id"], "mode": "live"}).json()["id"]
        code, _, out = Node(ground, tmp_path).run()
        assert code == 0, out[-2000:]
        executed = ground.events(dep)
    finally:
        ground.close()
    got = [(e["type"], e["step_id"]) for e in executed]
    want = [(e["type"], e["step_id"]) for e in plan["events"]]
    assert got == want
    for a, b in zip(executed, plan["events"]):
        dt = abs(timeutil.parse_iso(a["timestamp"]) - timeutil.parse_iso(b["timestamp"]))
        assert dt <= 10, (a, b)
    # an eclipse step's energy_budget_wh bounds every energy check it makes, on board
    budgets = dict((s["id"], s.get("energy_budget_wh")) for s in load_job(name)["steps"])
    for e in executed:
        if e["type"] == "eclipse_step.energy_check" and budgets.get(e["step_id"]) is not None:
            assert e["payload"]["allowed_wh"] <= budgets[e["step_id"]], e
