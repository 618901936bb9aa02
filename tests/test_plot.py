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
