"""A peer that speaks only the public protocol v0.1.0 works against our Console,
unchanged (PROTOCOL.md, "Peers that speak only v0.1.0"; docs/console.md).

`ReferencePeer` is our own client that behaves on the wire exactly as the
public reference agent (rotastellar-agent 0.1.0) does: its requests, headers
and field names, one event per request without seq or agent_id, telemetry
stamped with nanoseconds and +00:00, a failed request logged and skipped (it
never retries), and its poll parser's failure rules: a 200 reply lacking
plan_id, deployment_id, satellite_id, plan_data or events -- or an event
lacking type, timestamp, a string job_id or payload -- is a parse error. The
Console is a real uvicorn server on loopback.
"""
import json
import random
import time
import uuid

import httpx
import pytest
from click.testing import CliRunner

from tools.console import auth, catalog, cli
from tools.console.server import serve_in_thread

JOB = {"name": "three steps", "steps": [
    {"id": "collect", "name": "Collect", "compute_s": 300, "output_mb": 40},
    {"id": "reduce", "name": "Reduce", "compute_s": 600, "output_mb": 8,
     "depends_on": ["collect"]},
    {"id": "pack", "name": "Pack", "compute_s": 120, "output_mb": 2, "depends_on": ["reduce"]}]}

# Every payload the v0.1.0 tables document, with v0.1.0's field names
# (the reference's PROTOCOL.md; ../shared/spec/EVENTS.md, "v0.1.0 payloads").
V010_PAYLOADS = [
    ("job.accepted", None, {"preset": "split-learning", "category": "ml", "steps": 8,
                            "security": "aes256"}),
    ("plan.created", None, {"segments": 3, "windows_used": 2, "total_duration_s": 5400}),
    ("placement.decided", "s1", {"location": "onboard", "reason": "data gravity"}),
    ("step.started", "s1", {"location": "onboard", "window": "w1", "window_label": "sunlit 1"}),
    ("step.progress", "s1", {"percent": 25}),
    ("step.completed", "s1", {"duration_s": 180, "location": "onboard", "data_output_mb": 10.5}),
    ("transfer.started", None, {"type": "downlink", "raw_data_mb": 10.5,
                                "total_transfer_mb": 12.1, "fec_scheme": "ldpc"}),
    ("transfer.pass_started", None, {"ground_station": "svalbard", "station_name": "Svalbard",
                                     "elevation_peak_deg": 42.0}),
    ("transfer.progress", None, {"data_transferred_mb": 6.0, "total_mb": 12.1}),
    ("transfer.pass_completed", None, {"data_transferred_mb": 12.1,
                                       "ground_station": "svalbard"}),
    ("transfer.completed", None, {"total_transferred_mb": 12.1, "duration_s": 300}),
    ("transfer.retransmission", None, {"blocks_retransmitted": 3, "ber": 1e-6}),
    ("security.encrypted", None, {"algorithm": "AES-256-GCM", "data_mb": 10.5}),
    ("security.key_exchange", None, {"duration_s": 2, "encryption": "X25519"}),
    ("checkpoint.saved", "s1", {"checkpoint_number": 1, "progress_fraction": 0.5}),
    ("checkpoint.predicted", None, {"hazards_count": 1, "checkpoints_count": 2,
                                    "next_hazard": "saa", "max_safe_window_s": 900,
                                    "overhead_fraction": 0.02, "hazards": [],
                                    "checkpoint_schedule": []}),
    ("eclipse_step.started", "e1", {"energy_budget_j": 43200, "eclipse_policy": "balanced",
                                    "actual_battery_wh": 61.2,
                                    "max_available_energy_j": 90000}),
    ("eclipse_step.energy_check", "e1", {"energy_remaining_j": 20000,
                                         "actual_battery_wh": 58.0}),
    ("eclipse_step.completed", "e1", {"energy_consumed_j": 40000, "actual_battery_wh": 50.1,
                                      "actual_temperature_c": 21.5}),
    ("window_step.started", "w1", {"planned_tier": "enhanced",
                                   "quality_tiers": ["basic", "enhanced"],
                                   "actual_battery_percent": 81.0, "compute_capacity": 0.9}),
    ("window_step.degraded", "w1", {"from_tier": "enhanced", "to_tier": "basic",
                                    "reason": "window shortened"}),
    ("window_step.upgraded", "w1", {"from_tier": "basic", "to_tier": "enhanced"}),
    ("window_step.completed", "w1", {"achieved_tier": "enhanced", "output_quality": 0.9,
                                     "degradations": 0}),
    ("pass_step.started", "p1", {"sequence_index": 0, "sequence_total": 2,
                                 "actual_battery_percent": 77.0}),
    ("pass_step.completed", "p1", {"sequence_index": 1, "sequence_total": 2,
                                   "merge_strategy": "concatenate"}),
    ("isl_transfer.started", None, {"src_satellite": "25544", "dst_satellite": "28057",
                                    "data_mb": 5.0, "hops": 2, "route": ["25544", "x", "28057"]}),
    ("isl_transfer.hop_completed", None, {"from": "25544", "to": "x", "data_mb": 5.0,
                                          "hop_index": 0, "hop_total": 2}),
    ("isl_transfer.completed", None, {"total_time_s": 12.5, "total_data_mb": 5.0, "hops": 2,
                                      "reliability": 0.97}),
    ("constellation.step_assigned", "s2", {"step_id": "s2", "step_name": "Fuse",
                                           "satellite_id": "28057", "window_id": "w3"}),
    ("constellation.failover", "s2", {"step_id": "s2", "from_satellite": "28057",
                                      "to_satellite": "25544", "reason": "battery"}),
    ("constellation.failover", "s2", {"satellite_id": "28057", "reason": "thermal"}),
    ("constellation.failover_acknowledged", "s2", {"satellite_id": "25544", "reason": "battery",
                                                   "steps_remaining": 1}),
    ("job.completed", None, {"total_duration_s": 5400, "status": "success",
                             "delivery_confidence": 0.99}),
    ("job.failed", None, {"total_duration_s": 60, "status": "failed"}),
]


