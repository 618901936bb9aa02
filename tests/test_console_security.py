"""What a key may do (docs/console.md, "Security model"), tried as an attacker
would, over real HTTP against a real uvicorn server on loopback: an agent key
acts for one satellite, writes only into deployments handed to it, and no
agent id can pose as one of the Console's own event origins."""
import sqlite3
import time
import uuid

import httpx
import pytest

from tools.console import auth, catalog, deployments
from tools.console.db import Database
from tools.console.server import serve_in_thread

JOB = {"name": "one step", "steps": [{"id": "a", "compute_s": 60, "output_mb": 1}]}
UA = {"User-Agent": "umbra-agent/0.1.0"}


@pytest.fixture(scope="module")
def console(db_target):
    srv = serve_in_thread(db_target("security"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http(console):
    with httpx.Client(base_url=console.url, timeout=20) as c:
        yield c


@pytest.fixture(scope="module")
def user(console):
    return {"X-API-Key": auth.create_key(console.db, "user")["key"]}


def satellite(console):
    sat_id = "t-" + uuid.uuid4().hex[:8]
    catalog.add(console.db, sat_id, sat_id, elements={"altitude_km": 500, "inclination_deg": 97.4})
    return sat_id


def deploy(http, user, sat_id):
    plan = http.post("/v1/plan", headers=user, json={"satellite_id": sat_id, "custom_job": JOB})
    assert plan.status_code == 200, plan.text
    r = http.post("/api/deployments", headers=user,
                  json={"plan_id": plan.json()["id"], "mode": "live"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def agent_headers(console, agent_id, sat_id):
    key = auth.create_key(console.db, "agent", agent_id, rate_limited=False, satellite_id=sat_id)
    return dict(UA, **{"X-API-Key": key["key"], "X-Agent-ID": agent_id})


def status(http, user, dep):
    return http.get("/api/deployments/%s" % dep, headers=user).json()["status"]


def test_an_agent_key_acts_for_its_own_satellite_only(console, http, user):
    mine, victim = satellite(console), satellite(console)
    dep = deploy(http, user, victim)
    h = agent_headers(console, "sat-c-" + uuid.uuid4().hex[:6], mine)
    agent_id = h["X-Agent-ID"]
    # registering for another satellite is refused, and changes nothing
    before = console.db.counts()
    r = http.post("/api/agent/register", headers=h,
                  json={"agent_id": agent_id, "satellite_id": victim, "agent_version": "1"})
    assert r.status_code == 403 and victim in r.json()["error"]
    assert console.db.counts() == before
    # registered for its own, it never sees the other satellite's work
    r = http.post("/api/agent/register", headers=h,
                  json={"agent_id": agent_id, "agent_version": "1"})
    assert r.status_code == 201, r.text
    assert http.get("/api/agent/workloads", headers=h).status_code == 204
    r = http.post("/api/deployments/%s/events" % dep, headers=h, json={
        "type": "job.failed", "timestamp": "2026-03-07T14:23:45Z", "job_id": "j", "seq": 1,
        "payload": {"total_duration_s": 1, "status": "failed", "reason": "x"}})
    assert r.status_code == 403
    assert status(http, user, dep) == "pending"


def test_keys_are_bound_at_creation_and_a_bad_binding_is_refused(console, http, user):
    r = http.post("/api/keys", headers=user, json={"kind": "agent", "agent_id": "sat-25544"})
    assert r.status_code == 201 and r.json()["satellite_id"] == "25544"  # from the agent id
    before = console.db.counts()
    for body in ({"kind": "agent", "agent_id": "probe"},                # names no satellite
                 {"kind": "agent", "agent_id": "probe", "satellite_id": "no-such-sat"},
                 {"kind": "user", "satellite_id": "25544"}):
        r = http.post("/api/keys", headers=user, json=body)
        assert r.status_code == 400, (body, r.text)
    assert console.db.counts() == before


def test_an_agent_cannot_post_into_a_deployment_it_was_never_handed(console, http, user):
    sat = satellite(console)
    dep = deploy(http, user, sat)
    h = agent_headers(console, "ag-" + uuid.uuid4().hex[:6], sat)
    r = http.post("/api/agent/register", headers=h,
                  json={"agent_id": h["X-Agent-ID"], "agent_version": "1"})
    assert r.status_code == 201, r.text
    before = console.db.counts()
    r = http.post("/api/deployments/%s/events" % dep, headers=h, json={
        "type": "job.accepted", "timestamp": "2026-03-07T14:23:45Z", "job_id": "j", "seq": 1,
        "payload": {"name": "x", "steps": 1}})
    assert r.status_code == 403 and "poll" in r.json()["error"]
    assert console.db.counts() == before
    row = deployments.get(console.db, dep)
    assert row["status"] == "pending" and row["agent_id"] is None
    # once a poll handed it over, the same event is taken
    assert http.get("/api/agent/workloads", headers=h).json()["deployment_id"] == dep
    r = http.post("/api/deployments/%s/events" % dep, headers=h, json={
        "type": "job.accepted", "timestamp": "2026-03-07T14:23:45Z", "job_id": "j", "seq": 1,
        "payload": {"name": "x", "steps": 1}})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("agent_id", ["sim:dep-0123456789abcdef", "sim", "ground", "a:b", "a b",
                                      "x" * 65])
def test_no_agent_id_can_pose_as_one_of_the_consoles_own_origins(console, http, user, agent_id):
    before = console.db.counts()
    r = http.post("/api/keys", headers=user,
                  json={"kind": "agent", "agent_id": agent_id, "satellite_id": "25544"})
    assert r.status_code == 400, r.text
    with pytest.raises(ValueError):
        auth.create_key(console.db, "agent", agent_id, satellite_id="25544")
    assert console.db.counts() == before


def test_a_simulated_run_and_an_agent_never_share_a_seq_space(console, http, user):
    """The simulator writes as origin sim:<deployment>; an agent's events and
    acks are its own, whatever it sends."""
    sat = satellite(console)
    plan = http.post("/v1/plan", headers=user, json={"satellite_id": sat, "custom_job": JOB}).json()
    sim = http.post("/api/deployments", headers=user,
                    json={"plan_id": plan["id"], "mode": "simulated", "speed_multiplier": 0})
    sim_dep = sim.json()["id"]
    for _ in range(100):
        if status(http, user, sim_dep) == "completed":
            break
        time.sleep(0.1)
    dep = deploy(http, user, sat)
    h = agent_headers(console, "ag-" + uuid.uuid4().hex[:6], sat)
    reg = http.post("/api/agent/register", headers=h,
                    json={"agent_id": h["X-Agent-ID"], "agent_version": "1"})
    assert reg.json()["last_seq"] == 0
    assert http.get("/api/agent/workloads", headers=h).json()["deployment_id"] == dep
    evs = [dict(e, seq=i + 1) for i, e in enumerate(plan["events"])]
    r = http.post("/api/deployments/%s/events" % dep, headers=h, json=evs)
    assert r.status_code == 201 and r.json()["acked_seq"] == len(evs)
    assert http.get("/api/deployments/%s/events" % dep, headers=user).json()["count"] == len(evs)


def test_keys_from_before_bindings_are_bound_to_their_agents_satellite(tmp_path):
    """A database from before key bindings: its agent keys act for the satellite
    their agent registered for; a key whose agent never registered is bound at
    its first register."""
    path = str(tmp_path / "old.db")
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE api_keys (key_hash TEXT PRIMARY KEY, kind TEXT NOT NULL, agent_id TEXT,
            rate_limited INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL);
        CREATE TABLE agents (agent_id TEXT PRIMARY KEY, satellite_id TEXT NOT NULL,
            satellite_name TEXT, agent_version TEXT, orbit_altitude_km REAL, status TEXT NOT NULL,
            registered_at TEXT NOT NULL, updated_at TEXT NOT NULL, last_heartbeat_at TEXT,
            telemetry TEXT);
        INSERT INTO api_keys VALUES ('h1', 'agent', 'flying', 0, '2026-01-01T00:00:00Z');
        INSERT INTO api_keys VALUES ('h2', 'agent', 'new', 0, '2026-01-01T00:00:00Z');
        INSERT INTO agents (agent_id, satellite_id, status, registered_at, updated_at)
            VALUES ('flying', '28057', 'idle', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
    """)
    old.commit()
    old.close()
    db = Database(path)
    rows = {r["agent_id"]: r["satellite_id"] for r in db.query("SELECT * FROM api_keys")}
    assert rows == {"flying": "28057", "new": None}
