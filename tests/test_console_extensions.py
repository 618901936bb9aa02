"""Umbra's additive protocol extensions on the Console, over real HTTP:
agent-level events, last_seq at register, compact workloads."""
import uuid

import httpx
import pytest

from tools.console import auth
from tools.console.server import serve_in_thread


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    srv = serve_in_thread(str(tmp_path_factory.mktemp("console") / "console.db"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http(console):
    with httpx.Client(base_url=console.url, timeout=20) as c:
        yield c


@pytest.fixture(scope="module")
def user(console):
    return {"X-API-Key": auth.create_key(console.db, "user")["key"]}


def agent(console, http, register=True):
    agent_id = "ag-" + uuid.uuid4().hex[:8]
    key = auth.create_key(console.db, "agent", agent_id, rate_limited=False,
                          satellite_id="25544")
    headers = {"X-API-Key": key["key"], "X-Agent-ID": agent_id, "User-Agent": "umbra-agent/0.1.0"}
    reply = None
    if register:
        reply = http.post("/api/agent/register", headers=headers,
                          json={"agent_id": agent_id, "satellite_id": "25544",
                                "agent_version": "0.1.0"})
        assert reply.status_code == 201, reply.text
    return agent_id, headers, reply


def booted(agent_id, seq, boot_count=1):
    return {"type": "agent.booted", "timestamp": "2008-09-20T13:00:00Z", "job_id": None,
            "step_id": None, "agent_id": agent_id, "seq": seq, "deployment_id": None,
            "payload": {"reset_cause": "power_on", "boot_count": boot_count,
                        "firmware_version": "0.1.0", "mode": "normal"}}


def test_agent_level_events_are_stored_once_and_share_the_agents_seq(console, http, user):
    agent_id, headers, reg = agent(console, http)
    assert reg.json()["last_seq"] == 0 and reg.json()["acked_seq"] == 0
    batch = [booted(agent_id, 1), booted(agent_id, 2, 2)]
    for _ in range(3):
        r = http.post("/api/agent/events", headers=headers, json=batch)
        assert r.status_code == 201, r.text
        assert r.json()["acked_seq"] == 2
    seen = http.get("/api/agents/%s/events" % agent_id, headers=user).json()
    assert [e["seq"] for e in seen["events"]] == [1, 2]
    assert all(e["deployment_id"] is None for e in seen["events"])
    reg = http.post("/api/agent/register", headers=headers,
                    json={"agent_id": agent_id, "satellite_id": "25544", "agent_version": "0.1.0"})
    assert reg.json()["last_seq"] == 2 and reg.json()["acked_seq"] == 2


def test_agent_level_events_need_a_registered_agent_and_valid_events(console, http, user):
    agent_id, headers, _ = agent(console, http, register=False)
    r = http.post("/api/agent/events", headers=headers, json=[booted(agent_id, 1)])
    assert r.status_code == 404 and "error" in r.json()
    agent_id, headers, _ = agent(console, http)
    bad = booted(agent_id, 1)
    del bad["payload"]["boot_count"]
    r = http.post("/api/agent/events", headers=headers, json=[bad])
    assert r.status_code == 400 and "boot_count" in r.json()["error"]
    assert http.get("/api/agents/%s/events" % agent_id, headers=user).json()["count"] == 0
    r = http.post("/api/agent/events", headers={"X-API-Key": "nope", "X-Agent-ID": agent_id},
                  json=[booted(agent_id, 1)])
    assert r.status_code == 401
    r = http.get("/api/agents/%s/events" % agent_id, headers=headers)
    assert r.status_code == 403


def test_compact_workload_leaves_out_the_predicted_stream_and_the_windows(console, http, user):
    job = {"name": "small", "steps": [{"id": "a", "compute_s": 60, "output_mb": 1}]}
    plan = http.post("/v1/plan", headers=user, json={"satellite_id": "25544", "custom_job": job}).json()
    r = http.post("/api/deployments", headers=user, json={"plan_id": plan["id"], "mode": "live"})
    assert r.status_code == 201
    agent_id, headers, _ = agent(console, http)
    full = http.get("/api/agent/workloads", headers=headers)
    compact = http.get("/api/agent/workloads", headers=dict(headers, **{"X-Umbra-Compact": "1"}))
    assert full.status_code == compact.status_code == 200
    f, c = full.json(), compact.json()
    assert f["deployment_id"] == c["deployment_id"]
    assert f["events"] and c["events"] == []
    assert "windows" not in c["plan_data"]["orbital_environment"]
    assert "schedule" in f["plan_data"] and "schedule" not in c["plan_data"]
    assert c["plan_data"]["orbital_environment"]["bus"] == f["plan_data"]["orbital_environment"]["bus"]
    assert c["plan_data"]["job"] == f["plan_data"]["job"]
    assert len(compact.content) < len(full.content)


def test_a_poll_holding_the_dispatched_deployment_gets_nothing_again(console, http, user):
    """?holding= (extension): the agent has the job already; without it the
    dispatched deployment comes back at every poll (PROTOCOL.md)."""
    job = {"name": "small", "steps": [{"id": "a", "compute_s": 60, "output_mb": 1}]}
    plan = http.post("/v1/plan", headers=user, json={"satellite_id": "25544", "custom_job": job}).json()
    dep = http.post("/api/deployments", headers=user, json={"plan_id": plan["id"], "mode": "live"}).json()
    agent_id, headers, _ = agent(console, http)
    first = http.get("/api/agent/workloads", headers=headers)
    again = http.get("/api/agent/workloads", headers=headers)
    holding = http.get("/api/agent/workloads", headers=headers, params={"holding": dep["id"]})
    other = http.get("/api/agent/workloads", headers=headers, params={"holding": "dep-other"})
    assert first.status_code == again.status_code == other.status_code == 200
    assert first.json()["deployment_id"] == again.json()["deployment_id"] == dep["id"]
    assert holding.status_code == 204 and holding.content == b""
    assert other.json()["deployment_id"] == dep["id"]
