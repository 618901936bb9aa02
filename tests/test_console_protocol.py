"""The Console speaks PROTOCOL.md: every endpoint, header, body and status code,
over real HTTP against a real uvicorn server on loopback."""
import json
import uuid

import httpx
import pytest

import signing
import timeutil
from tools.console import auth, catalog
from tools.console.server import serve_in_thread

STANDARD_JOB = {"name": "two steps", "steps": [
    {"id": "a", "name": "A", "compute_s": 120, "output_mb": 4},
    {"id": "b", "name": "B", "compute_s": 60, "output_mb": 1, "depends_on": ["a"]}]}


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture(scope="module")
def clock():
    return FakeClock()


@pytest.fixture(scope="module")
def console(db_target, clock):
    srv = serve_in_thread(db_target("console"),
                          rate_clock=clock, max_body=64 * 1024)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http(console):
    with httpx.Client(base_url=console.url, timeout=20) as c:
        yield c


@pytest.fixture(scope="module")
def user(console):
    return {"X-API-Key": auth.create_key(console.db, "user")["key"]}


def new_satellite(console):
    sat_id = "t-" + uuid.uuid4().hex[:8]
    catalog.add(console.db, sat_id, "Test " + sat_id,
                elements={"altitude_km": 500, "inclination_deg": 97.4})
    return sat_id


def new_agent(console, http, satellite_id, uplink=False, rate_limited=False, register=True):
    agent_id = "ag-" + uuid.uuid4().hex[:8]
    key = auth.create_key(console.db, "agent", agent_id, uplink=uplink, rate_limited=rate_limited,
                          satellite_id=satellite_id)
    headers = {"X-API-Key": key["key"], "X-Agent-ID": agent_id,
               "User-Agent": "umbra-agent/0.1.0"}
    if register:
        r = http.post("/api/agent/register", headers=headers,
                      json={"agent_id": agent_id, "satellite_id": satellite_id,
                            "agent_version": "0.1.0"})
        assert r.status_code == 201, r.text
    return agent_id, headers, key.get("uplink_key")


def plan_and_deploy(http, user, satellite_id, mode="live", job=STANDARD_JOB):
    r = http.post("/v1/plan", headers=user, json={"satellite_id": satellite_id, "custom_job": job})
    assert r.status_code == 200, r.text
    plan = r.json()
    r = http.post("/api/deployments", headers=user,
                  json={"plan_id": plan["id"], "mode": mode, "speed_multiplier": 0})
    assert r.status_code == 201, r.text
    return plan, r.json()["id"]


def numbered(plan, start=1):
    return [dict(e, seq=start + i) for i, e in enumerate(plan["events"])]


def assert_error(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "server_time"}
    assert isinstance(body["error"], str) and body["error"]
    timeutil.parse_iso(body["server_time"])
    timeutil.parse_iso(r.headers["X-Server-Time"])


def assert_ok(r, status=200):
    assert r.status_code == status, r.text
    body = r.json()
    timeutil.parse_iso(body["server_time"])
    timeutil.parse_iso(r.headers["X-Server-Time"])
    return body


# ------------------------------------------------------------------ keys and auth

def test_missing_or_unknown_key_is_401_and_wrong_kind_is_403(console, http, user):
    sat = new_satellite(console)
    _, agent_headers, _ = new_agent(console, http, sat)
    user_paths = [("GET", "/api/agents"), ("GET", "/api/satellites"),
                  ("POST", "/api/deployments"), ("POST", "/v1/plan"), ("POST", "/api/keys"),
                  ("GET", "/v1/plan/x/events"), ("POST", "/api/deployments/x/cancel")]
    for method, path in user_paths:
        assert_error(http.request(method, path), 401)
        assert_error(http.request(method, path, headers={"X-API-Key": "um_nope"}), 401)
        assert_error(http.request(method, path, headers=agent_headers, json={}), 403)
    agent_paths = [("POST", "/api/agent/register"), ("GET", "/api/agent/workloads"),
                   ("POST", "/api/agent/telemetry"), ("POST", "/api/deployments/x/events")]
    for method, path in agent_paths:
        assert_error(http.request(method, path, json={}), 401)
        assert_error(http.request(method, path, headers=user, json={}), 403)
        wrong_agent = dict(agent_headers, **{"X-Agent-ID": "someone-else"})
        assert_error(http.request(method, path, headers=wrong_agent, json={}), 403)


