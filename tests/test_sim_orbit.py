"""sim/orbit.py and sim/orbitscan.py: TLE/elements input, propagation, and the windows found —
checked against sgp4 + skyfield for three real TLEs, and between MicroPython
and CPython."""
import datetime
import json
import os

import pytest

import tools
import models
import orbit
import orbitio
import orbitscan
import stations

DATA = os.path.join(tools.ROOT, "tests", "data")
TLES = ("iss-2018-07-03.tle", "leo58-06251-2006-06-25.tle", "sso-28057-2006-06-26.tle")
TOLERANCE_S = 30.0
MARGINAL_DEG = 0.5     # passes whose peak is within this of the threshold may be in one list only


def _tle(name):
    with open(os.path.join(DATA, name)) as f:
        return f.read()


def _tle_lines(name):
    return [ln for ln in _tle(name).splitlines() if ln[:2] in ("1 ", "2 ")]


# --- input -------------------------------------------------------------------------

def test_tle_with_a_corrupted_digit_is_rejected_by_its_checksum(portable):
    res = portable("""
        import orbitio, tle
        l1 = '1 25544U 98067A   18184.80969102  .00001614  00000-0  31745-4 0  9993'
        l2 = '2 25544  51.6414 295.8524 0003435 262.6267 204.2868 15.54005638121106'
        el = tle.parse_tle(l1, l2)
        print('ok', el['norad_id'], el['inclination_deg'], orbitio.iso(el['epoch']))
        try:
            tle.parse_tle(l1, l2.replace('51.6414', '51.6415'))
        except ValueError as e:
            print('rejected:', e)
        try:
            tle.parse_tle(l1.replace('18184', '18185'), l2)
        except ValueError as e:
            print('rejected:', e)
    """).check()
    assert "ok 25544 51.6414 2018-07-03T19:25:57Z" in res.stdout
    assert res.stdout.count("rejected: TLE line") == 2
    assert "line 2: checksum mismatch" in res.stdout and "line 1: checksum mismatch" in res.stdout


def test_keplerian_elements_below_the_surface_are_rejected(portable):
    res = portable("""
        import orbit, orbitio
        for d in ({'altitude_km': -5, 'epoch': 0}, {'altitude_km': 500, 'eccentricity': 0.2, 'epoch': 0},
                  {'altitude_km': 500, 'eccentricity': 1.5, 'epoch': 0}, {'inclination_deg': 10, 'epoch': 0}):
            try:
                orbit.Orbit(orbitio.keplerian_elements(d))
                print('accepted', d)
            except ValueError as e:
                print('rejected:', e)
        o = orbit.Orbit(orbitio.keplerian_elements({'altitude_km': 550, 'inclination_deg': 97.6, 'epoch': '2026-03-08T00:00:00Z'}))
        print('period_min %.1f' % orbitio.summary(o)['period_min'])
    """).check()
    assert "accepted" not in res.stdout
    assert "below the Earth's surface" in res.stdout
    assert "eccentricity 1.5" in res.stdout and "need altitude_km" in res.stdout
    assert "period_min 95.7" in res.stdout


def test_circular_orbit_keeps_its_radius_and_period():
    o = orbit.Orbit(orbitio.keplerian_elements({"altitude_km": 550, "inclination_deg": 51.6, "epoch": 0}))
    for t in (0, 1000, 50000):
        x, y, z = o.position(t)
        assert abs((x * x + y * y + z * z) ** 0.5 - 6928.137) < 1e-6
    lat, lon, alt = o.subpoint(0.0)
    assert abs(alt - 550) < 25   # geodetic altitude over an oblate Earth
    assert abs(o.period_s - 5739) < 10


# --- against sgp4 + skyfield ----------------------------------------------------------

def _skyfield():
    import skyfield.api as skyfield  # pinned in requirements.txt: a missing one is a failure
    import skyfield_data
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # skyfield-data's bundled Earth-orientation file is "expired"
        load = skyfield.Loader(skyfield_data.get_skyfield_data_path(), verbose=False)
        return skyfield, load("de421.bsp"), load.timescale(builtin=True)


