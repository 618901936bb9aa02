"""The ISL link graph of a fleet at one time: the fleet world's own link rule
(sim/contactplan.py: within ISL_RANGE_KM, the line of sight 100 km above the
Earth; quality, bandwidth and latency of MODELS.md "ISL link model"), at one
moment. No routing here: links of the moment only (routes: sim/islroute.py).
"""
import tools  # noqa: F401  (portable folders on sys.path)
import contactplan
from world import ISL_MAX_MBPS


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
            if contactplan.link_margin_km(pa, pb) < 0:
                continue
            distance = ((pa[0] - pb[0]) ** 2 + (pa[1] - pb[1]) ** 2 + (pa[2] - pb[2]) ** 2) ** 0.5
            quality = contactplan.quality(distance, dark_a or dark_b)
            if quality <= 0:
                continue
            links.append({"from": ida, "to": idb, "distance_km": distance, "quality": quality,
                          "bandwidth_mbps": ISL_MAX_MBPS * quality,
                          "latency_ms": contactplan.latency_ms(distance)})
    return links
