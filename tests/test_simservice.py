"""The Simulation Service (tools/simservice, `umbra sim serve`) against a real
uvicorn server on 127.0.0.1: the reference agent's `--sim-url` request, the
stateless state agreeing with `umbra sim windows`, sessions of a satellite
and of a fleet, and a session that survives the service being killed
(SIGKILL) and started again on its database (docs/simservice.md)."""
import json
import math
import os
import subprocess
import sys

import httpx
import pytest

from tools import ROOT
from tools.simservice.server import SimServiceProcess, serve_in_thread
import orbit as orbitlib
import orbitio
import timeutil

FLEET_FILE = os.path.join(ROOT, "examples", "fleets", "train-4.json")
ISS_TLE = os.path.join(ROOT, "tests", "data", "iss-2018-07-03.tle")

# What rotastellar-agent 0.1.0 sends from `run --sim-url URL --orbital-elements
# JSON`: reqwest's POST {sim_url}/v1/state, the body serde_json writes for its
# StateRequest (every OrbitalElements field, defaults filled, floats as f64;
# the timestamp chrono's to_rfc3339 of Utc::now(), nanoseconds and +00:00),
# and its headers.
REFERENCE_BODY = (b'{"elements":{"altitude_km":550.0,"inclination_deg":51.6,"eccentricity":0.0001,'
                  b'"raan_deg":0.0,"arg_perigee_deg":90.0,"mean_anomaly_deg":180.0,'
                  b'"mean_motion":15.09,"epoch":"2026-03-08T00:00:00Z"},'
                  b'"timestamp":"2026-12-02T00:57:01.123456789+00:00"}')
REFERENCE_HEADERS = {"user-agent": "rotastellar-agent/0.1.0", "content-type": "application/json",
                     "accept": "*/*"}
# OrbitalState, as the reference agent's serde reads it: these fields, these types
REFERENCE_REPLY = {"lat": float, "lon": float, "altitude_km": float, "velocity_km_s": float,
                   "in_eclipse": bool, "orbit_fraction": float}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    srv = serve_in_thread(str(tmp_path_factory.mktemp("simsvc") / "sim.db"))
    yield srv
    srv.stop()


def _as_reference_reads_it(reply):
    """The reply parsed as the reference agent's serde does (numbers -> f64)."""
    out = {}
    for key, kind in REFERENCE_REPLY.items():
        value = reply[key]
        if kind is float:
            assert isinstance(value, (int, float)) and not isinstance(value, bool), key
            out[key] = float(value)
        else:
            assert isinstance(value, bool), key
            out[key] = value
    return out


@pytest.mark.parametrize("sim_url_suffix", ["", "/"])
def test_the_reference_agents_sim_url_request_gets_its_orbital_state(service, sim_url_suffix):
    sim_url = service.url + sim_url_suffix                  # --sim-url, with or without a slash
    r = httpx.post("%s/v1/state" % sim_url, content=REFERENCE_BODY, headers=REFERENCE_HEADERS)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    state = _as_reference_reads_it(r.json())
    # the state our own models give for those elements at that time
    el = orbitio.keplerian_elements({"altitude_km": 550, "inclination_deg": 51.6,
                                     "eccentricity": 0.0001, "arg_perigee_deg": 90,
                                     "mean_anomaly_deg": 180, "epoch": "2026-03-08T00:00:00Z"})
    el["mean_motion_rev_day"] = 15.09
    orb = orbitlib.Orbit(el)
    t = timeutil.parse_iso("2026-12-02T00:57:01Z") + 0.123
    lat, lon, alt = orb.subpoint(t)
    assert (state["lat"], state["lon"], state["altitude_km"]) == pytest.approx((lat, lon, alt))
    assert state["in_eclipse"] == orbitio.in_eclipse(orb, t)
    assert 7.5 < state["velocity_km_s"] < 7.7           # LEO at 550 km
    assert 0 <= state["orbit_fraction"] < 1


