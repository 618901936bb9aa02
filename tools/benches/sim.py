"""Simulated world speed under MicroPython: 24 h window search for one
satellite (9 stations), and 24 h of 1 and of 20 satellites stepped through every
boundary, every satellite synced at every wake-up (simulated seconds per
wall second; window search counted apart).

Default 2 MiB heap with gc.threshold at a quarter of it: the window search
allocates many short-lived floats, and a 32 KiB threshold (right for the
firmware's small live set) makes it re-mark the whole live heap every 32 KiB —
about 5x slower here."""
from tools import ROOT
from tools.upy import run_code

SNIPPET = """
import gc, json, time
gc.threshold(512 * 1024)
import orbit, orbitio, orbitscan, stations, world
el = orbitio.read_tle_text(open(%r).read())
sts = stations.default_stations()

t = time.ticks_ms()
orbitscan.find_windows(orbit.Orbit(el), el['epoch'], el['epoch'] + 86400, sts)
windows_ms = time.ticks_diff(time.ticks_ms(), t)

def fleet(n):
    t = time.ticks_ms()
    w = world.World(1772928000.0, 86400)     # 2026-03-08T00:00:00Z
    for k in range(n):
        el = orbitio.keplerian_elements({'altitude_km': 500 + 10 * (k %% 5), 'inclination_deg': (51.6, 97.6)[k %% 2],
                                       'raan_deg': 18 * k, 'mean_anomaly_deg': 37 * k, 'epoch': w.start})
        w.add_satellite('s%%d' %% k, el).set_compute_load(20.0, 100)
    setup_ms = time.ticks_diff(time.ticks_ms(), t)
    t = time.ticks_ms()
    steps = 0
    for _ in w.boundaries():
        w.sync()          # every satellite's physics brought up to each wake-up
        steps += 1
    return setup_ms, time.ticks_diff(time.ticks_ms(), t), steps

one = fleet(1)
twenty = fleet(20)
print(json.dumps({'windows_ms': windows_ms, 'one': one, 'twenty': twenty}))
""" % (ROOT + "/tests/data/iss-2018-07-03.tle")


def measure():
    return run_code(SNIPPET, impl="micropython", timeout=300).check().last_json


def run():
    m = measure()
    figures = [{"name": "24 h window search, 1 satellite, 9 stations (MicroPython)",
                "value": m["windows_ms"], "unit": "ms"}]
    for label, key, n in (("1 satellite", "one", 1), ("20 satellites", "twenty", 20)):
        setup_ms, step_ms, steps = m[key]
        figures += [
            {"name": "sim s per wall s, %s over 24 h, stepping (MicroPython)" % label,
             "value": round(86400 / (max(step_ms, 1) / 1000.0)), "unit": "x"},
            {"name": "sim s per wall s, %s over 24 h, incl. window search (MicroPython)" % label,
             "value": round(86400 / (max(step_ms + setup_ms, 1) / 1000.0)), "unit": "x"},
            {"name": "boundaries stepped, %s over 24 h" % label, "value": steps, "unit": "wake-ups"},
        ]
    return figures
