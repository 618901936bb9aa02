"""The Console fuzzed over real HTTP (a real uvicorn on 127.0.0.1): schemathesis
from its own OpenAPI document (valid and invalid bodies, parameters and headers
for every operation, each reply checked against the document) and hypothesis
raw bodies (any JSON, deep nesting, broken JSON, bytes) at every POST. No 5xx,
no schema mismatch, errors are {"error", "server_time"}, and a refused request
stores nothing. `make bench` (area console_fuzz) runs the same, longer."""
import httpx
import pytest

from tools.benches import console_fuzz
from tools.console import auth
from tools.console.server import serve_in_thread

EXAMPLES = 15      # per operation and mode: ~500 schemathesis requests
RAW_EXAMPLES = 30  # per POST endpoint: ~240 raw bodies; the whole test well under a minute


@pytest.fixture(scope="module")
def console(db_target):
    srv = serve_in_thread(db_target("fuzz"))
    yield srv
    srv.stop()


def test_fuzzed_requests_get_no_5xx_no_schema_mismatch_and_store_nothing_when_refused(console):
    tally = console_fuzz.campaign(console.url, console.db, EXAMPLES, RAW_EXAMPLES)
    assert tally.server_errors == []
    assert tally.mismatches == []
    assert tally.broken_promises == []
    # only operations without a body can lack an invalid form; every body was fuzzed negatively
    assert all(s.lower().startswith("get ") or "/cancel " in s or "/clear-safe-mode " in s
               for s in tally.skipped), tally.skipped
    assert tally.requests > 400
    assert 0 < tally.rejected < tally.requests


def _request_schema(console, path):
    doc = httpx.get(console.url + "/openapi.json").json()
    return doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


@pytest.mark.parametrize("path,body", [
    ("/api/keys", {"kind": "agent", "agent_id": None}),
    ("/api/keys", {"kind": "agent", "agent_id": "sim"}),
    ("/api/keys", {"kind": "user", "uplink": True}),
    ("/v1/plan", {"satellite_id": "25544", "custom_job": {}}),
    ("/v1/plan", {"satellite_id": "25544", "custom_job": {"steps": []}}),
    ("/api/satellites", {"satellite_id": "s-1", "name": "s", "tle": None, "elements": None}),
    ("/api/satellites", {"satellite_id": "s-1", "name": "s"}),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bodies_the_server_refuses_are_invalid_by_its_openapi_document(console, path, body):
    import jsonschema_rs
    validator = jsonschema_rs.validator_for(_request_schema(console, path))
    assert not validator.is_valid(body)
    user = {"X-API-Key": auth.create_key(console.db, "user")["key"]}
    before = console.db.counts()
    r = httpx.post(console.url + path, json=body, headers=user)
    assert r.status_code == 400 and set(r.json()) == {"error", "server_time"}
    assert console.db.counts() == before


@pytest.mark.parametrize("path,body", [
    ("/api/keys", {"agent_id": "sat-25544"}),
    ("/api/keys", {"agent_id": "ok", "satellite_id": "25544"}),
    ("/api/keys", {"kind": "user"}),
    ("/v1/plan", {"satellite_id": "25544", "custom_job": {
        "name": "ok", "steps": [{"id": "a", "compute_s": 10}]}}),
    ("/api/satellites", {"satellite_id": "kep-ok", "name": "k",
                         "elements": {"altitude_km": 550, "inclination_deg": 53}}),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bodies_the_server_accepts_are_valid_by_its_openapi_document(console, path, body):
    import jsonschema_rs
    assert jsonschema_rs.validator_for(_request_schema(console, path)).is_valid(body)
    user = {"X-API-Key": auth.create_key(console.db, "user")["key"]}
    r = httpx.post(console.url + path, json=body, headers=user)
    assert r.status_code in (200, 201), r.text
