"""The ISL link graph of a fleet at one time.

THE ONE PLACE THE SERVICE COMPUTES LINKS (`link_graph`). It is a stand-in:
the one-hop ISL formula of sim/world.py (MODELS.md "ISL link model") plus the
line-of-sight rule of MODELS.md (the segment between the two satellites
clears the Earth by LOS_CLEARANCE_KM). When the contact plan module lands in
sim/, point `link_graph` at it (same arguments, same reply) and delete the
rest of this file. No routing here: links of the moment only.
"""
import math

import tools  # noqa: F401  (portable folders on sys.path)
import world as worldlib
from models import R_EARTH_KM

LOS_CLEARANCE_KM = 100.0


def line_of_sight(a, b, clearance_km=LOS_CLEARANCE_KM):
    """True when the segment between ECI positions a and b (km) stays at least
    clearance_km above the (spherical, equatorial-radius) Earth."""
    dx, dy, dz = b[0] - a[0], b[1] - a[1], b[2] - a[2]
    dd = dx * dx + dy * dy + dz * dz
    s = 0.0 if dd == 0 else max(0.0, min(1.0, -(a[0] * dx + a[1] * dy + a[2] * dz) / dd))
    cx, cy, cz = a[0] + s * dx, a[1] + s * dy, a[2] + s * dz
    return math.sqrt(cx * cx + cy * cy + cz * cz) >= R_EARTH_KM + clearance_km


def link_graph(satellites):
    """satellites: [(satellite_id, (x, y, z) ECI km, in_eclipse)] at one time ->
    the links up at that time, [{from, to, distance_km, quality,
    bandwidth_mbps, latency_ms}], each pair once (from before to in the
    order given)."""
    links = []
    for i in range(len(satellites)):
        ida, pa, dark_a = satellites[i]
        for j in range(i + 1, len(satellites)):
            idb, pb, dark_b = satellites[j]
            distance = math.sqrt((pa[0] - pb[0]) ** 2 + (pa[1] - pb[1]) ** 2 + (pa[2] - pb[2]) ** 2)
            if distance > worldlib.ISL_RANGE_KM or not line_of_sight(pa, pb):
                continue
            hop = worldlib.isl_hop(distance, dark_a or dark_b)
            if not hop["up"]:
                continue
            links.append({"from": ida, "to": idb, "distance_km": distance,
                          "quality": hop["quality"], "bandwidth_mbps": hop["bandwidth_mbps"],
                          "latency_ms": hop["latency_ms"]})
    return links
