"""Orbit input and output for the planner and the host tools, portable.

What a simulated node never needs, kept out of orbit.py so the node does not
load it: TLE text with names and comments, Keplerian elements, ISO times for
windows, a catalog-style summary of an orbit, and the full sun and shadow
that checks compare the window search with.

    el = read_tle_text(text)            # or keplerian_elements({...})
    summary(orbit.Orbit(el)) -> {altitude_km, inclination_deg, eccentricity, period_min, epoch, ...}
    in_eclipse(orb, t)                  # the shadow straight from the geometry (checks)
    as_iso(window) -> the window with ISO 8601 start/end
"""
import math

import orbit
import orbitscan
import timeutil
import tle
from models import R_EARTH_KM, MU_KM3_S2, OBLIQUITY_DEG


def read_tle_text(text):
    """Elements from TLE text: two lines, or three with a name line first (the
    first set found in the text). Lines starting with '#' are comments."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for i in range(len(lines) - 1):
        if lines[i].startswith("1 ") and lines[i + 1].startswith("2 "):
            name = lines[i - 1].strip() if i > 0 and not lines[i - 1].startswith("2 ") else None
            return tle.parse_tle(lines[i], lines[i + 1], name)
    raise ValueError("no TLE found (need a line starting '1 ' followed by one starting '2 ')")


KEPLER_KEYS = ("altitude_km", "inclination_deg", "eccentricity", "raan_deg",
               "arg_perigee_deg", "mean_anomaly_deg")


def keplerian_elements(d, default_epoch=None):
    """Elements dict from {altitude_km (mean: a - R_E), inclination_deg,
    eccentricity, raan_deg, arg_perigee_deg, mean_anomaly_deg, epoch (ISO or Unix
    s)}. Missing angles/eccentricity default to 0; altitude is required."""
    if not isinstance(d, dict):
        raise ValueError("orbital elements must be an object")
    if "altitude_km" not in d:
        raise ValueError("orbital elements need altitude_km")
    el = {"source": "elements", "name": d.get("name") or "", "norad_id": d.get("norad_id")}
    for key in KEPLER_KEYS:
        value = d.get(key, 0.0)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError("orbital element %s must be a number, got %r" % (key, value))
        el[key] = float(value)
    epoch = d.get("epoch", default_epoch)
    if epoch is None:
        raise ValueError("orbital elements need an epoch")
    el["epoch"] = timeutil.parse_iso(epoch) if isinstance(epoch, str) else float(epoch)
    a = R_EARTH_KM + el["altitude_km"]
    if a <= R_EARTH_KM:
        raise ValueError("altitude_km %.1f is below the Earth's surface" % el["altitude_km"])
    el["mean_motion_rev_day"] = math.sqrt(MU_KM3_S2 / a ** 3) * orbit.DAY_S / orbit.TWO_PI
    el["ndot_rev_day2"] = 0.0
    return orbit.check_elements(el)


def iso(t):
    """Unix seconds -> ISO 8601 UTC, rounded to the nearest second."""
    return timeutil.iso_utc(t + 0.5)


def as_iso(window):
    """A window with ISO 8601 start/end (nearest second) for plans and output."""
    w = {}
    for key in window:
        value = window[key]
        w[key] = iso(value) if key in ("start", "end") else value
    return w


def summary(orb):
    """{altitude_km (mean), inclination_deg, eccentricity, period_min, epoch (ISO),
    norad_id?, tle_epoch?} of an orbit.Orbit, as the catalog shows it."""
    el = orb.elements
    out = {"altitude_km": round(orb.a - R_EARTH_KM, 1),
           "inclination_deg": el["inclination_deg"],
           "eccentricity": el["eccentricity"],
           "period_min": round(orb.period_s / 60, 2),
           "epoch": iso(orb.epoch)}
    if el.get("norad_id"):
        out["norad_id"] = el["norad_id"]
    if el["source"] == "tle":
        out["tle_epoch"] = out["epoch"]
    return out


def sun_direction(t):
    """Unit vector Earth -> Sun at t, in the equatorial frame of date (the window
    search linearises this over a search; checks use it directly)."""
    lam = orbitscan.sun_longitude_deg(t) * orbit.DEG
    eps = OBLIQUITY_DEG * orbit.DEG
    s = math.sin(lam)
    return (math.cos(lam), math.cos(eps) * s, math.sin(eps) * s)


def in_eclipse(orb, t):
    """Inside the Earth's cylindrical shadow at t, straight from the geometry."""
    return orbitscan.shadow_margin_km(orb.position(t), sun_direction(t)) < 0
