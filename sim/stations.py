"""The default ground-station network: real sites, spread in longitude and
latitude (polar sites see almost every orbit of a polar satellite; the rest
give low-inclination orbits their passes). Positions rounded to ~0.01 deg.

A station is a plain dict {id, name, lat, lon, alt_m} (degrees, metres).
"""

# id, name, lat and lon in hundredths of a degree, alt_m: whole numbers here
# (a float constant costs a node more RAM than the small int it is made from)
_NETWORK = (
    "svalbard", "SvalSat, Svalbard", 7823, 1541, 500,
    "fairbanks", "Fairbanks, Alaska", 6497, -14751, 380,
    "kiruna", "Esrange, Kiruna", 6788, 2107, 340,
    "wallops", "Wallops Island, Virginia", 3792, -7548, 10,
    "hartebeesthoek", "Hartebeesthoek, South Africa", -2589, 2771, 1415,
    "singapore", "Singapore", 135, 10382, 20,
    "santiago", "Santiago, Chile", -3315, -7067, 720,
    "awarua", "Awarua, New Zealand", -4653, 16838, 10,
    "mcmurdo", "McMurdo, Antarctica", -7785, 16667, 30,
)


def default_stations():
    """A fresh list of the default network's station dicts."""
    n = _NETWORK
    return [{"id": n[i], "name": n[i + 1], "lat": n[i + 2] / 100, "lon": n[i + 3] / 100,
             "alt_m": float(n[i + 4])} for i in range(0, len(n), 5)]


def select_stations(ids=None, stations=None):
    """Stations by id from `stations` (default network if None); all of them when
    `ids` is None. An unknown id raises ValueError naming the known ones."""
    pool = default_stations() if stations is None else stations
    if ids is None:
        return list(pool)
    by_id = {}
    for s in pool:
        by_id[s["id"]] = s
    out = []
    for sid in ids:
        if sid not in by_id:
            raise ValueError("unknown station %r (known: %s)" % (sid, ", ".join(sorted(by_id))))
        out.append(by_id[sid])
    return out
