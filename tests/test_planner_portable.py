"""The planner is portable: under the MicroPython unix port and CPython it makes
the same plan for a small job mixing every step type (same events, times,
payloads, schedule)."""
import json

SNIPPET = r'''
import gc, json
try:
    gc.threshold(65536)
except AttributeError:
    pass
import planner, timeutil
sat = {"id": "25544", "name": "ISS (ZARYA)", "tle": [
    "1 25544U 98067A   08264.51782528 -.00002182  00000-0 -11606-4 0  2927",
    "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.72125391563537"]}
job = {"name": "small", "policy": {"deadline_orbits": 6}, "security": {"encryption": "aes128"},
       "steps": [
    {"id": "grab", "type": "pass", "compute_s": 120, "output_mb": 50, "min_pass_duration_s": 60},
    {"id": "proc", "compute_s": 900, "output_mb": 10, "checkpoint_interval_s": 240,
     "depends_on": ["grab"]},
    {"id": "tier", "type": "window", "depends_on": ["proc"], "quality_tiers": {
        "minimal": {"compute_s": 60, "output_mb": 1}, "enhanced": {"compute_s": 600, "output_mb": 4}}},
    {"id": "night", "type": "eclipse", "compute_s": 300, "energy_budget_wh": 5, "output_mb": 2,
     "depends_on": ["tier"]},
    {"id": "bad", "type": "eclipse", "compute_s": 60, "min_battery_soc": 2}]}
try:
    planner.make_plan(sat, job, 0)
except planner.PlanError as e:
    print(json.dumps({"error": [e.status, e.reason[:20]]}))
del job["steps"][-1]
p = planner.make_plan(sat, job, timeutil.parse_iso("2008-09-20T13:15:00Z"), 6, plan_id="plan-x",
                      created_at=0)
print(json.dumps({"events": p["events"], "schedule": p["schedule"], "plan": p["plan"],
                  "transfers": p["transfer_schedule"], "windows": len(p["orbital_environment"]["windows"])}))
'''


def test_micropython_and_cpython_make_the_same_plan(mpy, cpy):
    mp = mpy(SNIPPET, timeout=120)
    cp = cpy(SNIPPET, timeout=120)
    assert mp.returncode == 0, mp.stdout + mp.stderr
    assert cp.returncode == 0, cp.stdout + cp.stderr
    m, c = mp.json_lines, cp.json_lines
    assert m[0] == c[0] == {"error": [400, "bad_field: steps[4] "]}
    assert len(m[1]["events"]) == len(c[1]["events"]) >= 40
    for a, b in zip(m[1]["events"], c[1]["events"]):
        assert (a["type"], a["step_id"], a["timestamp"]) == (b["type"], b["step_id"], b["timestamp"])
    assert json.dumps(m[1], sort_keys=True) == json.dumps(c[1], sort_keys=True)
    types = [e["type"] for e in c[1]["events"]]
    for t in ("pass_step.merged", "window_step.completed", "eclipse_step.completed",
              "transfer.completed", "job.completed"):
        assert t in types