class ParseError(Exception):
    """The reference's poll parser refused a 200 reply."""


class ApiError(Exception):
    """A non-success reply (the reference logs it and carries on)."""


def nanosecond_time(t=None):
    """A timestamp as the reference stamps telemetry: nanoseconds and +00:00."""
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%09d+00:00" % (
        int((t % 1) * 1e9))


def parse_workload(body):
    """What the reference's serde parse of a WorkloadSpec accepts, or ParseError."""
    if not isinstance(body, dict):
        raise ParseError("not an object")
    for field in ("plan_id", "deployment_id", "satellite_id"):
        if not isinstance(body.get(field), str):
            raise ParseError("missing field %r" % field)
    if "plan_data" not in body:
        raise ParseError("missing field 'plan_data'")
    if not isinstance(body.get("events"), list):
        raise ParseError("missing field 'events'")
    for ev in body["events"]:
        if not isinstance(ev, dict):
            raise ParseError("an event is not an object")
        for field in ("type", "timestamp", "job_id"):
            if not isinstance(ev.get(field), str):
                raise ParseError("event: missing field %r" % field)
        if ev.get("step_id") is not None and not isinstance(ev["step_id"], str):
            raise ParseError("event: step_id is not a string")
        if "payload" not in ev:
            raise ParseError("event: missing field 'payload'")
    return body


