"""The contact plan (MODELS.md "ISL link model"): its windows agree with a
brute-force distance and Earth-occlusion scan within the scan step; the line
of sight must clear the Earth plus 100 km; quality, bandwidth and latency
follow the model at every sample."""
import random

import numpy as np
import pytest

import contactplan
import orbit
import orbitio
import world

R_LOS = 6378.137 + 100
SCAN_S = 5.0


def _orbit(**kw):
    d = {"altitude_km": 550, "inclination_deg": 53, "eccentricity": 0.0005, "raan_deg": 0,
         "arg_perigee_deg": 0, "mean_anomaly_deg": 0, "epoch": 1772928000}
    d.update(kw)
    return orbit.Orbit(orbitio.keplerian_elements(d))


def _brute_force_windows(oa, ob, t0, t1):
    """Runs of scan samples where the two are within 5000 km and the segment between
    them stays 100 km above the Earth: [(first up sample, last up sample)]."""
    ts = np.arange(t0, t1 + SCAN_S / 2, SCAN_S)
    p = np.array([oa.position(t) for t in ts])
    q = np.array([ob.position(t) for t in ts])
    u = q - p
    uu = np.einsum("ij,ij->i", u, u)
    s = np.clip(-np.einsum("ij,ij->i", p, u) / uu, 0, 1)
    closest = np.linalg.norm(p + s[:, None] * u, axis=1)
    up = (np.sqrt(uu) <= 5000) & (closest >= R_LOS)
    runs = []
    k = 0
    while k < len(ts):
        if up[k]:
            j = k
            while j + 1 < len(ts) and up[j + 1]:
                j += 1
            runs.append((ts[k], ts[j]))
            k = j + 1
        else:
            k += 1
    return runs


def test_windows_agree_with_a_brute_force_distance_and_occlusion_scan():
    rnd = random.Random(5)
    t0 = 1772928000
    t1 = t0 + 6 * 3600
    compared = short = 0
    for trial in range(8):
        inc = rnd.uniform(40, 100)
        if trial < 5:
            # loose clusters (the last flies both ways round: relative speeds near 15 km/s)
            sats = [("s%d" % k, _orbit(altitude_km=rnd.uniform(400, 800),
                                       inclination_deg=(180 - inc if trial == 4 and k % 2 else inc) + rnd.uniform(-10, 10),
                                       eccentricity=rnd.uniform(0, 0.01), raan_deg=rnd.uniform(0, 40),
                                       arg_perigee_deg=rnd.uniform(0, 360), mean_anomaly_deg=rnd.uniform(0, 90)))
                    for k in range(5)]
        else:
            # any planes at all: brief crossings, some shorter than the plan's step
            sats = [("s%d" % k, _orbit(altitude_km=rnd.uniform(450, 750), inclination_deg=rnd.uniform(30, 150),
                                       raan_deg=rnd.uniform(0, 360), mean_anomaly_deg=rnd.uniform(0, 360)))
                    for k in range(8)]
        plan = contactplan.compute(sats, t0, t1)
        orbits = dict(sats)
        for i in range(len(sats)):
            for j in range(i + 1, len(sats)):
                a, b = sats[i][0], sats[j][0]
                want = _brute_force_windows(orbits[a], orbits[b], t0, t1)
                got = [(w["start"], w["end"]) for w in contactplan.pair_windows(plan, a, b)]
                # every scanned window is there, even one shorter than the plan's own
                # step, its edges within the scan step
                for ws, we in want:
                    match = [g for g in got if g[0] <= we + SCAN_S and g[1] >= ws - SCAN_S]
                    assert len(match) == 1, (a, b, ws - t0, we - t0, got)
                    gs, ge = match[0]
                    assert abs(gs - ws) <= SCAN_S and abs(ge - we) <= SCAN_S, (a, b, gs - ws, ge - we)
                    compared += 1
                    short += we - ws < contactplan.STEP_S
                # and every window of the plan was seen by the scan (unless shorter than it)
                for gs, ge in got:
                    if ge - gs > SCAN_S:
                        assert any(ws <= ge and we >= gs for ws, we in want), (a, b, gs - t0, ge - t0)
    assert compared >= 20 and short >= 3, (compared, short)


def test_line_of_sight_must_clear_the_earth_plus_100_km():
    # Two satellites at 420 km in one plane: 38.7 deg apart they are 4500 km
    # apart, in range by distance alone, but the line between them dips to
    # ~33 km above the surface; 30 deg apart (3500 km) they see each other.
    t0 = 1772928000
    lead = _orbit(altitude_km=420, eccentricity=0, mean_anomaly_deg=38.66)
    hidden = contactplan.compute([("a", _orbit(altitude_km=420, eccentricity=0)), ("b", lead)], t0, t0 + 86400)
    p = hidden["windows"]
    assert p == []
    assert world.isl_hop(4500, False)["up"] is True   # the distance-only formula calls it a link
    near = _orbit(altitude_km=420, eccentricity=0, mean_anomaly_deg=30)
    seen = contactplan.compute([("a", _orbit(altitude_km=420, eccentricity=0)), ("b", near)], t0, t0 + 86400)
    assert [(w["start"], w["end"]) for w in seen["windows"]] == [(t0, t0 + 86400)]
    assert 3400 < seen["windows"][0]["distance_km"][0] < 3600


def test_quality_bandwidth_and_latency_follow_the_model_at_every_sample():
    t0 = 1772928000
    sats = [("a", _orbit()), ("b", _orbit(mean_anomaly_deg=25)), ("c", _orbit(raan_deg=30, mean_anomaly_deg=10))]
    plan = contactplan.compute(sats, t0, t0 + 12 * 3600)
    orbits = dict(sats)
    dark_seen = lit_seen = 0
    for w in plan["windows"]:
        qs = []
        for t, d, dark, lat in zip(w["t"], w["distance_km"], w["dark"], w["latency_ms"]):
            ecl = orbitio.in_eclipse(orbits[w["a"]], t) or orbitio.in_eclipse(orbits[w["b"]], t)
            hop = world.isl_hop(d, ecl)
            pa, pb = orbits[w["a"]].position(t), orbits[w["b"]].position(t)
            assert d == pytest.approx(float(np.linalg.norm(np.subtract(pa, pb))), abs=1e-6)
            assert dark == ecl
            assert lat == pytest.approx(hop["latency_ms"])
            qs.append(hop["quality"])
            dark_seen += ecl
            lit_seen += not ecl
        for m, (q, bw) in enumerate(zip(w["quality"], w["bandwidth_mbps"])):
            assert q == pytest.approx(min(qs[m], qs[m + 1]))      # a segment is as good as its worse end
            assert bw == pytest.approx(100 * q)
    assert dark_seen and lit_seen


def test_the_models_example_hop():
    # MODELS.md: 2000 km apart, one in eclipse -> quality 0.684, 68.4 Mbps, 8.67 ms
    assert contactplan.quality(2000, True) == pytest.approx(0.684)
    assert contactplan.latency_ms(2000) == pytest.approx(8.671, abs=1e-3)


def test_an_empty_horizon_or_a_repeated_id_is_refused():
    with pytest.raises(ValueError, match="empty horizon"):
        contactplan.compute([("a", _orbit())], 10, 10)
    with pytest.raises(ValueError, match="twice"):
        contactplan.compute([("a", _orbit()), ("a", _orbit())], 0, 10)