def _reference(name, t0, t1, sts):
    """Eclipse events and 5-degree pass events from sgp4 + skyfield."""
    import warnings
    from skyfield.searchlib import find_discrete
    skyfield, eph, ts = _skyfield()
    l1, l2 = _tle_lines(name)
    sat = skyfield.EarthSatellite(l1, l2, ts=ts)

    def tt(t):
        d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
        return ts.from_datetime(d)

    ta, tb = tt(t0), tt(t1)

    def unix(t):
        return t.utc_datetime().timestamp()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        def sunlit(t):
            return sat.at(t).is_sunlit(eph)
        sunlit.step_days = 20.0 / 86400
        times, values = find_discrete(ta, tb, sunlit)
        eclipse = [("exit" if v else "entry", unix(t)) for t, v in zip(times, values)]
        passes = []
        for st in sts:
            topo = skyfield.wgs84.latlon(st["lat"], st["lon"], st["alt_m"])
            times, kinds = sat.find_events(topo, ta, tb, altitude_degrees=5.0)
            peak = None
            events = []
            for t, k in zip(times, kinds):
                if k == 1:
                    alt = (sat - topo).at(t).altaz()[0].degrees
                    peak = alt if peak is None else max(peak, alt)
                events.append((k, unix(t)))
            # a pass = rise .. set; its peak from the culminations between
            cur = {"aos": None, "peak": -90.0}
            for k, t in events:
                if k == 0:
                    cur = {"aos": t, "peak": -90.0}
                elif k == 1:
                    cur["peak"] = max(cur["peak"], (sat - topo).at(tt(t)).altaz()[0].degrees)
                else:
                    passes.append((st["id"], cur["aos"], t, cur["peak"]))
                    cur = {"aos": None, "peak": -90.0}
            if cur["aos"] is not None:
                passes.append((st["id"], cur["aos"], None, cur["peak"]))
    return eclipse, passes


def _events_of(passes):
    out = []
    for sid, aos, los, peak in passes:
        if aos is not None:
            out.append((sid, "aos", aos, peak))
        if los is not None:
            out.append((sid, "los", los, peak))
    return out


def _unmatched(events, others, t0, t1):
    """Events with no counterpart (same station and kind) within TOLERANCE_S,
    ignoring the horizon's edges and marginal passes; and the largest offset."""
    missing = []
    worst = 0.0
    for sid, kind, t, peak in events:
        if t - t0 < TOLERANCE_S or t1 - t < TOLERANCE_S or peak < models.MIN_ELEVATION_DEG + MARGINAL_DEG:
            continue
        best = min([abs(t - u) for s, k, u, _ in others if s == sid and k == kind] or [1e9])
        if best > TOLERANCE_S:
            missing.append((sid, kind, orbitio.iso(t), round(peak, 2)))
        else:
            worst = max(worst, best)
    return missing, worst


@pytest.mark.parametrize("name", TLES)
def test_windows_agree_with_sgp4_and_skyfield_within_30_s(name):
    el = orbitio.read_tle_text(_tle(name))
    o = orbit.Orbit(el)
    t0 = el["epoch"]
    t1 = t0 + 86400
    sts = stations.default_stations()
    wins = orbitscan.find_windows(o, t0, t1, sts)
    ref_eclipse, ref_passes = _reference(name, t0, t1, sts)

    ours_eclipse = []
    for w in wins:
        if w["kind"] == "eclipse":
            if w["start"] > t0:
                ours_eclipse.append(("entry", w["start"]))
            if w["end"] < t1:
                ours_eclipse.append(("exit", w["end"]))
    assert [k for k, _ in ours_eclipse] == [k for k, _ in ref_eclipse]
    eclipse_offsets = [abs(a[1] - b[1]) for a, b in zip(ours_eclipse, ref_eclipse)]
    assert max(eclipse_offsets) <= TOLERANCE_S, eclipse_offsets

    ours = _events_of([(w["station"], w["start"] if w["start"] > t0 else None,
                        w["end"] if w["end"] < t1 else None, w["elevation_peak_deg"])
                       for w in wins if w["kind"] == "contact"])
    ref = _events_of(ref_passes)
    missing, worst_ref = _unmatched(ref, ours, t0, t1)
    extra, worst_ours = _unmatched(ours, ref, t0, t1)
    assert missing == [], "passes skyfield sees and we do not: %s" % missing
    assert extra == [], "passes we see and skyfield does not: %s" % extra
    assert len([e for e in ref if e[3] >= 5.5]) >= 8     # the comparison had passes to compare
    print("%s: eclipse max offset %.1f s over %d events; pass max offset %.1f s over %d events"
          % (name, max(eclipse_offsets), len(eclipse_offsets), max(worst_ref, worst_ours), len(ref)))