class ReferencePeer:
    """rotastellar-agent 0.1.0 on the wire (see the module docstring)."""

    def __init__(self, url, agent_id, api_key, satellite_id=None):
        self.agent_id = agent_id
        self.satellite_id = satellite_id
        self.http = httpx.Client(base_url=url, timeout=20,
                                 headers={"User-Agent": "rotastellar-agent/0.1.0"})
        self.key = api_key
        self.refused = []      # (status, text) of every event the Console refused
        self.parse_errors = []

    def _headers(self):
        return {"X-API-Key": self.key, "X-Agent-ID": self.agent_id}

    def close(self):
        self.http.close()

    def register(self):
        body = {"agent_id": self.agent_id, "agent_version": "0.1.0"}
        if self.satellite_id is not None:  # sent only when its flag is given
            body["satellite_id"] = self.satellite_id
        return self.http.post("/api/agent/register", headers=self._headers(), json=body)

    def poll(self):
        r = self.http.get("/api/agent/workloads", headers=self._headers())
        if r.status_code == 204:
            return None
        if not 200 <= r.status_code < 300:
            raise ApiError("%d: %s" % (r.status_code, r.text))
        try:
            return parse_workload(r.json())
        except (ValueError, ParseError) as exc:
            self.parse_errors.append(str(exc))
            raise ParseError(str(exc))

    def report_event(self, deployment_id, ev):
        body = {"type": ev["type"], "timestamp": ev["timestamp"], "job_id": ev["job_id"]}
        if ev.get("step_id") is not None:
            body["step_id"] = ev["step_id"]
        body["payload"] = ev.get("payload", {})
        r = self.http.post("/api/deployments/%s/events" % deployment_id,
                           headers=self._headers(), json=body)
        if not 200 <= r.status_code < 300:
            self.refused.append((r.status_code, r.text))
        return r

    def report_telemetry(self, status="executing", battery_percent=82.0):
        body = {"agent_id": self.agent_id, "status": status, "timestamp": nanosecond_time(),
                "cpu_percent": 67.5, "memory_mb": 128.0, "battery_percent": battery_percent,
                "temperature_c": 34.2}
        return self.http.post("/api/agent/telemetry", headers=self._headers(), json=body)

    def execute(self, workload, stop_after=None):
        """Replay the workload's events in order, one request each (as the
        reference's `run` does); stop_after: killed after that many."""
        for i, ev in enumerate(workload["events"]):
            if stop_after is not None and i >= stop_after:
                return i
            self.report_event(workload["deployment_id"], ev)
        return len(workload["events"])


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture(scope="module")
def clock():
    return FakeClock()


@pytest.fixture(scope="module")
def console(tmp_path_factory, clock):
    srv = serve_in_thread(str(tmp_path_factory.mktemp("v010") / "console.db"), rate_clock=clock)
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
    """A catalog satellite with a NORAD id of its own (its catalog id is not one)."""
    norad = random.randint(90000, 99999999)
    sat_id = "t-" + uuid.uuid4().hex[:8]
    catalog.add(console.db, sat_id, "Test " + sat_id, norad_id=norad,
                elements={"altitude_km": 500, "inclination_deg": 97.4})
    return sat_id, norad


def new_peer(console, clock, agent_id):
    """A registered reference peer, its key rate-limited as `umbra keys create` makes it."""
    key = auth.create_key(console.db, "agent", agent_id)["key"]
    peer = ReferencePeer(console.url, agent_id, key)
    r = peer.register()
    assert r.status_code == 201, r.text
    clock.t += 60  # rate limits: each test polls as if a minute had passed
    return peer, key


def plan_and_deploy(http, user, satellite_id, job=JOB):
    r = http.post("/v1/plan", headers=user, json={"satellite_id": satellite_id, "custom_job": job})
    assert r.status_code == 200, r.text
    r2 = http.post("/api/deployments", headers=user,
                   json={"plan_id": r.json()["id"], "mode": "live"})
    assert r2.status_code == 201, r2.text
    return r.json(), r2.json()["id"]


def stored(http, user, dep):
    r = http.get("/api/deployments/%s/events" % dep, headers=user)
    assert r.status_code == 200, r.text
    return r.json()


def summary(http, user, dep):
    r = http.get("/api/deployments/%s" % dep, headers=user)
    assert r.status_code == 200, r.text
    return r.json()


def poll(peer, clock):
    clock.t += 11  # the reference polls every poll_interval_s (>= the 10 s limit)
    return peer.poll()


def without_envelope_extras(ev):
    return {k: ev.get(k) for k in ("type", "timestamp", "job_id", "step_id", "payload")}


# ------------------------------------------------------------------ register

