"""The default ground-station network: real sites, spread in longitude and
latitude (polar sites see almost every orbit of a polar satellite; the rest
give low-inclination orbits their passes). Positions rounded to ~0.01 deg.

A station is a plain dict {id, name, lat, lon, alt_m} (degrees, metres).
"""

# (id, name, lat_deg, lon_deg, alt_m)
_NETWORK = (
    ("svalbard", "SvalSat, Svalbard", 78.23, 15.41, 500.0),
    ("fairbanks", "Fairbanks, Alaska", 64.97, -147.51, 380.0),
    ("kiruna", "Esrange, Kiruna", 67.88, 21.07, 340.0),
    ("wallops", "Wallops Island, Virginia", 37.92, -75.48, 10.0),
    ("hartebeesthoek", "Hartebeesthoek, South Africa", -25.89, 27.71, 1415.0),
    ("singapore", "Singapore", 1.35, 103.82, 20.0),
    ("santiago", "Santiago, Chile", -33.15, -70.67, 720.0),
    ("awarua", "Awarua, New Zealand", -46.53, 168.38, 10.0),
    ("mcmurdo", "McMurdo, Antarctica", -77.85, 166.67, 30.0),
)


def default_stations():
    """A fresh list of the default network's station dicts."""
    return [{"id": s[0], "name": s[1], "lat": s[2], "lon": s[3], "alt_m": s[4]} for s in _NETWORK]


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


def validate_station(s):
    """Check one station dict; returns it, or raises ValueError."""
    for key in ("id", "lat", "lon"):
        if key not in s:
            raise ValueError("station needs %r: %r" % (key, s))
    if not -90 <= s["lat"] <= 90 or not -180 <= s["lon"] <= 360:
        raise ValueError("station %r: latitude/longitude out of range" % (s["id"],))
    return s
