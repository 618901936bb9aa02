"""sim/world.py and sim/hazards.py: one clock for many satellites, boundaries,
links to the ground, the ISL model, and the hazard/checkpoint prediction."""
import json
import os

import pytest

import tools
import hazards
import models
import orbitio
import world

ISS = os.path.join(tools.ROOT, "tests", "data", "iss-2018-07-03.tle")
EPOCH = "2026-03-08T00:00:00Z"


def _train(n=4):
    # four satellites in one plane, 30 degrees apart (shared/examples/fleets/train-4.json)
    return [orbitio.keplerian_elements({"altitude_km": 550, "inclination_deg": 51.6, "eccentricity": 0.0001,
                                      "raan_deg": 0, "arg_perigee_deg": 90, "mean_anomaly_deg": 30 * i,
                                      "epoch": EPOCH}) for i in range(n)]


def test_isl_link_model_matches_the_worked_example(portable):
    res = portable("""
import json, world
print(json.dumps([world.isl_hop(2000.0, True), world.isl_hop(2000.0, False), world.isl_hop(5001.0, False)]))
""").check()
    dark, lit, far = res.last_json
    assert abs(dark["quality"] - 0.684) < 1e-9
    assert abs(dark["bandwidth_mbps"] - 68.4) < 1e-9
    assert abs(dark["latency_ms"] - 8.671) < 0.001
    assert abs(lit["quality"] - 0.76) < 1e-9
    assert far["quality"] == 0.0 and not far["up"] and far["bandwidth_mbps"] == 0.0


def test_neighbours_in_a_train_are_in_isl_range_and_the_ends_are_not():
    start = orbitio.keplerian_elements({"altitude_km": 1, "epoch": EPOCH})["epoch"]
    w = world.World(start, 3 * 3600)
    for i, el in enumerate(_train()):
        w.add_satellite("train-%d" % (i + 1), el)
    for t in (start, start + 3000, start + 9000):
        d = w.distance_km("train-1", "train-2", t)
        assert abs(d - 2 * 6928.137 * 0.258819) < 5      # chord of 30 degrees
        link = w.isl_link("train-1", "train-2", t)
        dark = w.satellite("train-1").timeline.eclipse_state(t)[0] or w.satellite("train-2").timeline.eclipse_state(t)[0]
        expected = (1 - d / 5000 * 0.6) * (0.9 if dark else 1.0)
        assert abs(link["quality"] - expected) < 1e-12 and link["up"]
        assert not w.isl_link("train-1", "train-4", t)["up"]


def test_world_wakes_at_every_boundary_of_every_satellite_and_link_follows_contacts(portable):
    res = portable("""
import json, orbit, orbitio, world
els = [orbitio.keplerian_elements({'altitude_km': 550, 'inclination_deg': i, 'mean_anomaly_deg': 40 * k,
                                 'epoch': '2026-03-08T00:00:00Z'}) for k, i in enumerate((51.6, 97.6))]
w = world.World(els[0]['epoch'], 6 * 3600)
for k, el in enumerate(els):
    w.add_satellite('s%d' % k, el)
wakes = list(w.boundaries())
expected = set()
for sid in w.order:
    for win in w.windows(sid):
        if win['kind'] != 'sunlit':
            for t in (win['start'], win['end']):
                if w.start < t < w.start + w.horizon_s:
                    expected.add(w.to_ms(t))
# link_up is true exactly when some contact window holds the time
wrong = 0
checked = 0
for sid in w.order:
    contacts = w.windows(sid, 'contact')
    for i in range(0, 6 * 3600, 20):
        t = w.start + i
        checked += 1
        wrong += w.link_up(sid, t) != any(c['start'] <= t < c['end'] for c in contacts)
checks = {'checked': checked, 'wrong': wrong, 'contacts': sum(len(w.windows(s, 'contact')) for s in w.order)}
print(json.dumps({'missing': sorted(expected - set(wakes)), 'n': len(wakes), 'clock_end': w.clock.now_ms(),
                  'checks': checks}))
""").check()
    r = res.last_json
    assert r["missing"] == []
    assert r["clock_end"] == 6 * 3600 * 1000
    assert r["checks"]["contacts"] >= 4 and r["checks"]["wrong"] == 0