def test_a_peer_registers_without_satellite_fields_and_the_console_resolves_its_satellite(
        console, http, user, clock):
    sat_id, norad = new_satellite(console)
    # `sat-<NORAD id>` names the catalog entry with that NORAD id
    peer, _ = new_peer(console, clock, "sat-%d" % norad)
    agents = {a["agent_id"]: a for a in http.get("/api/agents", headers=user).json()["agents"]}
    assert agents["sat-%d" % norad]["satellite_id"] == sat_id
    # a bare NORAD id names the seeded catalog entry of that id (the ISS)
    iss, _ = new_peer(console, clock, "25544")
    agents = {a["agent_id"]: a for a in http.get("/api/agents", headers=user).json()["agents"]}
    assert agents["25544"]["satellite_id"] == "25544"
    # a key from before bindings, whose agent id names no satellite: nothing
    # resolves, a clear 400 that says what to send, and nothing stored
    legacy = auth.create_key(console.db, "agent", "probe-x", satellite_id=sat_id)["key"]
    with console.db.write() as c:
        c.execute("UPDATE api_keys SET satellite_id = NULL WHERE key_hash = ?",
                  (auth.hash_key(legacy),))
    before = console.db.counts()
    lost = ReferencePeer(console.url, "probe-x", legacy)
    r = lost.register()
    assert r.status_code == 400
    assert "satellite_id" in r.json()["error"]
    after = console.db.counts()
    assert after["agents"] == before["agents"]
    # and polling unregistered is the protocol's 404 (the reference logs it)
    with pytest.raises(ApiError, match="404"):
        lost.poll()
    for p in (peer, iss, lost):
        p.close()


# ------------------------------------------------------------------ a whole job

def test_a_job_completes_with_every_event_stored_once(console, http, user, clock):
    sat_id, norad = new_satellite(console)
    peer, _ = new_peer(console, clock, "sat-%d" % norad)
    assert poll(peer, clock) is None  # 204: nothing to do yet
    plan, dep = plan_and_deploy(http, user, sat_id)
    workload = poll(peer, clock)
    assert workload["deployment_id"] == dep and workload["plan_id"] == plan["id"]
    assert workload["satellite_id"] == sat_id
    assert workload["events"] == plan["events"]  # the full stream: v0.1.0 replays it
    assert summary(http, user, dep)["status"] == "dispatched"
    r = peer.report_telemetry()
    assert r.status_code == 200, r.text  # nanoseconds and +00:00 are ISO 8601
    sent = peer.execute(workload)
    assert sent == len(plan["events"]) and peer.refused == []
    body = stored(http, user, dep)
    assert body["status"] == "completed"
    assert [without_envelope_extras(e) for e in body["events"]] == \
        [without_envelope_extras(dict(e, step_id=e.get("step_id"))) for e in plan["events"]]
    s = summary(http, user, dep)
    assert s["events_count"] == len(plan["events"])
    assert s["steps_completed"] == s["steps_total"] == 3
    # a finished job is never handed out again
    assert poll(peer, clock) is None
    agents = {a["agent_id"]: a for a in http.get("/api/agents", headers=user).json()["agents"]}
    assert agents[peer.agent_id]["last_heartbeat_at"] is not None
    assert peer.parse_errors == []
    peer.close()


# ------------------------------------------------------------------ cancel

def test_after_a_cancel_the_console_closes_the_job_and_the_next_job_still_completes(
        console, http, user, clock):
    sat_id, norad = new_satellite(console)
    peer, _ = new_peer(console, clock, "sat-%d" % norad)
    plan, dep = plan_and_deploy(http, user, sat_id)
    workload = poll(peer, clock)
    peer.execute(workload, stop_after=3)
    r = http.post("/api/deployments/%s/cancel" % dep, headers=user)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    # closed at the Console: no cancel-only body a v0.1.0 parser would choke on
    assert poll(peer, clock) is None
    s = summary(http, user, dep)
    assert s["status"] == "cancelled" and s["finished_at"] is not None
    # the peer knows nothing of the cancel and finishes its replay; the
    # deployment stays cancelled
    peer.execute(dict(workload, events=workload["events"][3:]))
    assert summary(http, user, dep)["status"] == "cancelled"
    assert poll(peer, clock) is None
    plan2, dep2 = plan_and_deploy(http, user, sat_id)
    workload2 = poll(peer, clock)
    assert workload2["deployment_id"] == dep2
    peer.execute(workload2)
    assert summary(http, user, dep2)["status"] == "completed"
    assert peer.parse_errors == [] and peer.refused == []
    # a cancel before the peer ever polled it: it is never handed out
    _, dep3 = plan_and_deploy(http, user, sat_id)
    http.post("/api/deployments/%s/cancel" % dep3, headers=user)
    assert poll(peer, clock) is None
    peer.close()


