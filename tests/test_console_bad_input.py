"""Bad input at the Console over real HTTP: JSON nested without end, requests
that would fail while their reply is built, methods a path does not answer.
Each gets a clear 4xx ({"error", "server_time"}) and stores nothing."""
import json
import re

import httpx
import pytest

from tools.console import auth
from tools.console.api import MAX_JSON_DEPTH
from tools.console.server import serve_in_thread

POST_PATHS = ("/v1/plan", "/api/keys", "/api/satellites", "/api/deployments",
              "/api/agent/register", "/api/agent/telemetry", "/api/agent/events",
              "/api/deployments/dep-x/events")  # every POST that reads a body


@pytest.fixture(scope="module")
def console(db_target):
    srv = serve_in_thread(db_target("bad"))
    db = srv.db
    user = {"X-API-Key": auth.create_key(db, "user")["key"]}
    agent = {"X-API-Key": auth.create_key(db, "agent", "sat-1", rate_limited=False,
                                               satellite_id="25544")["key"],
             "X-Agent-ID": "sat-1"}
    with httpx.Client(base_url=srv.url, timeout=30) as http:
        assert http.post("/api/agent/register", headers=agent, json={
            "agent_id": "sat-1", "satellite_id": "25544", "agent_version": "t"}).status_code == 201
        yield srv, http, user, agent
    srv.stop()


def _post(http, path, text, headers):
    return http.post(path, content=text.encode(),
                     headers=dict(headers, **{"Content-Type": "application/json"}))


@pytest.mark.parametrize("text", ["[" * 1000 + "]" * 1000, "[" * 1000,
                                  '{"a":' * 900 + "1" + "}" * 900],
                         ids=["closed", "unclosed", "objects"])
def test_deeply_nested_json_is_a_400_on_every_post_endpoint_and_stores_nothing(console, text):
    srv, http, user, agent = console
    before = srv.db.counts()
    for path in POST_PATHS:
        headers = agent if path.startswith("/api/agent/") or path.endswith("/events") else user
        r = _post(http, path, text, headers)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])
        assert set(r.json()) == {"error", "server_time"}
    r = _post(http, "/v1/plan", text, user)
    assert r.status_code == 400 and "nested deeper than %d" % MAX_JSON_DEPTH in r.json()["error"]
    assert srv.db.counts() == before


def _plan_body(depth):
    """A /v1/plan body whose step parameter is `depth` arrays deep (built as text:
    the test's own encoder must not be what overflows)."""
    job = {"name": "deep", "steps": [{"id": "a", "compute_s": 5, "params": "PARAMS"}]}
    text = json.dumps({"satellite_id": "25544", "custom_job": job})
    return text.replace('"PARAMS"', "[" * depth + "1" + "]" * depth)


def test_a_plan_is_stored_only_when_its_id_is_returned(console):
    """A step field nested so deep that the plan could be stored and its reply not
    built: every request either answers 2xx with the stored plan's id or 400 and
    stores nothing."""
    srv, http, user, _ = console
    before = srv.db.counts()["plans"]
    returned = []
    for depth in list(range(MAX_JSON_DEPTH - 8, MAX_JSON_DEPTH + 2)) + list(range(900, 1000, 2)):
        r = _post(http, "/v1/plan", _plan_body(depth), user)
        assert r.status_code in (200, 400), (depth, r.status_code, r.text[:200])
        if r.status_code == 200:  # read without a JSON parser: the reply may nest deep
            returned.append(re.match(r'\{"id":"(plan-[0-9a-f]+)"', r.text).group(1))
    ids = [row["id"] for row in srv.db.query("SELECT id FROM plans")]
    assert len(ids) - before == len(returned) and set(returned) <= set(ids)
    assert returned  # the shallow ones were planned


@pytest.mark.parametrize("path,methods", [
    ("/v1/plan", {"POST", "OPTIONS"}),
    ("/api/satellites", {"GET", "POST", "OPTIONS"}),
    ("/api/deployments/dep-x/events", {"GET", "POST", "OPTIONS"}),
])
def test_options_and_wrong_methods_name_every_allowed_method(console, path, methods):
    _, http, user, _ = console
    r = http.request("OPTIONS", path, headers=user)
    assert r.status_code == 204
    assert set(r.headers["allow"].split(", ")) == methods
    r = http.request("PATCH", path, headers=user)
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == methods
    assert set(r.json()) == {"error", "server_time"}
    assert http.request("OPTIONS", "/nowhere").status_code == 404
