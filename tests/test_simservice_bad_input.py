"""Bad input to the Simulation Service (a real server on 127.0.0.1): an
unknown session is 404; malformed elements or TLEs, times out of range,
loads for satellites the session lacks, fleets over the maximum are 400 and
the error names the field; a refused request stores nothing."""
import json
import os

import httpx
import pytest

from tools import ROOT
from tools.simservice import schemas
from tools.simservice.server import serve_in_thread

ELEMENTS = {"altitude_km": 550, "inclination_deg": 51.6, "epoch": "2026-03-08T00:00:00Z"}
NOW = "2026-03-08T01:00:00Z"
TLE = open(os.path.join(ROOT, "tests", "data", "iss-2018-07-03.tle")).read()
TLE_LINES = [ln for ln in TLE.splitlines() if ln.startswith(("1 ", "2 "))]
FLEET = json.load(open(os.path.join(ROOT, "examples", "fleets", "train-4.json")))


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    srv = serve_in_thread(str(tmp_path_factory.mktemp("simbad") / "sim.db"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def session(service):
    r = httpx.post(service.url + "/v1/sessions", json={
        "fleet": FLEET["fleet"], "epoch": FLEET["epoch"], "start": "2026-03-08T00:00:00Z"})
    assert r.status_code == 201, r.text
    return r.json()["session_id"]


def _refused(service, method, path, body, status=400):
    db = service.service.db
    before = db.digest()
    r = httpx.request(method, service.url + path, json=body)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error", "server_time"}
    assert db.digest() == before
    return r.json()["error"]


def _bad_tle():
    line2 = TLE_LINES[1]
    return [TLE_LINES[0], line2[:-1] + str((int(line2[-1]) + 1) % 10)]


STATE_CASES = [
    ({"elements": dict(ELEMENTS, inclination_deg=200), "timestamp": NOW}, "elements.inclination_deg"),
    ({"elements": dict(ELEMENTS, eccentricity=1.5), "timestamp": NOW}, "elements.eccentricity"),
    ({"elements": dict(ELEMENTS, eccentricity=0.5), "timestamp": NOW}, "elements: perigee"),
    ({"elements": dict(ELEMENTS, altitude_km="550"), "timestamp": NOW}, "elements.altitude_km"),
    ({"elements": dict(ELEMENTS, mean_motion=3.0), "timestamp": NOW}, "elements.mean_motion"),
    ({"elements": dict(ELEMENTS, epoch="yesterday"), "timestamp": NOW}, "elements.epoch"),
    ({"elements": {"altitude_km": 550, "inclination_deg": 51.6}, "timestamp": NOW}, "elements.epoch"),
    ({"elements": ELEMENTS, "timestamp": "2026-02-30T00:00:00Z"}, "timestamp: no such date"),
    ({"elements": ELEMENTS, "timestamp": "2026-03-08 at noon, UTC"}, "timestamp: not an ISO 8601"),
    ({"elements": ELEMENTS, "timestamp": "2150-01-01T00:00:00Z"}, "timestamp: '2150"),
    ({"elements": ELEMENTS, "timestamp": "2045-01-01T00:00:00Z"}, "timestamp: more than 3660 days"),
    ({"elements": ELEMENTS}, "timestamp"),
    ({"timestamp": NOW}, "elements: give exactly one of elements or tle"),
    ({"elements": ELEMENTS, "tle": TLE, "timestamp": NOW}, "elements: give exactly one"),
    ({"tle": _bad_tle(), "timestamp": "2018-07-03T12:00:00Z"}, "tle: TLE line 2: checksum"),
    ({"tle": "not a tle", "timestamp": NOW}, "tle: no TLE found"),
]


@pytest.mark.parametrize("body,named", STATE_CASES, ids=[c[1] for c in STATE_CASES])
def test_a_bad_state_request_is_400_naming_the_field(service, body, named):
    assert _refused(service, "POST", "/v1/state", body).startswith(named)


def _fleet(n):
    return [{"satellite_id": "s%d" % i, "orbit": dict(ELEMENTS, mean_anomaly_deg=i)}
            for i in range(n)]


SESSION_CASES = [
    ({"start": NOW}, "fleet: give exactly one of satellite or fleet"),
    ({"fleet": _fleet(schemas.MAX_FLEET + 1), "start": NOW}, "fleet: List should have at most %d"
     % schemas.MAX_FLEET),
    ({"fleet": [], "start": NOW}, "fleet: List should have at least 1"),
    ({"fleet": _fleet(2) + [{"satellite_id": "s1", "orbit": ELEMENTS}], "start": NOW},
     "fleet[2].satellite_id: 's1' appears twice"),
    ({"fleet": [{"satellite_id": "a"}], "start": NOW}, "fleet[0].orbit: give exactly one of orbit or tle"),
    ({"fleet": [{"satellite_id": "a", "orbit": dict(ELEMENTS, inclination_deg=-1)}], "start": NOW},
     "fleet.0.orbit.inclination_deg"),
    ({"fleet": [{"satellite_id": "a", "orbit": ELEMENTS, "bus": {"battery_whh": 5}}], "start": NOW},
     "fleet[0].bus: unknown bus parameter 'battery_whh'"),
    ({"satellite": {"satellite_id": "a", "tle": _bad_tle()}, "start": NOW}, "satellite.tle: TLE line 2"),
    ({"satellite": {"satellite_id": "a", "orbit": ELEMENTS}, "start": "2040-01-01T00:00:00Z"},
     "start: more than 3660 days"),
    ({"satellite": {"satellite_id": "a", "orbit": ELEMENTS}, "start": "2026-13-01T00:00:00Z"},
     "start: not an ISO 8601"),
    ({"satellite": {"satellite_id": "a b", "orbit": ELEMENTS}, "start": NOW}, "satellite.satellite_id"),
    ({"satellite": {"satellite_id": "a", "orbit": ELEMENTS}, "start": NOW, "bus": {"initial_soc": 2}},
     "bus: initial_soc"),
]


@pytest.mark.parametrize("body,named", SESSION_CASES, ids=[c[1][:40] for c in SESSION_CASES])
def test_a_bad_session_is_400_naming_the_field_and_creates_nothing(service, body, named):
    assert _refused(service, "POST", "/v1/sessions", body).startswith(named)


STEP_CASES = [
    ({}, "until: give exactly one of until or seconds"),
    ({"until": "2026-03-08T02:00:00Z", "seconds": 5}, "until: give exactly one"),
    ({"until": "2026-03-07T23:00:00Z"}, "until: 2026-03-07T23:00:00Z is not after"),
    ({"until": "2026-03-20T00:00:00Z"}, "until: more than %d s after" % schemas.MAX_STEP_S),
    ({"seconds": 0}, "seconds: Input should be greater than 0"),
    ({"seconds": schemas.MAX_STEP_S + 1}, "seconds: Input should be less than or equal"),
    ({"seconds": 60, "loads": {"nope": {"power_w": 5}}}, "loads.nope: no satellite 'nope'"),
    ({"seconds": 60, "loads": {"99901": {"power_w": 5}, "nope": {"power_w": 5}}}, "loads.nope"),
    ({"seconds": 60, "loads": {"99901": {"power_w": -5}}}, "loads.99901.power_w"),
    ({"seconds": 60, "loads": {"99901": {"memory_mb": 5}}}, "loads.99901.power_w: Field required"),
]


@pytest.mark.parametrize("body,named", STEP_CASES, ids=[c[1][:40] for c in STEP_CASES])
def test_a_bad_step_is_400_naming_the_field_and_leaves_the_session_as_it_was(service, session,
                                                                           body, named):
    before = httpx.get(service.url + "/v1/sessions/%s/state" % session).json()
    assert _refused(service, "POST", "/v1/sessions/%s/step" % session, body).startswith(named)
    after = httpx.get(service.url + "/v1/sessions/%s/state" % session).json()
    before.pop("server_time"), after.pop("server_time")
    assert after == before


CONSTELLATION_CASES = [
    ({"states": {"nope": {}}}, "states.nope: no satellite 'nope'"),
    ({"states": {"99901": {"assigned_steps": {"a": "Running"}}}}, "states.99901.assigned_steps.a"),
    ({"states": {"99901": {"completed_steps": "a"}}}, "states.99901.completed_steps"),
    ({}, "states: Field required"),
]


@pytest.mark.parametrize("body,named", CONSTELLATION_CASES, ids=[c[1][:40] for c in CONSTELLATION_CASES])
def test_a_bad_constellation_document_is_400_and_keeps_the_stored_one(service, session, body, named):
    good = {"states": {"99902": {"completed_steps": ["x"]}}}
    assert httpx.put(service.url + "/v1/sessions/%s/constellation" % session, json=good).status_code == 200
    assert _refused(service, "PUT", "/v1/sessions/%s/constellation" % session, body).startswith(named)
    got = httpx.get(service.url + "/v1/sessions/%s/constellation" % session).json()
    assert list(got["states"]) == ["99902"]


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/v1/sessions/sim-nope/state", None),
    ("POST", "/v1/sessions/sim-nope/step", {"seconds": 60}),
    ("PUT", "/v1/sessions/sim-nope/constellation", {"states": {}}),
    ("GET", "/v1/sessions/sim-nope/constellation", None),
    ("DELETE", "/v1/sessions/sim-nope", None),
])
def test_an_unknown_session_is_404(service, method, path, body):
    assert _refused(service, method, path, body, 404) == "no session 'sim-nope'"


def test_no_more_sessions_than_the_maximum(service, monkeypatch):
    monkeypatch.setattr(schemas, "MAX_SESSIONS", len(httpx.get(service.url + "/v1/sessions")
                                                     .json()["sessions"]))
    body = {"satellite": {"satellite_id": "a", "orbit": ELEMENTS}, "start": NOW}
    assert "its maximum" in _refused(service, "POST", "/v1/sessions", body, 409)


@pytest.mark.parametrize("raw", [b"", b"{", b"[1, 2]", b'{"elements": NaN}', b"\xff\xfe", b"[" * 5000])
def test_a_body_that_is_not_a_json_object_is_400(service, raw):
    db = service.service.db
    before = db.digest()
    r = httpx.post(service.url + "/v1/state", content=raw,
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and set(r.json()) == {"error", "server_time"}
    assert db.digest() == before


def test_a_body_over_the_limit_is_413(service):
    r = httpx.post(service.url + "/v1/sessions", content=b" " * (300 * 1024),
                   headers={"content-type": "application/json"})
    assert r.status_code == 413