# ------------------------------------------------------------------ restart

def test_a_restart_mid_job_stores_nothing_twice(console, http, user, clock):
    sat_id, norad = new_satellite(console)
    agent_id = "sat-%d" % norad
    peer, key = new_peer(console, clock, agent_id)
    plan, dep = plan_and_deploy(http, user, sat_id)
    workload = poll(peer, clock)
    half = len(workload["events"]) // 2
    peer.execute(workload, stop_after=half)
    peer.close()  # killed mid-job; it remembers nothing
    again = ReferencePeer(console.url, agent_id, key)
    assert again.register().status_code == 201
    assert poll(again, clock) is None  # the job it took is not handed out again
    body = stored(http, user, dep)
    assert body["count"] == half
    assert [e["type"] for e in body["events"]] == [e["type"] for e in plan["events"][:half]]
    s = summary(http, user, dep)
    assert s["steps_completed"] == sum(1 for e in plan["events"][:half]
                                       if e["type"] == "step.completed")
    # the next job reaches it and completes, once
    plan2, dep2 = plan_and_deploy(http, user, sat_id)
    workload2 = poll(again, clock)
    assert workload2["deployment_id"] == dep2
    again.execute(workload2)
    assert stored(http, user, dep2)["count"] == len(plan2["events"])
    assert summary(http, user, dep2)["status"] == "completed"
    assert stored(http, user, dep)["count"] == half
    again.close()


# ------------------------------------------------------------------ payloads and views

@pytest.fixture(scope="module")
def v010_deployment(console, http, user, clock):
    """A live deployment into which a reference peer posted every v0.1.0 payload."""
    sat_id, norad = new_satellite(console)
    peer, key = new_peer(console, clock, "sat-%d" % norad)
    plan, dep = plan_and_deploy(http, user, sat_id)
    workload = poll(peer, clock)
    t0 = time.time()
    for i, (etype, step_id, payload) in enumerate(V010_PAYLOADS):
        ev = {"type": etype, "timestamp": nanosecond_time(t0 + 60 * i), "job_id": "preset-001",
              "step_id": step_id, "payload": payload}
        peer.report_event(workload["deployment_id"], ev)
    peer.close()
    return dep, peer


def test_every_payload_of_the_v010_tables_is_stored(http, user, v010_deployment):
    dep, peer = v010_deployment
    assert peer.refused == []
    body = stored(http, user, dep)
    assert body["count"] == len(V010_PAYLOADS)
    assert [(e["type"], e["payload"]) for e in body["events"]] == \
        [(t, p) for t, _, p in V010_PAYLOADS]
    assert body["events"][0]["timestamp"].endswith("+00:00")  # stored as sent
    # job.completed finished it; the later job.failed does not reopen it
    assert body["status"] == "completed"


def test_a_job_failed_without_reason_from_a_peer_fails_the_deployment(console, http, user,
                                                                       clock):
    sat_id, norad = new_satellite(console)
    peer, _ = new_peer(console, clock, "sat-%d" % norad)
    _, dep = plan_and_deploy(http, user, sat_id)
    workload = poll(peer, clock)
    peer.report_event(workload["deployment_id"], {
        "type": "job.failed", "timestamp": nanosecond_time(), "job_id": "j",
        "payload": {"total_duration_s": 5, "status": "failed"}})
    assert peer.refused == []
    assert summary(http, user, dep)["status"] == "failed"
    peer.close()


