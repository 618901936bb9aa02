"""The `umbra` Console commands, run for real as subprocesses (.venv/bin/umbra)
against a real Console: keys, satellites, submit, events --follow, and a
simulated deployment of the example job producing its full predicted stream."""
import json
import os
import subprocess
import sys

import httpx
import pytest

from tools import ROOT
from tools.console.server import ConsoleProcess

UMBRA = os.path.join(os.path.dirname(sys.executable), "umbra")
EXAMPLE = os.path.join(ROOT, "examples", "jobs", "standard-pipeline.json")


def umbra(*args, env=None, timeout=60):
    full_env = {k: v for k, v in os.environ.items() if k not in ("UMBRA_CONSOLE", "UMBRA_KEY")}
    full_env.update(env or {})
    return subprocess.run([UMBRA] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=ROOT)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    db_path = str(tmp_path_factory.mktemp("cli") / "console.db")
    created = umbra("keys", "create", "--user", "--json", "--db", db_path)
    assert created.returncode == 0, created.stderr
    user_key = json.loads(created.stdout)["key"]
    with ConsoleProcess(db_path) as server:
        yield db_path, server.url, user_key


def test_keys_create_prints_agent_and_uplink_keys_once_and_stores_hashes(setup):
    db_path, url, _ = setup
    r = umbra("keys", "create", "--agent", "sat-25544", "--uplink", "--db", db_path)
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(": ", 1) for line in r.stdout.strip().splitlines())
    assert lines["key"].startswith("um_") and lines["uplink_key"]
    reg = httpx.post(url + "/api/agent/register",
                     headers={"X-API-Key": lines["key"], "X-Agent-ID": "sat-25544"},
                     json={"agent_id": "sat-25544", "satellite_id": "25544",
                           "agent_version": "0.1.0"})
    assert reg.status_code == 201
    with open(db_path, "rb") as f:
        assert lines["key"].encode() not in f.read()
    assert umbra("keys", "create", "--db", db_path).returncode != 0  # neither --agent nor --user


def test_satellites_add_and_list(setup, tmp_path):
    db_path, url, key = setup
    listed = umbra("satellites", "list", "--console", url, "--key", key)
    assert listed.returncode == 0, listed.stderr
    assert "25544" in listed.stdout and "ISS" in listed.stdout
    tle = tmp_path / "iss.tle"
    iss = json.loads(umbra("satellites", "list", "--json", "--db", db_path).stdout)
    iss = [s for s in iss if s["satellite_id"] == "25544"][0]["tle"]
    tle.write_text("ISS copy\n%s\n%s\n" % (iss[0], iss[1]))
    added = umbra("satellites", "add", "--id", "iss-2", "--name", "ISS copy", "--tle-file", tle,
                  env={"UMBRA_CONSOLE": url, "UMBRA_KEY": key})
    assert added.returncode == 0, added.stderr
    again = umbra("satellites", "add", "--id", "iss-2", "--name", "ISS copy", "--tle-file", tle,
                  env={"UMBRA_CONSOLE": url, "UMBRA_KEY": key})
    assert again.returncode != 0 and "409" in again.stderr
    kep = umbra("satellites", "add", "--id", "kep-1", "--name", "Kepler", "--db", db_path,
                "--elements", '{"altitude_km": 550, "inclination_deg": 53}')
    assert kep.returncode == 0, kep.stderr
    assert "kep-1" in umbra("satellites", "list", "--console", url, "--key", key).stdout


def test_simulated_example_job_streams_its_full_predicted_events_with_events_follow(setup):
    _, url, key = setup
    env = {"UMBRA_CONSOLE": url, "UMBRA_KEY": key}
    sub = umbra("submit", EXAMPLE, "--satellite", "25544", "--mode", "simulated",
                "--speed", "3000", "--start", "2026-03-07T12:00:00Z", env=env)
    assert sub.returncode == 0, sub.stderr
    dep = sub.stdout.strip().splitlines()[-1]
    assert dep.startswith("dep-")
    followed = umbra("events", dep, "--follow", "--json", env=env)
    assert followed.returncode == 0, followed.stderr
    streamed = [json.loads(line) for line in followed.stdout.splitlines()]
    deployment = httpx.get(url + "/api/deployments/" + dep, headers={"X-API-Key": key}).json()
    plan = httpx.get(url + "/v1/plan/%s/events" % deployment["plan_id"],
                     headers={"X-API-Key": key}).json()["events"]
    assert [(e["type"], e["step_id"], e["timestamp"], e["payload"]) for e in streamed] == \
        [(e["type"], e["step_id"], e["timestamp"], e["payload"]) for e in plan]
    assert [e["seq"] for e in streamed] == list(range(1, len(plan) + 1))
    assert {e["agent_id"] for e in streamed} == {"sim"}
    # the three onboard steps; the ground step is the Console's ground executor's, not
    # in the predicted (agent) stream
    assert deployment["status"] == "completed" and deployment["steps_completed"] == 3
    # the readable view: one line per event with time, seq, type and step
    readable = umbra("events", dep, env=env)
    assert readable.returncode == 0
    lines = readable.stdout.splitlines()
    assert len(lines) == len(plan)
    first = plan[0]["timestamp"][11:19]   # the first contact after 12:00:00
    assert first in lines[0] and "#1" in lines[0] and "job.accepted" in lines[0]
    assert "transfer.completed" in lines[-2] and "job.completed" in lines[-1]
    assert "\x1b[" not in readable.stdout  # no colour codes when not on a terminal


def test_submit_accepts_a_bare_job_and_reports_console_errors(setup, tmp_path):
    _, url, key = setup
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"name": "bare", "steps": [{"id": "x", "compute_s": 10}]}))
    ok = umbra("submit", bare, "--satellite", "25544", "--console", url, "--key", key)
    assert ok.returncode == 0 and ok.stdout.strip().startswith("dep-")
    cyc = tmp_path / "cycle.json"
    cyc.write_text(json.dumps({"steps": [{"id": "a", "compute_s": 1, "depends_on": ["a"]}]}))
    bad = umbra("submit", cyc, "--satellite", "25544", "--console", url, "--key", key)
    assert bad.returncode != 0 and "400" in bad.stderr
    nokey = umbra("submit", bare, "--satellite", "25544", "--console", url, "--key", "um_wrong")
    assert nokey.returncode != 0 and "401" in nokey.stderr