def test_keys_are_stored_only_as_sha256(console, http, user):
    body = assert_ok(http.post("/api/keys", headers=user,
                               json={"kind": "agent", "agent_id": "sat-x", "uplink": True,
                                     "satellite_id": "25544"}), 201)
    assert body["key"].startswith("um_") and body["uplink_key"]
    dump = console.db.dump()
    assert body["key"] not in dump
    assert auth.hash_key(body["key"]) in dump
    new_user = assert_ok(http.post("/api/keys", headers=user, json={"kind": "user"}), 201)
    assert_ok(http.get("/api/agents", headers={"X-API-Key": new_user["key"]}))
    assert_error(http.post("/api/keys", headers=user, json={"kind": "agent"}), 400)
    assert_error(http.post("/api/keys", headers=user, json={"kind": "agent", "agent_id": "sim"}),
                 400)
    assert_error(http.post("/api/keys", headers=user, json={"kind": "robot"}), 400)


# ------------------------------------------------------------------ register / poll

def test_register_is_an_upsert_and_rejects_bad_bodies(console, http, user):
    sat = new_satellite(console)
    agent_id, h, _ = new_agent(console, http, sat, register=False)
    body = {"agent_id": agent_id, "satellite_id": sat, "agent_version": "0.1.0",
            "satellite_name": "first", "orbit_altitude_km": 500}
    reg = assert_ok(http.post("/api/agent/register", headers=h, json=body), 201)
    assert (reg["id"], reg["status"]) == (agent_id, "idle")
    body["satellite_name"] = "second"
    assert_ok(http.post("/api/agent/register", headers=h, json=body), 201)
    agents = assert_ok(http.get("/api/agents", headers=user))["agents"]
    mine = [a for a in agents if a["agent_id"] == agent_id]
    assert len(mine) == 1 and mine[0]["satellite_name"] == "second"
    for bad in ({}, {"agent_id": agent_id}, dict(body, satellite_id=25544),
                dict(body, orbit_altitude_km="high"), [body]):
        assert_error(http.post("/api/agent/register", headers=h, json=bad), 400)
    assert_error(http.post("/api/agent/register", headers=h, content=b"{not json"), 400)
    assert_error(http.post("/api/agent/register", headers=h, json=dict(body, agent_id="other")),
                 403)


def test_poll_is_204_with_server_time_header_when_idle_and_404_unregistered(console, http):
    sat = new_satellite(console)
    _, h, _ = new_agent(console, http, sat)
    r = http.get("/api/agent/workloads", headers=h)
    assert r.status_code == 204 and r.content == b""
    timeutil.parse_iso(r.headers["X-Server-Time"])
    _, h2, _ = new_agent(console, http, sat, register=False)
    assert_error(http.get("/api/agent/workloads", headers=h2), 404)
    assert_error(http.get("/api/agent/workloads", headers=dict(h, **{"X-Agent-ID": ""})), 400)


def test_poll_hands_out_oldest_pending_live_deployment_once_and_again_to_the_same_agent(
        console, http, user):
    sat = new_satellite(console)
    _, h, _ = new_agent(console, http, sat)
    _, other, _ = new_agent(console, http, sat)
    plan1, dep1 = plan_and_deploy(http, user, sat)
    _, dep2 = plan_and_deploy(http, user, sat)
    plan_and_deploy(http, user, sat, mode="simulated")
    spec = assert_ok(http.get("/api/agent/workloads", headers=h))
    assert spec["deployment_id"] == dep1 and spec["plan_id"] == plan1["id"]
    assert spec["satellite_id"] == sat
    assert spec["events"] == plan1["events"]
    assert spec["plan_data"]["job"]["steps"][0]["id"] == "a"
    assert "auth" not in spec
    summary = assert_ok(http.get("/api/deployments/%s" % dep1, headers=user))
    assert summary["status"] == "dispatched"
    # polling again while dispatched and not finished returns the same one
    assert assert_ok(http.get("/api/agent/workloads", headers=h))["deployment_id"] == dep1
    # another agent of the same satellite gets the next one, never the same
    assert assert_ok(http.get("/api/agent/workloads", headers=other))["deployment_id"] == dep2
    # finishing it lets the next one through
    assert_ok(http.post("/api/deployments/%s/events" % dep1, headers=h, json=numbered(plan1)), 201)
    assert assert_ok(http.get("/api/deployments/%s" % dep1, headers=user))["status"] == "completed"
    assert http.get("/api/agent/workloads", headers=h).status_code == 204