def test_views_show_what_a_peer_sent_without_crashing(console, http, user, v010_deployment,
                                                      tmp_path, monkeypatch):
    dep, _ = v010_deployment
    monkeypatch.setenv("UMBRA_CONSOLE", console.url)
    monkeypatch.setenv("UMBRA_KEY", user["X-API-Key"])
    runner = CliRunner()
    r = runner.invoke(cli.events, [dep])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == len(V010_PAYLOADS)
    assert "pass_step.started" in r.output and "achieved_tier=enhanced" in r.output
    r = runner.invoke(cli.events, [dep, "--json"])
    assert r.exit_code == 0, r.output
    assert [json.loads(ln)["type"] for ln in r.output.strip().splitlines()] == \
        [t for t, _, _ in V010_PAYLOADS]
    r = runner.invoke(cli.events, [dep, "--compare", "--json"])
    assert r.exit_code == 1, r.output  # it diverged from the plan: shown, not crashed
    out = json.loads(r.output)
    assert out["summary"]["extra"] > 0 and not out["summary"]["identical"]
    r = runner.invoke(cli.events, [dep, "--compare"])
    assert r.exit_code == 1 and "extra" in r.output, r.output
    from tools import plot
    png = tmp_path / "v010.png"
    r = runner.invoke(plot.plot, [dep, "-o", str(png), "--db", console.db.path])
    assert r.exit_code == 0, r.output
    assert png.stat().st_size > 1000
    s = summary(http, user, dep)
    assert s["events_count"] == len(V010_PAYLOADS) and s["last_event_type"] == "job.failed"


# ------------------------------------------------------------------ our own agents: unchanged

def test_an_umbra_aware_agent_still_gets_strict_payload_checks_and_its_extensions(
        console, http, user, clock):
    sat_id, norad = new_satellite(console)
    agent_id = "sat-%d" % norad
    key = auth.create_key(console.db, "agent", agent_id, rate_limited=False)["key"]
    h = {"X-API-Key": key, "X-Agent-ID": agent_id, "User-Agent": "umbra-agent/0.1.0"}
    r = http.post("/api/agent/register", headers=h,
                  json={"agent_id": agent_id, "agent_version": "0.1.0"})
    assert r.status_code == 201, r.text
    _, dep = plan_and_deploy(http, user, sat_id)
    first = http.get("/api/agent/workloads", headers=h)
    again = http.get("/api/agent/workloads", headers=h)
    assert first.status_code == again.status_code == 200  # the dispatched one again
    assert again.json()["deployment_id"] == dep
    for etype, payload in (("job.failed", {"total_duration_s": 5, "status": "failed"}),
                           ("pass_step.started", {"sequence_index": 0, "sequence_total": 1,
                                                  "actual_battery_percent": 50})):
        r = http.post("/api/deployments/%s/events" % dep, headers=h, json={
            "type": etype, "timestamp": "2026-03-07T14:23:45Z", "job_id": "j", "seq": 1,
            "payload": payload})
        assert r.status_code == 400, r.text
    assert stored(http, user, dep)["count"] == 0
    # a cancel reaches it in the poll reply, as our extension says
    http.post("/api/deployments/%s/cancel" % dep, headers=user)
    body = http.get("/api/agent/workloads", headers=h).json()
    assert body["cancel"] == [dep]


def test_a_peer_becomes_umbra_aware_by_using_an_extension_and_a_plain_register_resets_it(
        console, http, user, clock):
    sat_id, norad = new_satellite(console)
    agent_id = "sat-%d" % norad
    key = auth.create_key(console.db, "agent", agent_id, rate_limited=False)["key"]
    plain = {"X-API-Key": key, "X-Agent-ID": agent_id, "User-Agent": "some-agent/1.0"}
    reg = {"agent_id": agent_id, "agent_version": "1.0"}
    assert http.post("/api/agent/register", headers=plain, json=reg).status_code == 201
    _, dep = plan_and_deploy(http, user, sat_id)
    assert http.get("/api/agent/workloads", headers=plain).status_code == 200
    assert http.get("/api/agent/workloads", headers=plain).status_code == 204  # v0.1.0
    # an event with seq is an extension: from then on it is Umbra-aware
    r = http.post("/api/deployments/%s/events" % dep, headers=plain, json={
        "type": "job.accepted", "timestamp": "2026-03-07T14:23:45Z", "job_id": "j", "seq": 1,
        "payload": {"name": "x", "steps": 3}})
    assert r.status_code == 201, r.text
    again = http.get("/api/agent/workloads", headers=plain)
    assert again.status_code == 200 and again.json()["deployment_id"] == dep
    # registering again without any extension: a v0.1.0 peer again
    assert http.post("/api/agent/register", headers=plain, json=reg).status_code == 201
    assert http.get("/api/agent/workloads", headers=plain).status_code == 204
