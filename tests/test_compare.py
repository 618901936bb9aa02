"""Plan versus actual (`umbra events DEPLOYMENT --compare`): a nominal run
matches its plan event for event; with faults injected — a battery lower than
the forecast, a reset mid-step — the agent adapts and the comparison shows
where and why. Real firmware under the unix port, real Console, real CLI."""
import json
import subprocess
import sys

import pytest

from tools.scenario import START, Ground, Node, load_job


@pytest.fixture
def ground(tmp_path):
    g = Ground(tmp_path)
    yield g
    g.close()


def compare_cli(ground, dep):
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "events", dep, "--compare", "--json",
                           "--console", ground.url, "--key", ground.user],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, json.loads(proc.stdout)


def text_cli(ground, dep):
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "events", dep, "--compare",
                           "--console", ground.url, "--key", ground.user],
                          capture_output=True, text=True, timeout=60)
    return proc.stdout


def test_a_nominal_run_matches_its_plan(ground, tmp_path):
    dep = ground.deploy(load_job("demo-mission.json"))
    code, _, out = Node(ground, tmp_path).run()
    assert code == 0, out
    rc, doc = compare_cli(ground, dep)
    assert rc == 0
    assert doc["summary"]["identical"] and doc["summary"]["missing"] == doc["summary"]["extra"] == 0
    assert all(r["mark"] == "=" for r in doc["rows"])


def test_a_battery_lower_than_forecast_pauses_and_shifts_the_job_and_the_view_says_why(
        ground, tmp_path):
    dep = ground.deploy(load_job("demo-mission.json"))
    # the plan assumes the bus starts at 80 %; it starts at 10 %
    code, _, out = Node(ground, tmp_path, bus={"initial_soc": 0.1}).run()
    assert code == 0, out
    assert ground.status(dep) == "completed"   # it adapted
    rc, doc = compare_cli(ground, dep)
    assert rc == 1 and not doc["summary"]["identical"]
    first = doc["summary"]["first_divergence"]
    assert first["mark"] == "+" and first["step_id"] == "capture"
    pauses = [r for r in doc["rows"] if r["mark"] == "+" and r["executed"]["type"] == "step.paused"]
    assert [r["note"] for r in pauses][:2] == ["reason=battery", "reason=eclipse"]
    # the eclipse step waited for a later eclipse than the plan's, and says so in time
    started = [r for r in doc["rows"] if (r["executed"] or {}).get("type") == "eclipse_step.started"]
    assert started and started[0]["mark"] == "~"
    shown = text_cli(ground, dep)
    assert "reason=battery" in shown and "first divergence" in shown


def test_a_reset_mid_step_shows_where_it_struck_and_the_step_resumes(ground, tmp_path):
    dep = ground.deploy(load_job("demo-mission.json"))
    node = Node(ground, tmp_path)
    code, _, out = node.run(until="2008-09-20T13:30:00Z", until_idle=False)  # mid-calibrate
    assert code == 4, out
    code, _, out = node.run(reset_cause="watchdog")
    assert code == 0, out
    assert ground.status(dep) == "completed"
    rc, doc = compare_cli(ground, dep)
    boots = [r for r in doc["rows"] if r["mark"] == "+" and r["executed"]["type"] == "agent.booted"]
    assert len(boots) == 1 and "reset_cause=watchdog" in boots[0]["note"]
    done = [r for r in doc["rows"] if (r["executed"] or {}).get("type") == "step.completed"]
    assert [r["executed"]["step_id"] for r in done] == ["capture", "calibrate", "process", "compress"]