def test_workloads_for_an_agent_with_an_uplink_key_are_signed(console, http, user):
    sat = new_satellite(console)
    _, h, uplink = new_agent(console, http, sat, uplink=True)
    plan_and_deploy(http, user, sat)
    spec = assert_ok(http.get("/api/agent/workloads", headers=h))
    assert spec["auth"]["alg"] == "HMAC-SHA256"
    assert set(spec["auth"]) == {"alg", "issued_at", "nonce", "sig"}
    assert signing.verify(spec, uplink) == (True, None)
    assert signing.verify(spec, "wrong key")[0] is False
    again = http.get("/api/agent/workloads", headers=h).json()
    assert again["auth"]["nonce"] != spec["auth"]["nonce"]  # fresh nonce per hand-out
    assert "challenge" not in spec
    # a poll's challenge comes back inside the signature: the reply answers that poll
    bound = assert_ok(http.get("/api/agent/workloads", headers=h,
                               params={"challenge": "9f0c1d2e3b4a5968"}))
    assert bound["challenge"] == "9f0c1d2e3b4a5968"
    assert signing.verify(bound, uplink) == (True, None)
    assert signing.verify(dict(bound, challenge="0000000000000000"), uplink)[0] is False
    for bad in ("x", "NOT-HEX-AT-ALL", "0" * 65):
        assert_error(http.get("/api/agent/workloads", headers=h, params={"challenge": bad}), 400)


# ------------------------------------------------------------------ events

def test_single_event_is_201_id_and_batch_is_201_ids_acked_seq(console, http, user):
    sat = new_satellite(console)
    agent_id, h, _ = new_agent(console, http, sat)
    plan, dep = plan_and_deploy(http, user, sat)
    http.get("/api/agent/workloads", headers=h)
    evs = numbered(plan)
    one = assert_ok(http.post("/api/deployments/%s/events" % dep, headers=h, json=evs[0]), 201)
    assert isinstance(one["id"], int) and one["acked_seq"] == 1
    assert assert_ok(http.get("/api/deployments/%s" % dep, headers=user))["status"] == "running"
    batch = assert_ok(http.post("/api/deployments/%s/events" % dep, headers=h, json=evs[1:6]),
                      201)
    assert len(batch["ids"]) == 5 and batch["acked_seq"] == 6
    stored = assert_ok(http.get("/api/deployments/%s/events" % dep, headers=user))
    assert [e["seq"] for e in stored["events"]] == [1, 2, 3, 4, 5, 6]
    assert all(e["agent_id"] == agent_id and e["deployment_id"] == dep for e in stored["events"])
    # the agent reads its own deployment
    assert_ok(http.get("/api/deployments/%s" % dep, headers=h))
    assert_ok(http.get("/api/deployments/%s/events" % dep, headers=h))


def test_invalid_events_are_400_and_nothing_of_the_request_is_stored(console, http, user):
    sat = new_satellite(console)
    _, h, _ = new_agent(console, http, sat)
    plan, dep = plan_and_deploy(http, user, sat)
    http.get("/api/agent/workloads", headers=h)
    evs = numbered(plan)
    before = console.db.counts()["events"]
    bad_events = [
        dict(evs[1], type="step.exploded"),
        dict(evs[1], payload={}),
        dict(evs[1], timestamp="yesterday"),
        dict(evs[1], seq=0),
        dict(evs[1], seq="2"),
        dict(evs[1], agent_id="someone-else"),
        dict(evs[1], deployment_id="dep-other"),
        "not an event",
    ]
    for bad in bad_events:
        assert_error(http.post("/api/deployments/%s/events" % dep, headers=h,
                               json=[evs[0], bad, evs[2]]), 400)
    assert_error(http.post("/api/deployments/%s/events" % dep, headers=h, json=[]), 400)
    assert_error(http.post("/api/deployments/%s/events" % dep, headers=h,
                           content=b'[{"type": "job.accepted", "seq": NaN}]'), 400)
    assert console.db.counts()["events"] == before
    assert assert_ok(http.get("/api/deployments/%s" % dep, headers=user))["status"] == "dispatched"


