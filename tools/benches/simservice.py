"""The Simulation Service (tools/simservice), measured over real HTTP (the
service is `umbra sim serve` in a process of its own, so the client's load
generator does not share its interpreter):

- `POST /v1/state` (the reference agent's request): requests/s, sequential on
  one keep-alive connection, and the latency p50/p99;
- a 20-satellite session stepped through 24 h in one-minute steps (1,440
  `POST .../step`, each replying with every satellite's state and the ISL
  link graph): wall time, and per step.

`campaign()` is the fuzz shared with tests/test_simservice_fuzz.py: the
Console's (tools/benches/console_fuzz.py) pointed at the service, with the
service's own rule for which refusals of valid requests are expected.
"""
import re
import statistics
import tempfile
import time

from tools.benches import console_fuzz

STATE_BODY = (b'{"elements":{"altitude_km":550.0,"inclination_deg":51.6,"eccentricity":0.0001,'
              b'"raan_deg":0.0,"arg_perigee_deg":90.0,"mean_anomaly_deg":0.0,"mean_motion":15.09,'
              b'"epoch":"2026-03-08T00:00:00Z"},"timestamp":"%s"}')
STATE_REQUESTS = 3000
DAY_STEPS = 1440
FLEET_SIZE = 20


def fleet(n, epoch="2026-03-08T00:00:00Z"):
    """n satellites in two inclinations and spread planes (the sim bench's fleet)."""
    return [{"satellite_id": "s%d" % k, "orbit": {
        "altitude_km": 500 + 10 * (k % 5), "inclination_deg": (51.6, 97.6)[k % 2],
        "raan_deg": 18 * k % 360, "mean_anomaly_deg": 37 * k % 360, "epoch": epoch}} for k in range(n)]


def measure_state(http, n=STATE_REQUESTS):
    lat = []
    for i in range(50):   # warm-up
        http.post("/v1/state", content=STATE_BODY % b"2026-03-08T01:00:00Z",
                  headers={"content-type": "application/json"})
    t0 = time.perf_counter()
    for i in range(n):
        stamp = ("2026-03-08T%02d:%02d:%02d.123456789+00:00" % (i // 3600 % 24, i // 60 % 60, i % 60))
        t = time.perf_counter()
        r = http.post("/v1/state", content=STATE_BODY % stamp.encode(),
                      headers={"content-type": "application/json",
                               "user-agent": "rotastellar-agent/0.1.0"})
        lat.append(time.perf_counter() - t)
        if r.status_code != 200:
            raise RuntimeError("POST /v1/state -> %d %s" % (r.status_code, r.text[:200]))
    wall = time.perf_counter() - t0
    lat.sort()
    return n / wall, statistics.median(lat) * 1000, lat[int(0.99 * len(lat)) - 1] * 1000


def measure_day(http, n=FLEET_SIZE, steps=DAY_STEPS):
    t0 = time.perf_counter()
    r = http.post("/v1/sessions", json={"fleet": fleet(n), "start": "2026-03-08T00:00:00Z"})
    if r.status_code != 201:
        raise RuntimeError("POST /v1/sessions -> %d %s" % (r.status_code, r.text[:200]))
    sid = r.json()["session_id"]
    created = time.perf_counter() - t0
    loads = {"s%d" % k: {"power_w": 20.0, "memory_mb": 100.0} for k in range(0, n, 2)}
    links = 0
    t1 = time.perf_counter()
    for i in range(steps):
        r = http.post("/v1/sessions/%s/step" % sid,
                      json={"seconds": 60, "loads": loads} if i == 0 else {"seconds": 60})
        if r.status_code != 200:
            raise RuntimeError("step %d -> %d %s" % (i, r.status_code, r.text[:200]))
        links += len(r.json()["isl_links"])
    wall = time.perf_counter() - t1
    http.delete("/v1/sessions/" + sid)
    return created, wall, links / steps


def run():
    import httpx

    from tools.simservice.server import SimServiceProcess
    with tempfile.TemporaryDirectory() as tmp:
        with SimServiceProcess(tmp + "/sim.db") as svc:
            with httpx.Client(base_url=svc.url, timeout=60) as http:
                rate, p50, p99 = measure_state(http)
                created, wall, mean_links = measure_day(http)
    return [
        {"name": "POST /v1/state, the reference agent's request, sequential", "value": round(rate),
         "unit": "requests/s"},
        {"name": "  latency, median / p99", "value": "%.2f / %.2f" % (p50, p99), "unit": "ms"},
        {"name": "%d-satellite session created (a day of windows each)" % FLEET_SIZE,
         "value": round(created, 2), "unit": "s"},
        {"name": "%d-satellite session, 24 h in 1-min steps: wall" % FLEET_SIZE, "value": round(wall, 1), "unit": "s"},
        {"name": "  per step (all states + the ISL graph in the reply)",
         "value": round(wall / DAY_STEPS * 1000, 2), "unit": "ms"},
        {"name": "  ISL links up per step, mean", "value": round(mean_links, 1), "unit": "links"},
    ]


# ---------------------------------------------------------------- fuzz

# Refusals of a valid request (by the schema) that the service owes no
# apology for: an unknown session (404), the session maximum (409), and the
# rules JSON Schema cannot state, each a 400 naming its field with a reason
# (not a shape error): an orbit under the ground, a TLE checksum, a time far
# from the epoch or before the session's, exactly one of two fields...
SHAPE_ERRORS = re.compile(r"(Input should|Field required|String should|List should|"
                          r"Dictionary should|Extra inputs|Value error)")
FIELD_REASON = re.compile(r"^[A-Za-z_][\w.\[\]-]*: ")


def _refused(operation, mode, response):
    status = response.status_code
    if not mode.is_positive or status < 400 or status >= 500 or status in (404, 409):
        return None
    if status == 400:
        try:
            err = response.json().get("error", "")
        except ValueError:
            err = ""
        if FIELD_REASON.match(err) and not SHAPE_ERRORS.search(err):
            return None
    return "valid data refused: %d %s" % (status, response.text[:160])


class _Stored:
    """What a refused request must leave unchanged: every stored row."""

    def __init__(self, db):
        self.db = db

    def counts(self):
        return self.db.digest()


def campaign(url, db, examples=10, raw_examples=20, seed=None):
    """Schemathesis (every operation, valid and invalid) and raw bodies (every
    POST) against the service at url on db; returns console_fuzz's Tally."""
    import httpx
    tally = console_fuzz.Tally()
    doc = fleet(3)
    r = httpx.post(url + "/v1/sessions", json={"fleet": doc, "start": "2026-03-08T00:00:00Z"})
    sid = r.json()["session_id"]
    stored = _Stored(db)
    console_fuzz.schemathesis_campaign(url, stored, tally, examples, seed, {}, {},
                                       {"session_id": sid}, refused=_refused)
    r = httpx.post(url + "/v1/sessions", json={"fleet": doc, "start": "2026-03-08T00:00:00Z"})
    sid = r.json()["session_id"]
    console_fuzz.raw_body_campaign(url, stored, tally, raw_examples, seed, {}, {}, "",
                                   paths=("/v1/state", "/v1/sessions",
                                          "/v1/sessions/%s/step" % sid))
    return tally
