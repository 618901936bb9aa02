"""The operator view's Console side (docs/operator.md), over real HTTP against
a real uvicorn on loopback: the page and Open MCT served at `/`, user keys
only, the telemetry dictionary from the event catalog, the bounded telemetry
history, the paged and filtered event log of a huge deployment, plan versus
actual, the timeline picture, and the live feed resumed from Last-Event-ID
with nothing missed and nothing twice. The browser drives all of it in
tests/test_operator_ui.py."""
import json
import uuid

import httpx
import pytest

import events as catalog_events
from tools.console import auth, deployments, routes_ui, telemetry_history
from tools.console.server import serve_in_thread

JOB = {"name": "two steps", "steps": [
    {"id": "a", "name": "A", "compute_s": 120, "output_mb": 4},
    {"id": "b", "name": "B", "compute_s": 60, "output_mb": 1, "depends_on": ["a"]}]}
HUGE = 5000


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    srv = serve_in_thread(str(tmp_path_factory.mktemp("opui") / "console.db"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http(console):
    with httpx.Client(base_url=console.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def user(console):
    return {"X-API-Key": auth.create_key(console.db, "user")["key"]}


@pytest.fixture(scope="module")
def agent(console, http):
    agent_id = "sat-25544"
    key = auth.create_key(console.db, "agent", agent_id, rate_limited=False)["key"]
    headers = {"X-API-Key": key, "X-Agent-ID": agent_id}
    r = http.post("/api/agent/register", headers=headers,
                  json={"agent_id": agent_id, "satellite_id": "25544", "agent_version": "t"})
    assert r.status_code == 201, r.text
    return agent_id, headers


def send_telemetry(http, agent, battery):
    agent_id, headers = agent
    r = http.post("/api/agent/telemetry", headers=headers, json={
        "agent_id": agent_id, "status": "idle", "timestamp": "2008-09-20T13:15:00Z",
        "battery_percent": battery, "temperature_c": 20.5, "heap_free": 50000,
        "outbox_depth": 3, "mode": "normal", "compute_capacity": 1.0})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def huge(console, http, user):
    """A simulated deployment (speed 0) whose log is then grown to HUGE events."""
    plan = http.post("/v1/plan", headers=user, json={"satellite_id": "25544", "custom_job": JOB})
    assert plan.status_code == 200, plan.text
    dep = deployments.create(console.db, plan.json(), "simulated", 0)
    evs = []
    for seq in range(1, HUGE + 1):
        step = "a" if seq % 2 else "b"
        typ = "checkpoint.saved" if seq % 10 == 0 else "step.progress"
        payload = ({"checkpoint_number": seq, "progress_fraction": 0.5} if typ == "checkpoint.saved"
                   else {"percent": seq % 100})
        evs.append({"type": typ, "timestamp": "2008-09-20T13:%02d:%02dZ" % (seq // 60 % 60, seq % 60),
                    "job_id": "j", "step_id": step, "seq": seq, "payload": payload})
    deployments.store_events(console.db, dep, "sim:" + dep, "sim", evs)
    return dep


def test_the_page_at_root_is_open_mct_with_umbras_plugin(http):
    assert routes_ui.openmct_installed(), "Open MCT not installed: run make setup (npm ci)"
    page = http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for script in ("/ui/openmct/openmct.js", "/ui/umbra-api.js", "/ui/umbra-plugin.js"):
        assert script in page.text
        assert http.get(script).status_code == 200
    assert http.get("/ui/openmct/../../routes_ui.py").status_code == 404
    assert http.get("/ui/%2e%2e%2froutes_ui.py").status_code == 404


def test_the_operator_views_routes_stay_out_of_the_openapi_document(http):
    paths = http.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not [p for p in paths if p.startswith(("/ui", "/api/ui"))]
    assert "/api/deployments/{deployment_id}/events" in paths  # the API is still all there


@pytest.mark.parametrize("path", ["/api/ui/whoami", "/api/ui/dictionary", "/api/ui/stream",
                                  "/api/ui/deployments"])
def test_the_views_endpoints_refuse_a_wrong_key_and_say_an_agent_key_is_not_for_them(
        http, agent, path):
    assert http.get(path).status_code == 401
    assert http.get(path, headers={"X-API-Key": "um_wrong"}).status_code == 401
    r = http.get(path, headers={"X-API-Key": agent[1]["X-API-Key"]})
    assert r.status_code == 403
    assert "agent key" in r.json()["error"] and "user key" in r.json()["error"]


def test_the_dictionary_lists_every_catalog_event_and_the_telemetry_fields(http, user):
    d = http.get("/api/ui/dictionary", headers=user).json()
    types = {t["type"]: t for t in d["events"]}
    assert len(types) == len([ln for ln in catalog_events.SPEC.split("\n") if ln])
    assert types["job.failed"]["terminal"] and types["job.failed"]["fields"] == [
        "total_duration_s", "status", "reason"]
    assert types["job.completed"]["optional"] == ["delivery_confidence"]
    assert types["eclipse_step.started"]["enriched"]
    assert [f["key"] for f in d["telemetry"]] == ["battery_percent", "temperature_c",
                                                  "compute_capacity", "heap_free",
                                                  "outbox_depth", "mode"]


def test_telemetry_history_keeps_each_report_in_order_and_is_bounded(http, user, agent,
                                                                   monkeypatch):
    monkeypatch.setattr(telemetry_history, "KEPT_PER_AGENT", 4)
    for battery in (90, 80, 70, 60, 50, 40):
        send_telemetry(http, agent, battery)
    body = http.get("/api/ui/agents/%s/telemetry" % agent[0], headers=user).json()
    assert [s["battery_percent"] for s in body["samples"]] == [70, 60, 50, 40]
    assert body["samples"][-1]["mode"] == "normal" and body["samples"][-1]["heap_free"] == 50000
    latest = http.get("/api/agents", headers=user).json()["agents"][0]["telemetry"]
    assert latest["battery_percent"] == 40  # the latest is kept as before
    assert http.get("/api/ui/agents/nobody/telemetry", headers=user).status_code == 404


def test_a_huge_event_log_comes_a_page_at_a_time(http, user, huge):
    r = http.get("/api/ui/deployments/%s/log" % huge, headers=user,
                 params={"offset": 100, "limit": 100})
    page = r.json()
    assert page["total"] == HUGE
    assert [row["event"]["seq"] for row in page["rows"]] == list(range(101, 201))
    assert page["types"] == ["checkpoint.saved", "step.progress"] and page["steps"] == ["a", "b"]
    assert len(r.content) < 40000  # a page, not the log
    last = http.get("/api/ui/deployments/%s/log" % huge, headers=user,
                    params={"offset": HUGE - 30, "limit": 100}).json()
    assert [row["event"]["seq"] for row in last["rows"]] == list(range(HUGE - 29, HUGE + 1))
    assert http.get("/api/ui/deployments/%s/log" % huge, headers=user,
                    params={"limit": 10 ** 6}).status_code == 400


def test_the_event_log_filters_by_type_and_by_step(http, user, huge):
    url = "/api/ui/deployments/%s/log" % huge
    cps = http.get(url, headers=user, params={"type": "checkpoint.saved", "limit": 500}).json()
    assert cps["total"] == HUGE // 10
    assert {row["event"]["type"] for row in cps["rows"]} == {"checkpoint.saved"}
    b = http.get(url, headers=user, params={"type": "checkpoint.saved", "step": "b"}).json()
    assert b["total"] == HUGE // 10 and all(r["event"]["step_id"] == "b" for r in b["rows"])
    a = http.get(url, headers=user, params={"type": "checkpoint.saved", "step": "a"}).json()
    assert a["total"] == 0 and a["rows"] == []  # every tenth seq is even: step b
    none = http.get(url, headers=user, params={"step": "-"}).json()
    assert none["total"] == 0


def test_an_unknown_deployment_is_a_404_that_names_it(http, user):
    for tail in ("log", "samples", "compare", "timeline.png"):
        r = http.get("/api/ui/deployments/dep-nope/%s" % tail, headers=user)
        assert r.status_code == 404 and "dep-nope" in r.json()["error"], tail


def test_plan_versus_actual_and_the_timeline_of_a_finished_simulation(http, user, console):
    plan = http.post("/v1/plan", headers=user, json={"satellite_id": "25544", "custom_job": JOB})
    dep = http.post("/api/deployments", headers=user, json={
        "plan_id": plan.json()["id"], "mode": "simulated", "speed_multiplier": 0}).json()["id"]
    for _ in range(100):
        if deployments.get(console.db, dep)["status"] == "completed":
            break
        import time
        time.sleep(0.05)
    c = http.get("/api/ui/deployments/%s/compare" % dep, headers=user).json()
    assert c["summary"]["identical"] and c["summary"]["matched"] == len(plan.json()["events"])
    png = http.get("/api/ui/deployments/%s/timeline.png" % dep, headers=user)
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    listed = http.get("/api/ui/deployments", headers=user).json()["deployments"]
    row = [d for d in listed if d["id"] == dep][0]
    assert row["status"] == "completed" and row["job_name"] == "two steps"
    assert row["events_count"] == len(plan.json()["events"]) and row["steps_total"] == 2


def stream_messages(http, headers, want, params=None):
    """(cursor, [(name, data)]) after `want` event/telemetry messages of the feed."""
    got, cursor = [], None
    with http.stream("GET", "/api/ui/stream", headers=headers, params=params,
                     timeout=httpx.Timeout(10.0, read=10.0)) as r:
        assert r.status_code == 200, r.read()
        name, data = None, []
        for line in r.iter_lines():
            if line.startswith("id:"):
                cursor = line[3:].strip()
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                got.append((name, json.loads("\n".join(data))))
                name, data = None, []
                if sum(1 for n, _ in got if n in ("event", "telemetry")) >= want:
                    break
    return cursor, got


def test_the_feed_resumes_from_last_event_id_missing_nothing_and_sending_nothing_twice(
        http, user, agent, console):
    plan = http.post("/v1/plan", headers=user, json={"satellite_id": "25544", "custom_job": JOB})
    dep = deployments.create(console.db, plan.json(), "simulated", 0)
    origin = "sim:" + dep
    ev = lambda seq: {"type": "step.progress", "timestamp": "2008-09-20T13:00:%02dZ" % seq,
                      "job_id": "j", "step_id": "a", "seq": seq, "payload": {"percent": seq}}
    cursor, hello = stream_messages(http, user, 0)
    assert hello[0][0] == "hello"
    deployments.store_events(console.db, dep, origin, "sim", [ev(1), ev(2)])
    send_telemetry(http, agent, 33)
    cursor, first = stream_messages(http, dict(user, **{"Last-Event-ID": cursor}), 3)
    # while no one listens: more events and telemetry
    deployments.store_events(console.db, dep, origin, "sim", [ev(3), ev(4), ev(5)])
    send_telemetry(http, agent, 32)
    _, second = stream_messages(http, dict(user, **{"Last-Event-ID": cursor}), 4)
    seqs = [d["event"]["seq"] for n, d in first + second if n == "event"]
    assert seqs == [1, 2, 3, 4, 5]
    assert [d["battery_percent"] for n, d in first + second if n == "telemetry"] == [33, 32]
    assert all(d["deployment_id"] == dep for n, d in first + second if n == "event")
    # ?after= does the same for clients that cannot set headers
    _, again = stream_messages(http, user, 4, params={"after": cursor})
    assert [d["event"]["seq"] for n, d in again if n == "event"] == [3, 4, 5]


@pytest.mark.parametrize("bad", ["x", "1", "1.2.3", "-1.0", "9" * 30 + ".1"])
def test_a_malformed_stream_position_is_a_400(http, user, bad):
    r = http.get("/api/ui/stream", headers=dict(user, **{"Last-Event-ID": bad}))
    assert r.status_code == 400 and "stream position" in r.json()["error"]


def test_the_page_says_how_to_get_open_mct_when_it_is_not_installed(http, monkeypatch):
    monkeypatch.setattr(routes_ui, "OPENMCT_DIST", "/nonexistent-" + uuid.uuid4().hex)
    r = http.get("/")
    assert r.status_code == 503 and "make setup" in r.text
    assert http.get("/openapi.json").status_code == 200  # the API does not depend on it