def test_event_ownership_404_403_409(console, http, user):
    sat = new_satellite(console)
    _, h, _ = new_agent(console, http, sat)
    _, same_sat, _ = new_agent(console, http, sat)
    _, other_sat, _ = new_agent(console, http, new_satellite(console))
    plan, dep = plan_and_deploy(http, user, sat)
    http.get("/api/agent/workloads", headers=h)
    ev = numbered(plan)[0]
    assert_error(http.post("/api/deployments/dep-nope/events", headers=h, json=ev), 404)
    assert_error(http.post("/api/deployments/%s/events" % dep, headers=other_sat, json=ev), 403)
    assert_error(http.post("/api/deployments/%s/events" % dep, headers=same_sat, json=ev), 409)
    assert_error(http.get("/api/deployments/%s" % dep, headers=other_sat), 403)
    assert_error(http.get("/api/deployments/%s/events" % dep, headers=same_sat), 403)
    _, sim = plan_and_deploy(http, user, sat, mode="simulated")
    assert_error(http.post("/api/deployments/%s/events" % sim, headers=h, json=ev), 403)


def test_job_failed_moves_the_deployment_to_failed(console, http, user):
    sat = new_satellite(console)
    _, h, _ = new_agent(console, http, sat)
    plan, dep = plan_and_deploy(http, user, sat)
    http.get("/api/agent/workloads", headers=h)
    failed = {"type": "job.failed", "timestamp": "2026-03-07T14:23:45Z", "job_id": "j",
              "step_id": None, "seq": 1,
              "payload": {"total_duration_s": 10, "status": "failed", "reason": "thermal"}}
    assert_ok(http.post("/api/deployments/%s/events" % dep, headers=h, json=failed), 201)
    body = assert_ok(http.get("/api/deployments/%s" % dep, headers=user))
    assert body["status"] == "failed" and body["finished_at"]


# ------------------------------------------------------------------ telemetry

def test_telemetry_keeps_status_heartbeat_and_latest_state_with_extras(console, http, user):
    sat = new_satellite(console)
    agent_id, h, _ = new_agent(console, http, sat)
    tm = {"agent_id": agent_id, "status": "executing", "timestamp": "2026-03-07T14:23:45Z",
          "cpu_percent": 40.5, "memory_mb": 120, "battery_percent": 77, "temperature_c": 31.5,
          "position": {"lat": 10.0, "lon": -20.0, "altitude_km": 500, "in_eclipse": False},
          "compute_capacity": 1.0, "boot_count": 3, "reset_cause": "watchdog", "mode": "normal",
          "heap_free": 41000, "outbox_depth": 2, "seq": 99}
    assert assert_ok(http.post("/api/agent/telemetry", headers=h, json=tm))["ok"] is True
    agent = [a for a in assert_ok(http.get("/api/agents", headers=user))["agents"]
             if a["agent_id"] == agent_id][0]
    assert agent["status"] == "executing" and agent["last_heartbeat_at"]
    assert agent["telemetry"]["reset_cause"] == "watchdog"
    assert agent["telemetry"]["position"]["in_eclipse"] is False
    assert agent["telemetry"]["heap_free"] == 41000
    for bad in (dict(tm, status="dancing"), dict(tm, battery_percent=140),
                dict(tm, timestamp="soon-ish-but-not-iso"), {"agent_id": agent_id}):
        assert_error(http.post("/api/agent/telemetry", headers=h, json=bad), 400)
    assert_error(http.post("/api/agent/telemetry", headers=h, json=dict(tm, agent_id="other")),
                 403)


# ------------------------------------------------------------------ rate limits