def test_elements_left_out_take_the_reference_agents_defaults(service):
    full = {"altitude_km": 550, "inclination_deg": 97.6, "eccentricity": 0.0001, "raan_deg": 0,
            "arg_perigee_deg": 90, "mean_anomaly_deg": 0, "mean_motion": 0,
            "epoch": "2026-03-08T00:00:00Z"}
    bare = {"altitude_km": 550, "inclination_deg": 97.6, "epoch": "2026-03-08T00:00:00Z"}
    other = dict(full, arg_perigee_deg=0)
    replies = [httpx.post(service.url + "/v1/state",
                          json={"elements": el, "timestamp": "2026-03-08T05:00:00Z"}).json()
               for el in (full, bare, other)]
    keys = list(REFERENCE_REPLY)
    assert [replies[0][k] for k in keys] == [replies[1][k] for k in keys]
    assert replies[2]["lat"] != pytest.approx(replies[0]["lat"])   # the default is not 0


def test_a_tle_instead_of_elements(service):
    lines = [ln for ln in open(ISS_TLE).read().splitlines() if ln.startswith(("1 ", "2 "))]
    el = orbitio.read_tle_text(open(ISS_TLE).read())
    when = timeutil.iso_utc(int(el["epoch"]) + 3600)
    by_lines = httpx.post(service.url + "/v1/state", json={"tle": lines, "timestamp": when})
    by_text = httpx.post(service.url + "/v1/state",
                         json={"tle": open(ISS_TLE).read(), "timestamp": when})
    assert by_lines.status_code == by_text.status_code == 200, by_lines.text
    lat, lon, alt = orbitlib.Orbit(el).subpoint(int(el["epoch"]) + 3600)
    assert by_lines.json()["lat"] == pytest.approx(lat) == by_text.json()["lat"]
    assert 390 < by_lines.json()["altitude_km"] < 430