def test_hazard_prediction_has_the_checkpoint_predicted_shape(portable):
    res = portable("""
import json, orbit, orbitio, hazards
el = orbitio.read_tle_text(open(%r).read())
o = orbit.Orbit(el)
p = hazards.predict(o, el['epoch'], el['epoch'] + 86400, checkpoint_interval_s=1800)
print(json.dumps(p))
""" % ISS).check()
    p = res.last_json
    assert set(p) == {"hazards_count", "checkpoints_count", "next_hazard", "max_safe_window_s",
                      "overhead_fraction", "hazards", "checkpoint_schedule"}
    kinds = [h["kind"] for h in p["hazards"]]
    assert kinds.count("eclipse") >= 15 and kinds.count("saa") >= 5
    assert p["hazards_count"] == len(p["hazards"]) and p["checkpoints_count"] == len(p["checkpoint_schedule"])
    assert p["next_hazard"] == p["hazards"][0]
    # a checkpoint before every hazard (or one shared with a hazard just before it)
    at = sorted(orbit_time(c["at"]) for c in p["checkpoint_schedule"])
    for h in p["hazards"]:
        start = orbit_time(h["start"])
        assert any(start - 120 <= t <= start for t in at), h
    # and never more than the interval without one
    assert all(b - a <= 1800 + 1 for a, b in zip(at, at[1:]))
    assert 0 < p["max_safe_window_s"] < 86400 and 0 < p["overhead_fraction"] < 0.01
    saa = [h for h in p["hazards"] if h["kind"] == "saa"]
    assert all(0 < h["intensity"] <= 1 and h["scrub_interval_s"] > 0 for h in saa)


def orbit_time(iso):
    import timeutil
    return timeutil.parse_iso(iso)


def test_saa_intensity_is_zero_outside_and_grows_towards_the_core_and_with_altitude():
    assert models.saa_intensity(40.0, -50.0, 500) == 0.0            # north Atlantic
    assert models.saa_intensity(-27.0, 100.0, 500) == 0.0           # Indian ocean
    core = models.saa_intensity(-27.0, -50.0, 500)
    edge = models.saa_intensity(-45.0, 20.0, 500)
    assert 0 < edge < core
    assert models.saa_intensity(-27.0, -50.0, 150) == 0.0
    assert models.saa_intensity(-27.0, -50.0, 400) < core < models.saa_intensity(-27.0, -50.0, 900)


def test_the_radiation_monitor_of_a_simulated_satellite_agrees_with_the_saa_model_everywhere():
    # spacecraft.in_saa answers outside the polygon's latitude band without
    # the geodetic latitude: the same answer as the model at every sample
    import spacecraft
    lats = models._SAA_POLYGON[0::2]
    assert (models.SAA_LAT_MIN, models.SAA_LAT_MAX) == (min(lats), max(lats))
    inside = 0
    for k, (inc, alt) in enumerate(((51.6, 550), (97.5, 700), (30.0, 1200), (0.5, 400))):
        orb = orbitio.keplerian_elements({"altitude_km": alt, "inclination_deg": inc, "raan_deg": 40 * k,
                                          "epoch": EPOCH})
        import orbit
        orb = orbit.Orbit(orb)
        sat = spacecraft.SimulatedSatellite("s", orb, orb.epoch, stations=[])
        for i in range(0, 86400, 37):
            t = orb.epoch + i + 0.25
            sat.advance_to(t)
            want = models.saa_intensity(*orb.subpoint(t)) >= models.SAA_MIN_INTENSITY
            assert sat.in_saa() == want, (inc, alt, t)
            inside += want
    assert inside > 500   # the sampled orbits cross it


def test_adding_the_same_satellite_twice_or_asking_for_an_unknown_one_is_an_error():
    w = world.World(0.0, 3600)
    w.add_satellite("a", orbitio.keplerian_elements({"altitude_km": 500, "epoch": 0}))
    with pytest.raises(ValueError):
        w.add_satellite("a", orbitio.keplerian_elements({"altitude_km": 500, "epoch": 0}))
    with pytest.raises(ValueError, match="unknown satellite"):
        w.link_up("b")


def test_a_chunked_world_that_forgets_the_past_keeps_the_same_eclipses_and_contacts(portable):
    """A small heap predicts 4 h at a time and drops windows once past; what the
    satellite sees (eclipse, link, station) is the same as with the whole horizon."""
    res = portable("""
import json, orbit, orbitio, world
el = orbitio.keplerian_elements({'altitude_km': 550, 'inclination_deg': 51.6,
                               'epoch': '2026-03-08T00:00:00Z'})
whole = world.World(el['epoch'], 12 * 3600)
a = whole.add_satellite('s', el)
chunked = world.World(el['epoch'], 12 * 3600, chunk_s=4 * 3600)
b = chunked.add_satellite('s', el)
diff = 0
most = 0
for i in range(0, 12 * 3600, 30):
    for w in (whole, chunked):
        w.advance_to_ms(i * 1000)
    if i % 600 == 0:
        chunked.forget_past(keep_s=600)
    most = max(most, len(b.timeline.windows))
    ca, cb = a.contact(), b.contact()
    diff += (a.in_eclipse() != b.in_eclipse()) + (a.link_up() != b.link_up())
    diff += (ca or {}).get('station') != (cb or {}).get('station')
print(json.dumps({'diff': diff, 'most': most, 'all': len(a.timeline.windows),
                  'pos': [round(x, 3) for x in b.position()]}))
""").check()
    r = res.last_json
    assert r["diff"] == 0
    assert r["most"] < r["all"]
    lat, lon, alt = r["pos"]
    assert -51.7 <= lat <= 51.7 and 530 < alt < 570