def test_rate_limits_answer_429_and_lift_when_time_passes_or_for_unlimited_keys(
        console, http, user, clock):
    sat = new_satellite(console)
    agent_id, h, _ = new_agent(console, http, sat, rate_limited=True)
    tm = {"agent_id": agent_id, "status": "idle", "timestamp": "2026-03-07T14:23:45Z"}
    assert http.get("/api/agent/workloads", headers=h).status_code == 204
    r = http.get("/api/agent/workloads", headers=h)
    assert_error(r, 429)
    assert int(r.headers["Retry-After"]) >= 1
    assert_ok(http.post("/api/agent/telemetry", headers=h, json=tm))
    assert_error(http.post("/api/agent/telemetry", headers=h, json=tm), 429)
    clock.t += 10.5
    assert http.get("/api/agent/workloads", headers=h).status_code == 204
    assert_error(http.post("/api/agent/telemetry", headers=h, json=tm), 429)
    clock.t += 20
    assert_ok(http.post("/api/agent/telemetry", headers=h, json=tm))
    # events: 100 requests per minute per deployment, a batch counts once
    clock.t += 30
    plan, dep = plan_and_deploy(http, user, sat)
    assert http.get("/api/agent/workloads", headers=h).status_code == 200
    evs = numbered(plan)
    for i in range(100):
        assert http.post("/api/deployments/%s/events" % dep, headers=h,
                         json=evs[:3]).status_code == 201
    assert_error(http.post("/api/deployments/%s/events" % dep, headers=h, json=evs[:3]), 429)
    clock.t += 61
    assert http.post("/api/deployments/%s/events" % dep, headers=h, json=evs).status_code == 201
    # an unlimited key (simulated time) is never limited
    _, free, _ = new_agent(console, http, sat, rate_limited=False)
    for _ in range(5):
        assert http.get("/api/agent/workloads", headers=free).status_code in (200, 204)


def test_a_poll_that_hands_out_a_deployment_counts_once_against_the_rate_limit(
        console, http, user, clock):
    # the poll is first tried on the event loop (reads only); handing out the
    # deployment is a write, so the same poll runs again on the thread pool
    sat = new_satellite(console)
    _, h, _ = new_agent(console, http, sat, rate_limited=True)
    _, dep = plan_and_deploy(http, user, sat)
    assert assert_ok(http.get("/api/agent/workloads", headers=h))["deployment_id"] == dep
    assert_error(http.get("/api/agent/workloads", headers=h), 429)
    clock.t += 10.5
    assert assert_ok(http.get("/api/agent/workloads", headers=h))["deployment_id"] == dep


# ------------------------------------------------------------------ cancel

def test_cancel_is_delivered_in_poll_replies_until_the_agent_reports_the_end(
        console, http, user):
    sat = new_satellite(console)
    _, h, _ = new_agent(console, http, sat)
    plan, dep = plan_and_deploy(http, user, sat)
    http.get("/api/agent/workloads", headers=h)
    assert assert_ok(http.post("/api/deployments/%s/cancel" % dep, headers=user))["status"] == \
        "cancelled"
    assert assert_ok(http.post("/api/deployments/%s/cancel" % dep, headers=user))["status"] == \
        "cancelled"
    body = assert_ok(http.get("/api/agent/workloads", headers=h))
    assert body["cancel"] == [dep] and "deployment_id" not in body
    # with a new workload pending, the reply carries both
    plan2, dep2 = plan_and_deploy(http, user, sat)
    body = assert_ok(http.get("/api/agent/workloads", headers=h))
    assert body["cancel"] == [dep] and body["deployment_id"] == dep2
    stopped = {"type": "job.failed", "timestamp": "2026-03-07T14:23:45Z", "job_id": "j",
               "step_id": None, "seq": 1,
               "payload": {"total_duration_s": 5, "status": "cancelled", "reason": "cancelled"}}
    assert_ok(http.post("/api/deployments/%s/events" % dep, headers=h, json=stopped), 201)
    assert assert_ok(http.get("/api/deployments/%s" % dep, headers=user))["status"] == "cancelled"
    assert "cancel" not in assert_ok(http.get("/api/agent/workloads", headers=h))
    assert_error(http.post("/api/deployments/dep-nope/cancel", headers=user), 404)
    assert_ok(http.post("/api/deployments/%s/events" % dep2, headers=h, json=numbered(plan2, 2)),
              201)
    assert_error(http.post("/api/deployments/%s/cancel" % dep2, headers=user), 409)


# ------------------------------------------------------------------ plans and deployments

