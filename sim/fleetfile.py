"""A fleet file (CONSTELLATION.md "Fleet and plan"), read and checked before
anything runs:

    {"epoch": ISO (default epoch of Keplerian orbits), "fleet": [
        {"satellite_id", "name"?, "role": compute|aggregator,
         "orbit": {altitude_km, inclination_deg, ...} | {"tle": [line1, line2]},
         "bus"?: {...}}, ...],
     "job"?: {...}}

    sats = load(doc)   # [{"satellite_id", "name", "role", "orbit": orbit.Orbit, "bus"}]

FleetError (a ValueError) for an empty fleet, a satellite without an id, a
repeated id, an unknown role, an orbit that does not parse or a bad bus; the
message names the satellite.
"""
import models
import orbit as orbitlib
import orbitio

ROLES = ("compute", "aggregator")


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
        if sid in seen:
            raise FleetError("satellite %s appears twice in the fleet" % sid)
        seen.add(sid)
        role = entry.get("role", "compute")
        if role not in ROLES:
            raise FleetError("satellite %s: unknown role %r (one of %s)" % (sid, role, ", ".join(ROLES)))
        orb_doc = entry.get("orbit")
        try:
            orb = orbitlib.Orbit(_elements(orb_doc, epoch))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
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
                    "orbit": orb, "bus": bus})
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
