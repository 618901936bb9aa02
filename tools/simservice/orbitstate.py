"""The stateless orbital state of `POST /v1/state`: orbital elements (or a
TLE) and a time -> {lat, lon, altitude_km, velocity_km_s, in_eclipse,
orbit_fraction}, from the world models (sim/orbit.py, sim/orbitio.py), the
very ones `umbra sim windows` and the simulated satellites use.

Elements follow the reference agent's OrbitalElements: the defaults it applies
(eccentricity 0.0001, argument of perigee 90 deg, RAAN, mean anomaly and mean
motion 0) are applied here too; mean_motion 0 means "from the altitude", and
a mean motion given (rev/day) sets the period, within MEAN_MOTION_TOLERANCE
of the one the altitude implies.
"""
import math

import tools  # noqa: F401  (portable folders on sys.path)
import orbit as orbitlib
import orbitio
import timeutil
from models import MU_KM3_S2

# Defaults of the reference agent's OrbitalElements (rotastellar-agent 0.1.0).
DEFAULT_ECCENTRICITY = 0.0001
DEFAULT_ARG_PERIGEE_DEG = 90.0
# A given mean motion may differ this much (relative) from the altitude's.
MEAN_MOTION_TOLERANCE = 0.10
# Times the service answers for: this calendar span, and at most this far
# from the elements' epoch (two-body + J2 means nothing decades away).
EARLIEST = "1970-01-01T00:00:00Z"
LATEST = "2100-01-01T00:00:00Z"
MAX_FROM_EPOCH_DAYS = 3660


class BadInput(ValueError):
    """Input the models refuse; `field` names the part of the request at fault."""

    def __init__(self, field, message):
        ValueError.__init__(self, "%s: %s" % (field, message))
        self.field = field


def parse_time(text, field):
    """ISO 8601 UTC (any fraction, Z or an offset) -> Unix seconds (a float, to
    the millisecond). BadInput for a malformed time, an impossible date, or one
    outside [EARLIEST, LATEST)."""
    if isinstance(text, str):
        text = text.upper()          # RFC 3339 allows 't' and 'z'
    try:
        secs, ms = timeutil.parse_iso_ms(text)
        y, m, d = int(text[0:4]), int(text[5:7]), int(text[8:10])
    except (ValueError, TypeError):
        raise BadInput(field, "not an ISO 8601 time (like 2026-03-08T00:00:00Z): %r" % (text,))
    if timeutil.civil_from_days(timeutil.days_from_civil(y, m, d)) != (y, m, d):
        raise BadInput(field, "no such date: %r" % (text,))
    t = secs + ms / 1000.0
    if not _EARLIEST <= t < _LATEST:
        raise BadInput(field, "%r is outside %s .. %s" % (text, EARLIEST, LATEST))
    return t


_EARLIEST = timeutil.parse_iso(EARLIEST)
_LATEST = timeutil.parse_iso(LATEST)


def elements_from(data, field="elements", default_epoch=None):
    """An elements dict for orbit.Orbit from the reference agent's elements
    (a dict, validated for shape by schemas.py). BadInput naming the field."""
    d = dict(data)
    if d.get("eccentricity") is None:
        d["eccentricity"] = DEFAULT_ECCENTRICITY
    if d.get("arg_perigee_deg") is None:
        d["arg_perigee_deg"] = DEFAULT_ARG_PERIGEE_DEG
    for key in ("raan_deg", "mean_anomaly_deg"):
        if d.get(key) is None:
            d[key] = 0.0
    epoch = d.get("epoch")
    if epoch is None:
        if default_epoch is None:
            raise BadInput(field + ".epoch", "missing")
        d["epoch"] = float(default_epoch)
    else:
        d["epoch"] = parse_time(epoch, field + ".epoch")
    try:
        el = orbitio.keplerian_elements(d)
    except ValueError as exc:
        raise BadInput(field, str(exc))
    mean_motion = d.get("mean_motion") or 0.0
    if mean_motion:
        implied = el["mean_motion_rev_day"]
        if abs(mean_motion - implied) > MEAN_MOTION_TOLERANCE * implied:
            raise BadInput(field + ".mean_motion", "%g rev/day is far from the %.3f rev/day "
                           "altitude_km %g implies" % (mean_motion, implied, d["altitude_km"]))
        el["mean_motion_rev_day"] = float(mean_motion)
    return _checked_orbit(el, field)


def elements_from_tle(tle, field="tle"):
    """An elements dict from TLE text (a string) or its lines (a list)."""
    text = "\n".join(tle) if isinstance(tle, list) else tle
    try:
        el = orbitio.read_tle_text(text)
    except ValueError as exc:
        raise BadInput(field, str(exc))
    return _checked_orbit(el, field)


def _checked_orbit(el, field):
    try:
        orbitlib.Orbit(el)
    except ValueError as exc:
        raise BadInput(field, str(exc))
    return el


def check_time_near_epoch(el, t, field):
    if abs(t - el["epoch"]) > MAX_FROM_EPOCH_DAYS * 86400:
        raise BadInput(field, "more than %d days from the elements' epoch %s"
                       % (MAX_FROM_EPOCH_DAYS, orbitio.iso(el["epoch"])))


def velocity_km_s(orb, t):
    """Inertial speed (vis-viva) at t."""
    x, y, z = orb.position(t)
    r = math.sqrt(x * x + y * y + z * z)
    return math.sqrt(MU_KM3_S2 * (2.0 / r - 1.0 / orb.a))


def orbit_fraction(orb, t):
    """Where the satellite is in its orbit, 0..1: the mean argument of latitude
    (mean anomaly + argument of perigee, J2 drift included) over a full turn,
    0 at the ascending node."""
    dt = t - orb.epoch
    u = orb.m0 + orb.m_rate * dt + orb.m_accel * dt * dt + orb.argp0 + orb.argp_rate * dt
    return (u % orbitlib.TWO_PI) / orbitlib.TWO_PI


def state_at(el, t):
    """The reply of POST /v1/state for elements `el` at Unix time t."""
    orb = orbitlib.Orbit(el)
    lat, lon, alt = orb.subpoint(t)
    return {"lat": lat, "lon": lon, "altitude_km": alt,
            "velocity_km_s": velocity_km_s(orb, t),
            "in_eclipse": bool(orbitio.in_eclipse(orb, t)),
            "orbit_fraction": orbit_fraction(orb, t)}