def test_iss_tle_has_an_eclipse_every_orbit():
    el = orbitio.read_tle_text(_tle(TLES[0]))
    o = orbit.Orbit(el)
    wins = orbitscan.find_windows(o, el["epoch"], el["epoch"] + 86400)
    eclipses = [w for w in wins if w["kind"] == "eclipse"]
    assert len(eclipses) >= 15
    full = [w["duration_s"] for w in eclipses[1:-1]]
    assert all(1800 < d < 2400 for d in full), full


def test_a_finer_coarse_step_finds_the_same_windows():
    # the 60 s step with extremum checks misses nothing a 10 s step finds
    el = orbitio.read_tle_text(_tle(TLES[1]))
    o = orbit.Orbit(el)
    sts = stations.default_stations()
    coarse = orbitscan.find_windows(o, el["epoch"], el["epoch"] + 86400, sts)
    fine = orbitscan.find_windows(o, el["epoch"], el["epoch"] + 86400, sts, step_s=10)
    assert [(w["kind"], w.get("station")) for w in coarse] == [(w["kind"], w.get("station")) for w in fine]
    for a, b in zip(coarse, fine):
        assert abs(a["start"] - b["start"]) <= 1.0 and abs(a["end"] - b["end"]) <= 1.0


def test_a_pass_shorter_than_the_coarse_step_is_found():
    # lift the threshold to just under one pass's peak: what is left above it lasts
    # seconds, far less than the 60 s step, and must still be found
    el = orbitio.read_tle_text(_tle(TLES[1]))
    o = orbit.Orbit(el)
    sts = stations.select_stations(["wallops"])
    t0 = el["epoch"]
    passes = [w for w in orbitscan.find_windows(o, t0, t0 + 86400, sts) if w["kind"] == "contact"]
    target = max(passes, key=lambda w: w["elevation_peak_deg"])
    threshold = target["elevation_peak_deg"] - 0.05
    short = [w for w in orbitscan.find_windows(o, t0, t0 + 86400, sts, threshold) if w["kind"] == "contact"]
    assert len(short) == 1
    assert short[0]["duration_s"] < 30
    assert target["start"] < short[0]["start"] < short[0]["end"] < target["end"]


SNIPPET = """
import json, orbit, orbitio, orbitscan, stations
el = orbitio.read_tle_text(open(%r).read())
o = orbit.Orbit(el)
w = orbitscan.find_windows(o, el['epoch'], el['epoch'] + 86400, stations.default_stations())
print(json.dumps([[x['id'], x['kind'], x.get('station'), x['start'], x['end'], x.get('elevation_peak_deg')] for x in w]))
"""


@pytest.mark.parametrize("name", TLES[:2])
def test_micropython_and_cpython_find_the_same_windows(mpy, cpy, name):
    code = SNIPPET % os.path.join(DATA, name)
    a = mpy(code).check().last_json
    b = cpy(code).check().last_json
    assert len(a) == len(b) > 40
    for x, y in zip(a, b):
        assert x[:3] == y[:3]
        assert abs(x[3] - y[3]) < 1.0 and abs(x[4] - y[4]) < 1.0
        assert x[5] == y[5] or abs(x[5] - y[5]) < 0.05
    assert [orbitio.iso(x[3]) for x in a] == [orbitio.iso(y[3]) for y in b]


def test_windows_tile_the_span_and_convert_to_iso():
    el = orbitio.keplerian_elements({"altitude_km": 550, "inclination_deg": 97.6, "epoch": "2026-03-08T00:00:00Z"})
    o = orbit.Orbit(el)
    t0 = el["epoch"]
    wins = orbitscan.find_windows(o, t0, t0 + 6 * 3600, stations.default_stations())
    light = [w for w in wins if w["kind"] in ("sunlit", "eclipse")]
    assert light[0]["start"] == t0 and light[-1]["end"] == t0 + 6 * 3600
    for a, b in zip(light, light[1:]):
        assert a["end"] == b["start"] and a["kind"] != b["kind"]
    w = orbitio.as_iso([x for x in wins if x["kind"] == "contact"][0])
    assert set(w) == {"id", "kind", "start", "end", "duration_s", "station", "elevation_peak_deg"}
    assert w["start"].endswith("Z") and w["id"].startswith("contact-")
    json.dumps(w)