def _windows(args):
    out = subprocess.run([sys.executable, "-m", "tools.cli", "sim", "windows", "--satellite", "X",
                          "--hours", "24", "--json"] + args,
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    doc = json.loads(out.stdout)
    return ([(timeutil.parse_iso(w["start"]), timeutil.parse_iso(w["end"]))
             for w in doc["windows"] if w["kind"] == "eclipse"],
            timeutil.parse_iso(doc["prediction_start"]))


@pytest.mark.parametrize("source", ["elements", "tle"])
def test_state_agrees_with_umbra_sim_windows_on_eclipse_at_sampled_times(service, source):
    """Every 5 minutes of a day, and 20 s either side of every eclipse boundary."""
    if source == "elements":
        # every element given: `umbra sim windows` defaults missing ones to 0
        elements = {"altitude_km": 550, "inclination_deg": 51.6, "raan_deg": 40,
                    "eccentricity": 0.0001, "arg_perigee_deg": 90, "mean_anomaly_deg": 10,
                    "epoch": "2026-03-08T00:00:00Z"}
        eclipses, t0 = _windows(["--elements", json.dumps(elements)])
        request = {"elements": elements}
    else:
        eclipses, t0 = _windows(["--tle", ISS_TLE])
        request = {"tle": open(ISS_TLE).read()}
    assert len(eclipses) >= 14
    samples = [t0 + 300 * i for i in range(288)]
    for a, b in eclipses:
        samples += [a - 20, a + 20, b - 20, b + 20]
    seen = {True: 0, False: 0}
    with httpx.Client(base_url=service.url) as http:
        for t in samples:
            # window times are printed to the second: too close to call within 2 s
            if t < t0 or t > t0 + 86400 or any(abs(t - x) < 2 for w in eclipses for x in w):
                continue
            expected = any(a <= t < b for a, b in eclipses)
            r = http.post("/v1/state", json=dict(request, timestamp=timeutil.iso_utc(int(t))))
            assert r.status_code == 200, r.text
            assert r.json()["in_eclipse"] == expected, timeutil.iso_utc(int(t))
            seen[expected] += 1
    assert seen[True] > 80 and seen[False] > 150


# ---------------------------------------------------------------- sessions

def _fleet_request(start="2026-03-08T00:00:00Z"):
    doc = json.load(open(FLEET_FILE))
    return {"fleet": doc["fleet"], "epoch": doc["epoch"], "start": start,
            "bus": {"initial_soc": 0.5}}


def test_a_satellite_session_steps_its_battery_thermal_memory_and_cpu(service):
    tle = open(ISS_TLE).read()
    el = orbitio.read_tle_text(tle)
    start = timeutil.iso_utc(int(el["epoch"]))
    r = httpx.post(service.url + "/v1/sessions",
                   json={"satellite": {"satellite_id": "25544", "tle": tle}, "start": start})
    assert r.status_code == 201, r.text
    sid = r.json()["session_id"]
    s0 = r.json()["satellites"][0]
    assert (s0["battery_percent"], s0["temperature_c"], s0["cpu_percent"]) == (80.0, 20.0, 5.0)
    r = httpx.post(service.url + "/v1/sessions/%s/step" % sid,
                   json={"seconds": 1800, "loads": {"25544": {"power_w": 25, "memory_mb": 200}}})
    assert r.status_code == 200, r.text
    s1 = r.json()["satellites"][0]
    assert s1["memory_mb"] == 64 + 200 and s1["cpu_percent"] == 100.0
    assert s1["load"] == {"power_w": 25, "memory_mb": 200}
    assert r.json()["isl_links"] == [] and r.json()["steps"] == 1
    # the same physics as the world model's own satellite over the same half hour
    import world as worldlib
    t0 = int(el["epoch"])
    w = worldlib.World(t0, 3600)
    sat = w.add_satellite("25544", el)
    sat.set_compute_load(25, 200)
    sat.advance_to(t0 + 1800)
    expect = worldlib.state_of(sat)
    for key in ("battery_wh", "temperature_c", "in_eclipse", "lat", "lon", "compute_capacity"):
        assert s1[key] == pytest.approx(expect[key]), key
    # the load stays in force: the next step heats on
    r = httpx.post(service.url + "/v1/sessions/%s/step" % sid, json={"seconds": 60})
    assert r.json()["satellites"][0]["load"]["power_w"] == 25
    got = httpx.get(service.url + "/v1/sessions/%s/state" % sid).json()
    assert got["time"] == timeutil.iso_utc(t0 + 1860, 0)
    assert httpx.delete(service.url + "/v1/sessions/%s" % sid).status_code == 200
    assert httpx.get(service.url + "/v1/sessions/%s/state" % sid).status_code == 404


def test_a_fleet_session_reports_the_isl_link_graph_with_line_of_sight(service):
    r = httpx.post(service.url + "/v1/sessions", json=_fleet_request())
    assert r.status_code == 201, r.text
    state = r.json()
    assert [s["satellite_id"] for s in state["satellites"]] == ["99901", "99902", "99903", "99904"]
    assert state["satellites"][3]["role"] == "aggregator"
    pairs = {(link["from"], link["to"]) for link in state["isl_links"]}
    # 30 degrees apart in one plane: neighbours ~3600 km (linked), the rest beyond range
    assert pairs == {("99901", "99902"), ("99902", "99903"), ("99903", "99904")}
    for link in state["isl_links"]:
        assert 3000 < link["distance_km"] < 4000
        assert link["bandwidth_mbps"] == pytest.approx(100 * link["quality"])
    httpx.delete(service.url + "/v1/sessions/" + state["session_id"])


def test_link_graph_drops_a_pair_in_range_that_the_earth_hides():
    """Two satellites at 400 km, 38 degrees apart: 4,413 km (within ISL range),
    but the line between them passes 31 km above the ground, under the 100 km
    MODELS.md asks. 24 degrees apart they see each other."""
    from tools.simservice import links
    r = 6378.137 + 400

    def at(deg):
        return (r * math.cos(math.radians(deg)), r * math.sin(math.radians(deg)), 0.0)

    assert math.dist(at(0), at(38)) < 5000
    assert links.link_graph([("a", at(0), False), ("b", at(38), False)]) == []
    (link,) = links.link_graph([("a", at(0), False), ("c", at(24), True)])
    assert (link["from"], link["to"]) == ("a", "c")
    assert link["quality"] == pytest.approx((1 - math.dist(at(0), at(24)) / 5000 * 0.6) * 0.9)


# ---------------------------------------------------------------- surviving a restart

STEPS = ([{"seconds": 3600, "loads": {"99901": {"power_w": 30, "memory_mb": 300},
                                       "99904": {"power_w": 12, "memory_mb": 50}}}]
         + [{"seconds": 600} for _ in range(8)]
         + [{"until": "2026-03-08T03:07:30Z", "loads": {"99902": {"power_w": 40, "memory_mb": 10}}}]
         + [{"seconds": 900, "loads": {"99901": {"power_w": 0, "memory_mb": 0}}}]
         + [{"seconds": 1234.5} for _ in range(6)])
CONSTELLATION = {"states": {"99901": {"assigned_steps": {"capture_a": "Completed",
                                                         "infer_a": {"state": "Executing", "epoch": 2}},
                                      "completed_steps": ["capture_a"]},
                            "99904": {"assigned_steps": {"aggregate": "Pending"}}}}


# a satellite session over days, restarted past the first window chunks (a day each)
# at a time off the search's 60 s sample grid
LONG_STEPS = ([{"seconds": 2.5 * 86400, "loads": {"25544": {"power_w": 6, "memory_mb": 100}}},
               {"seconds": 3617.25, "loads": {"25544": {"power_w": 30, "memory_mb": 100}}}]
              + [{"seconds": 86400 + 17}, {"seconds": 5000, "loads": {"25544": {"power_w": 0}}},
                 {"seconds": 40000}])


def _satellite_request():
    el = orbitio.read_tle_text(open(ISS_TLE).read())
    return {"satellite": {"satellite_id": "25544", "tle": open(ISS_TLE).read()},
            "start": timeutil.iso_utc(int(el["epoch"]))}


def _comparable(state):
    return {k: v for k, v in state.items() if k not in ("session_id", "created_at", "server_time")}


def test_a_session_killed_and_restarted_on_its_database_resumes_as_if_uninterrupted(tmp_path):
    half = len(STEPS) // 2
    with SimServiceProcess(str(tmp_path / "straight.db")) as svc:
        sid = httpx.post(svc.url + "/v1/sessions", json=_fleet_request()).json()["session_id"]
        for step in STEPS:
            assert httpx.post(svc.url + "/v1/sessions/%s/step" % sid, json=step).status_code == 200
        straight = httpx.get(svc.url + "/v1/sessions/%s/state" % sid).json()
        one = httpx.post(svc.url + "/v1/sessions", json=_satellite_request()).json()["session_id"]
        for step in LONG_STEPS:
            assert httpx.post(svc.url + "/v1/sessions/%s/step" % one, json=step).status_code == 200
        straight_one = httpx.get(svc.url + "/v1/sessions/%s/state" % one).json()

    db = str(tmp_path / "killed.db")
    svc = SimServiceProcess(db)
    try:
        sid = httpx.post(svc.url + "/v1/sessions", json=_fleet_request()).json()["session_id"]
        for step in STEPS[:half]:
            assert httpx.post(svc.url + "/v1/sessions/%s/step" % sid, json=step).status_code == 200
        before = httpx.get(svc.url + "/v1/sessions/%s/state" % sid).json()
        assert httpx.put(svc.url + "/v1/sessions/%s/constellation" % sid,
                         json=CONSTELLATION).status_code == 200
        one = httpx.post(svc.url + "/v1/sessions", json=_satellite_request()).json()["session_id"]
        for step in LONG_STEPS[:2]:
            assert httpx.post(svc.url + "/v1/sessions/%s/step" % one, json=step).status_code == 200
        svc.kill()
        svc = SimServiceProcess(db, port=svc.port)
        after = httpx.get(svc.url + "/v1/sessions/%s/state" % sid).json()
        assert _comparable(after) == _comparable(before)
        got = httpx.get(svc.url + "/v1/sessions/%s/constellation" % sid).json()
        assert got["states"]["99901"]["assigned_steps"]["infer_a"] == {"state": "Executing",
                                                                       "epoch": 2}
        assert set(got["states"]) == {"99901", "99904"}
        for step in STEPS[half:]:
            assert httpx.post(svc.url + "/v1/sessions/%s/step" % sid, json=step).status_code == 200
        resumed = httpx.get(svc.url + "/v1/sessions/%s/state" % sid).json()
        for step in LONG_STEPS[2:]:
            assert httpx.post(svc.url + "/v1/sessions/%s/step" % one, json=step).status_code == 200
        resumed_one = httpx.get(svc.url + "/v1/sessions/%s/state" % one).json()
    finally:
        svc.stop()
    assert resumed["steps"] == len(STEPS)
    assert _comparable(resumed) == _comparable(straight)
    assert _comparable(resumed_one) == _comparable(straight_one)
    assert resumed_one["steps"] == len(LONG_STEPS)
    # and the run went somewhere: loads heated and drained the satellites
    assert resumed["satellites"][1]["battery_percent"] != before["satellites"][1]["battery_percent"]


def test_umbra_sim_serve_refuses_a_port_in_use_in_one_line(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "tools.cli", "sim", "serve", "--db",
                              str(tmp_path / "x.db"), "--port", str(port)],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("Error: cannot listen on 127.0.0.1:%d" % port)
    assert len(out.stderr.strip().splitlines()) == 1