def test_plan_has_the_steps_md_shape_and_its_predicted_events(console, http, user):
    plan = assert_ok(http.post("/v1/plan", headers=user, json={
        "satellite_id": "25544", "custom_job": STANDARD_JOB,
        "planning": {"prediction_hours": 6, "start": "2026-03-07T12:00:00Z"}}))
    for key in ("id", "created_at", "version", "satellite", "job", "orbital_environment",
                "placement_decisions", "schedule", "transfer_schedule", "hazards", "plan",
                "events"):
        assert key in plan
    assert plan["satellite"]["norad_id"] == 25544
    assert plan["orbital_environment"]["prediction_start"] == "2026-03-07T12:00:00Z"
    types = [e["type"] for e in plan["events"]]
    assert types[:5] == ["job.accepted", "placement.decided", "placement.decided", "plan.created",
                         "checkpoint.predicted"]
    assert types[5:10] == ["step.started"] + ["step.progress"] * 3 + ["step.completed"]
    assert types[-1] == "job.completed"
    # accepted at the first contact after the start; done when the outputs are down
    first, last = (timeutil.parse_iso(plan["events"][i]["timestamp"]) for i in (0, -1))
    assert timeutil.parse_iso("2026-03-07T12:00:00Z") <= first
    assert abs(last - first - plan["plan"]["total_duration_s"]) < 1
    got = assert_ok(http.get("/v1/plan/%s/events" % plan["id"], headers=user))
    assert got["plan_id"] == plan["id"] and got["events"] == plan["events"]
    assert got["count"] == len(plan["events"])
    assert_error(http.get("/v1/plan/plan-nope/events", headers=user), 404)


@pytest.mark.parametrize("job,status", [
    ({"steps": [{"id": "a", "compute_s": 1}, {"id": "a", "compute_s": 1}]}, 400),
    ({"steps": [{"id": "a", "compute_s": 1, "depends_on": ["ghost"]}]}, 400),
    ({"steps": [{"id": "a", "compute_s": 1, "depends_on": ["b"]},
                {"id": "b", "compute_s": 1, "depends_on": ["a"]}]}, 400),
    ({"steps": [{"id": "a", "compute_s": "long"}]}, 400),
    ({"steps": [{"id": "a", "compute_s": 1e12}]}, 400),
    ({"steps": [{"id": "a", "compute_s": 1, "type": "quantum"}]}, 400),
    ({"steps": []}, 400),
    ({"steps": [{"id": "a", "type": "eclipse", "compute_s": 600, "energy_budget_wh": 0.1}]}, 422),
    ({"steps": [{"id": "a", "compute_s": 86400}], "policy": {"deadline_orbits": 1}}, 422),
])
def test_invalid_or_infeasible_jobs_are_refused_and_not_stored(console, http, user, job, status):
    before = console.db.counts()["plans"]
    assert_error(http.post("/v1/plan", headers=user,
                           json={"satellite_id": "25544", "custom_job": job}), status)
    assert console.db.counts()["plans"] == before


def test_plan_request_errors(console, http, user):
    assert_error(http.post("/v1/plan", headers=user,
                           json={"satellite_id": "nope", "custom_job": STANDARD_JOB}), 404)
    for planning in ({"prediction_hours": 0}, {"prediction_hours": 49},
                     {"min_elevation_deg": 91}, {"start": "tomorrow at noon"}):
        assert_error(http.post("/v1/plan", headers=user, json={
            "satellite_id": "25544", "custom_job": STANDARD_JOB, "planning": planning}), 400)


def test_deployment_create_and_read(console, http, user):
    sat = new_satellite(console)
    plan, dep = plan_and_deploy(http, user, sat)
    body = assert_ok(http.get("/api/deployments/%s" % dep, headers=user))
    assert body["id"] == dep and body["status"] == "pending" and body["plan_id"] == plan["id"]
    assert body["mode"] == "live" and body["steps_total"] == 2
    assert_error(http.get("/api/deployments/dep-nope", headers=user), 404)
    assert_error(http.get("/api/deployments/dep-nope/events", headers=user), 404)
    assert_error(http.post("/api/deployments", headers=user, json={"plan_id": "plan-nope"}), 404)
    for bad in ({"plan_id": plan["id"], "mode": "dream"},
                {"plan_id": plan["id"], "speed_multiplier": -1}, {}):
        assert_error(http.post("/api/deployments", headers=user, json=bad), 400)


