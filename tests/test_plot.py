"""`umbra plot`: a plan (predicted) and a deployment (executed events from a
Console database) are drawn to PNG files."""
import json
import os
import subprocess
import sys

from tools import ROOT
from tools.console import catalog, deployments, planning
from tools.console.db import Database
from tools.plot import spans_from_events

PNG = b"\x89PNG\r\n\x1a\n"


def umbra(*args):
    return subprocess.run([sys.executable, "-m", "tools.cli"] + [str(a) for a in args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_umbra_plot_of_a_plan_writes_a_png(tmp_path):
    made = umbra("plan", os.path.join(ROOT, "examples", "jobs", "orbital-primitives.json"),
                 "--start", "2008-09-20T13:15:00Z", "--json")
    assert made.returncode == 0, made.stderr
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(made.stdout)
    out = tmp_path / "x.png"
    r = umbra("plot", plan_file, "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 20000


def test_umbra_plot_of_a_deployment_reads_the_console_database(tmp_path):
    db = Database(str(tmp_path / "c.db"))
    catalog.seed(db)
    with open(os.path.join(ROOT, "examples", "jobs", "standard-pipeline.json")) as f:
        job = json.load(f)["custom_job"]
    plan = planning.make_plan(catalog.get(db, "25544"), job, {"start": "2008-09-20T13:15:00Z"}, 0)
    deployments.save_plan(db, plan)
    dep = deployments.create(db, plan, "live", 1)
    deployments.store_events(db, dep, "sat-1", "sat-1",
                             [dict(e, seq=i + 1) for i, e in enumerate(plan["events"])])
    out = tmp_path / "dep.png"
    r = umbra("plot", dep, "--db", tmp_path / "c.db", "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == PNG
    assert umbra("plot", "dep-nope", "--db", tmp_path / "c.db", "-o", out).returncode != 0


def test_step_spans_come_from_started_paused_resumed_completed():
    evs = [{"type": "step.started", "timestamp": "2008-09-20T13:00:00Z", "step_id": "a", "payload": {}},
           {"type": "step.paused", "timestamp": "2008-09-20T13:10:00Z", "step_id": "a",
            "payload": {"reason": "eclipse"}},
           {"type": "step.resumed", "timestamp": "2008-09-20T13:40:00Z", "step_id": "a", "payload": {}},
           {"type": "step.completed", "timestamp": "2008-09-20T13:50:00Z", "step_id": "a", "payload": {}}]
    (sid, s), = spans_from_events(evs)[0]
    assert sid == "a" and len(s["run"]) == 2
    assert s["pause"][0][1] - s["pause"][0][0] == 1800 and s["pause"][0][2] == "eclipse"


def _train_plan():
    import timeutil
    from tools.planner import constellation as cp
    with open(os.path.join(ROOT, "examples", "fleets", "train-4.json")) as f:
        doc = json.load(f)
    plan = cp.make_constellation_plan(doc, doc["job"], timeutil.parse_iso(doc["epoch"]),
                                      plan_id="cplan-plot")
    return dict(plan, id="cplan-plot", kind="constellation", job=doc["job"],
                epoch=doc["epoch"], fleet_doc=doc["fleet"], created_at="2026-03-08T00:00:00Z")


def test_umbra_plot_of_a_constellation_plan_draws_a_lane_per_satellite_and_the_isl_hops(tmp_path):
    from tools.fleetplot import fleet_marks
    plan = _train_plan()
    marks = fleet_marks(plan, [])
    assert marks["lanes"] == plan["fleet"]
    assert all(marks["eclipses"][sat] for sat in plan["fleet"])  # the train sees eclipses
    # each planned hop is an arrow from the lane it leaves to the lane it reaches
    assert sorted((f, t) for f, t, _, _, k in marks["transfers"] if k == "planned") == \
        sorted((h["from"], h["to"]) for h in plan["isl_routing"])
    assert sorted((s, sid) for s, sid, _, _ in marks["predicted"]) == \
        sorted((s["satellite"], s["step_id"]) for s in plan["steps"])
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(plan))
    out = tmp_path / "fleet.png"
    r = umbra("plot", f, "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 20000


def test_umbra_plot_of_a_parent_deployment_marks_executed_steps_hops_and_failovers(tmp_path):
    from tools.console import constellations
    from tools.fleetplot import fleet_marks
    db = Database(str(tmp_path / "c.db"))
    plan = _train_plan()
    constellations.save_plan(db, plan)
    parent, kids = constellations.create(db, plan)
    # two satellites that run steps (the alternates have children too)
    a, b = sorted(set(s["satellite"] for s in plan["steps"]))[:2]
    t = "2026-03-08T00:%02d:00Z"

    def e(seq, typ, minute, step=None, **p):
        return {"type": typ, "timestamp": t % minute, "seq": seq, "step_id": step, "payload": p}
    deployments.store_events(db, kids[a], "ag-a", "ag-a", [
        e(1, "constellation.step_started", 1, "infer_a", step_id="infer_a", satellite_id=a),
        e(2, "constellation.failover", 5, "infer_a", step_id="infer_a", from_satellite=a,
          reason="battery critical")])
    deployments.store_events(db, kids[b], "ag-b", "ag-b", [
        e(1, "constellation.failover_acknowledged", 6, "infer_a", step_id="infer_a",
          to_satellite=b, epoch=2),
        e(2, "constellation.step_started", 7, "infer_a", step_id="infer_a", satellite_id=b,
          epoch=2),
        e(3, "constellation.step_completed", 20, "infer_a", step_id="infer_a", duration_s=780,
          data_output_mb=20, epoch=2),
        e(4, "isl_transfer.hop_completed", 21, None, **{"from": b, "to": a, "hop_index": 0,
                                                        "quality": 0.9, "latency_ms": 30})])
    marks = fleet_marks(plan, [ev for _, ev in constellations.merged_rows(db, parent)])
    assert [(s, f, to) for s, f, _, to, _ in marks["failovers"]] == [("infer_a", a, b)]
    assert (b, "infer_a") in [(s, sid) for s, sid, _, _ in marks["executed"]]
    assert (b, a, "executed") in [(f, to, k) for f, to, _, _, k in marks["transfers"]]
    out = tmp_path / "parent.png"
    r = umbra("plot", parent, "--db", tmp_path / "c.db", "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == PNG
