"""A fleet file (CONSTELLATION.md "Fleet and plan"), read and checked before
anything runs:

    {"epoch": ISO (default epoch of Keplerian orbits), "fleet": [
        {"satellite_id", "name"?, "role": compute|aggregator,
         "orbit": {altitude_km, inclination_deg, ...} | {"tle": [line1, line2]},
         "bus"?: {...}}, ...],
     "job"?: {...}}

    sats = load(doc)   # [{"satellite_id", "name", "role", "orbit": orbit.Orbit, "tle", "bus"}]

Every orbit is carried as a TLE ("tle": [line1, line2]; Keplerian elements are
written as one, tle_from_elements) and its Orbit is read back from those
lines: a node process (sim/node.py --tle) and the contact plan fly the very
same orbit.

FleetError (a ValueError) for an empty fleet, a satellite without an id, a
repeated id, an unknown role, an orbit that does not parse or a bad bus; the
message names the satellite.
"""
import math

import models
import orbit as orbitlib
import orbitio
import timeutil
from models import R_EARTH_KM, MU_KM3_S2, J2

ROLES = ("compute", "aggregator")
MAX_ID = 60         # its agent is "sat-<id>": the Console takes agent ids of 1-64 such characters


def _plain_id(sid):
    if not 0 < len(sid) <= MAX_ID:
        return False
    for ch in sid:
        if not (ch.isalpha() or ch.isdigit() or ch in "_.-") or ord(ch) > 127:
            return False
    return True


class FleetError(ValueError):
    pass


def load(doc):
    """The checked satellites of a fleet document (a dict, or the list itself)."""
    if isinstance(doc, dict):
        fleet = doc.get("fleet")
        epoch = doc.get("epoch")
    else:
        fleet = doc
        epoch = None
    if not isinstance(fleet, list):
        raise FleetError("the fleet must be a list of satellites")
    if not fleet:
        raise FleetError("the fleet is empty")
    out = []
    seen = set()
    for n, entry in enumerate(fleet):
        if not isinstance(entry, dict):
            raise FleetError("fleet entry %d is not an object" % (n + 1))
        sid = entry.get("satellite_id")
        if not isinstance(sid, str) or not sid.strip():
            raise FleetError("fleet entry %d has no satellite_id (a non-empty string)" % (n + 1))
        if not _plain_id(sid):
            raise FleetError("satellite %r: an id is 1-%d letters, digits, '_', '.' or '-'" % (sid, MAX_ID))
        name = entry.get("name")
        if name is not None and not isinstance(name, str):
            raise FleetError("satellite %s: name must be a string" % sid)
        if sid in seen:
            raise FleetError("satellite %s appears twice in the fleet" % sid)
        seen.add(sid)
        role = entry.get("role", "compute")
        if role not in ROLES:
            raise FleetError("satellite %s: unknown role %r (one of %s)" % (sid, role, ", ".join(ROLES)))
        orb_doc = entry.get("orbit")
        try:
            el = _elements(orb_doc, epoch)
            number = int(sid) if sid.isdigit() and 0 < int(sid) < 100000 else 90001 + n
            lines = el["tle"] if el["source"] == "tle" else tle_from_elements(el, number)
            orb = orbitlib.Orbit(orbitlib.parse_tle(lines[0], lines[1], entry.get("name")))
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            raise FleetError("satellite %s: orbit does not parse (%s)" % (sid, exc))
        bus = entry.get("bus")
        if bus is not None:
            if not isinstance(bus, dict):
                raise FleetError("satellite %s: bus must be an object" % sid)
            try:
                models.bus_config(bus)
            except ValueError as exc:
                raise FleetError("satellite %s: bad bus (%s)" % (sid, exc))
        out.append({"satellite_id": sid, "name": entry.get("name") or sid, "role": role,
                    "orbit": orb, "tle": list(lines), "bus": bus})
    return out


def _elements(d, epoch):
    if not isinstance(d, dict):
        raise ValueError("orbit must be an object")
    if "tle" in d:
        lines = d["tle"]
        if isinstance(lines, str):
            return orbitio.read_tle_text(lines)
        if not isinstance(lines, list) or len(lines) != 2 or not all(isinstance(x, str) for x in lines):
            raise ValueError("tle must be two lines")
        return orbitlib.parse_tle(lines[0], lines[1])
    return orbitio.keplerian_elements(d, default_epoch=epoch)


def _kozai_mean_motion(a_km, e, inc_deg):
    """The TLE (Kozai) mean motion, rev/day, whose Brouwer semi-major axis as
    orbit.Orbit reads it is a_km (fixed point; converges in a few steps)."""
    cos_i = math.cos(inc_deg * orbitlib.DEG)
    beta2 = 1 - e * e
    beta = math.sqrt(beta2)
    k = 3 * J2 / 4 * (3 * cos_i * cos_i - 1)
    n = math.sqrt(MU_KM3_S2 / a_km ** 3)
    for _ in range(20):
        a1 = (MU_KM3_S2 / n ** 2) ** (1 / 3) / R_EARTH_KM
        d1 = k / (a1 * a1 * beta * beta2)
        a0 = a1 * (1 - d1 * (1 / 3 + d1 * (1 + 134 / 81 * d1)))
        d0 = k / (a0 * a0 * beta * beta2)
        a = a0 / (1 - d0) * R_EARTH_KM
        n *= (a / a_km) ** 1.5
    return n * orbitlib.DAY_S / orbitlib.TWO_PI


def tle_from_elements(el, catalog_number):
    """Two TLE lines for an elements dict of orbitio.keplerian_elements (mean
    altitude -> the Kozai mean motion with that Brouwer semi-major axis)."""
    if not 0 < catalog_number < 100000:
        raise ValueError("catalog number %r out of range" % (catalog_number,))
    days = int(el["epoch"] // orbitlib.DAY_S)
    y = timeutil.civil_from_days(days)[0]
    doy = (el["epoch"] - timeutil.days_from_civil(y, 1, 1) * orbitlib.DAY_S) / orbitlib.DAY_S + 1
    if not 1957 <= y <= 2056:
        raise ValueError("epoch year %d outside what a TLE can carry" % y)
    n = _kozai_mean_motion(R_EARTH_KM + el["altitude_km"], el["eccentricity"], el["inclination_deg"])
    if not 0 < n < 100:
        raise ValueError("mean motion %r rev/day cannot be written" % n)
    ecc = int(round(el["eccentricity"] * 1e7))
    if ecc > 9999999:
        raise ValueError("eccentricity too close to 1")
    num = "%05d" % catalog_number
    l1 = "1 %sU 26001A   %02d%012.8f  .00000000  00000-0  00000-0 0  999" % (num, y % 100, doy)
    l2 = "2 %s %8.4f %8.4f %07d %8.4f %8.4f %11.8f    1" % (
        num, el["inclination_deg"], el["raan_deg"] % 360, ecc, el["arg_perigee_deg"] % 360,
        el["mean_anomaly_deg"] % 360, n)
    from tle import tle_checksum
    return l1 + str(tle_checksum(l1)), l2 + str(tle_checksum(l2))