def test_follow_streams_server_sent_events_and_ends_after_the_terminal_event(
        console, http, user):
    sat = new_satellite(console)
    plan, dep = plan_and_deploy(http, user, sat, mode="simulated")
    seen, end = [], None
    with http.stream("GET", "/api/deployments/%s/events" % dep, headers=user,
                     params={"follow": 1}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
                if name == "end":
                    end = data
                else:
                    seen.append(data)
    assert [e["type"] for e in seen] == [e["type"] for e in plan["events"]]
    assert [e["seq"] for e in seen] == list(range(1, len(plan["events"]) + 1))
    assert all(e["agent_id"] == "sim" for e in seen)
    assert end["status"] == "completed"


# ------------------------------------------------------------------ satellites

def test_satellite_catalog_ships_real_tles_and_accepts_new_ones(console, http, user):
    sats = assert_ok(http.get("/api/satellites", headers=user))["satellites"]
    seeded = {s["satellite_id"]: s for s in sats}
    assert "25544" in seeded and seeded["25544"]["tle"][0].startswith("1 25544U")
    incl = {round(s["orbit"]["inclination_deg"]) for s in seeded.values() if s["tle"]}
    assert len(incl) >= 3
    iss = seeded["25544"]["tle"]
    new_id = "iss-" + uuid.uuid4().hex[:6]
    rec = assert_ok(http.post("/api/satellites", headers=user,
                              json={"satellite_id": new_id, "name": "ISS copy",
                                    "tle": "ISS\n%s\n%s" % (iss[0], iss[1])}), 201)
    assert rec["orbit"]["period_min"] == pytest.approx(91.6, abs=0.1)
    assert_error(http.post("/api/satellites", headers=user,
                           json={"satellite_id": new_id, "name": "again", "tle": iss}), 409)
    broken = [iss[0], iss[1][:-1] + str((int(iss[1][-1]) + 1) % 10)]
    assert_error(http.post("/api/satellites", headers=user,
                           json={"satellite_id": "broken", "name": "b", "tle": broken}), 400)
    assert_error(http.post("/api/satellites", headers=user,
                           json={"satellite_id": "none", "name": "no orbit"}), 400)
    el = assert_ok(http.post("/api/satellites", headers=user, json={
        "satellite_id": "kep-" + new_id, "name": "Kepler",
        "elements": {"altitude_km": 550, "inclination_deg": 53}, "bus": {"battery_wh": 100}}),
        201)
    assert el["orbit"]["period_min"] == pytest.approx(95.6, abs=0.2)


# ------------------------------------------------------------------ limits and unknowns

def test_oversized_body_is_413_and_not_stored(console, http, user):
    before = console.db.counts()
    big = {"satellite_id": "big", "name": "x" * 100, "tle": ["1" * 70] * 2, "pad": "y" * 70000}
    assert_error(http.post("/api/satellites", headers=user, json=big), 413)
    job = {"steps": [{"id": "s%d" % i, "compute_s": 1, "note": "z" * 1000} for i in range(80)]}
    assert_error(http.post("/v1/plan", headers=user,
                           json={"satellite_id": "25544", "custom_job": job}), 413)
    assert console.db.counts() == before


def test_unknown_paths_are_404_with_an_error_body(http, user):
    assert_error(http.get("/api/nothing-here", headers=user), 404)


def test_openapi_describes_every_endpoint_with_request_bodies(http):
    doc = http.get("/openapi.json").json()
    paths = doc["paths"]
    for path, method in [("/api/agent/register", "post"), ("/api/agent/workloads", "get"),
                         ("/api/deployments/{deployment_id}/events", "post"),
                         ("/api/agent/telemetry", "post"), ("/v1/plan", "post"),
                         ("/v1/plan/{plan_id}/events", "get"), ("/api/deployments", "post"),
                         ("/api/deployments/{deployment_id}", "get"),
                         ("/api/deployments/{deployment_id}/events", "get"),
                         ("/api/deployments/{deployment_id}/cancel", "post"),
                         ("/api/agents", "get"), ("/api/keys", "post"),
                         ("/api/satellites", "post"), ("/api/satellites", "get")]:
        op = paths[path][method]
        assert "422" not in op["responses"] or path == "/v1/plan"
        if method == "post" and not path.endswith("/cancel"):
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            assert schema.get("properties") or schema.get("oneOf")
