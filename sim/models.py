"""The constants of MODELS.md, defined once (orbit, power, thermal, memory/CPU,
SAA), and the small models built on them. Every spacecraft constant can be
overridden per satellite with `bus_config(overrides)` (the defaults themselves
are in busdefaults.py, loaded only to build a bus); the physical constants
cannot. (The ISL link model lives with the only thing that has two satellites:
world.py.)

Units are in the names or the comment beside them. Names starting with `_` are
`const()`: folded into the code that uses them, they cost no RAM as globals.
"""
import math
import sys

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# --- Earth and orbit (WGS84 radius; EGM96-class mu and J2) ---------------------
R_EARTH_KM = 6378.137           # equatorial radius; also the shadow cylinder radius
MU_KM3_S2 = 398600.4418         # Earth's gravitational parameter
J2 = 1.08263e-3                 # second zonal harmonic
EARTH_FLATTENING = 1 / 298.257223563  # WGS84, for geodetic station positions and altitude
OBLIQUITY_DEG = 23.439          # low-precision sun ephemeris
MIN_ELEVATION_DEG = 5.0         # ground contact: a pass is elevation >= this
WINDOW_STEP_S = const(60)       # coarse step of the window search (extrema are checked too)
WINDOW_TOLERANCE_S = 0.5        # window boundaries refined to better than this (<= 1 s asked)

# --- South Atlantic Anomaly (hazard model) -------------------------------------
# A polygon (lat, lon pairs, flat; whole degrees) roughly covering lat -50..0,
# lon -90..+40, with its core near (-27, -50). Intensity 0..1: 1 at the core,
# falling to _SAA_EDGE_INTENSITY at the edge, times an altitude factor (the
# inner belt dips low over the South Atlantic: flux grows with altitude through
# LEO, negligible below ~200 km).
_SAA_POLYGON = const((0, -90, -5, -60, 0, -30, -5, 0, -10, 25, -25, 40, -40, 35,
                      -50, 10, -50, -40, -45, -75, -30, -90))
_SAA_CORE_LAT = const(-27)
_SAA_CORE_LON = const(-50)
_SAA_CORE_RADIUS_DEG = const(45)    # distance from the core at which the shape factor reaches the edge value
_SAA_EDGE_INTENSITY = const(0.3)
_SAA_FLOOR_KM = const(200)          # below: no SAA effect
_SAA_FULL_KM = const(1000)          # at and above: full intensity
SAA_MIN_INTENSITY = 0.05            # transits weaker than this are not hazards
# the polygon's lowest and highest latitudes: outside this band a point is
# outside it (the ray casting crosses no edge), whatever its longitude
SAA_LAT_MIN = const(-50)
SAA_LAT_MAX = const(0)


def bus_config(overrides=None):
    """A satellite's bus: the defaults of busdefaults.py (a 6U-class bus) updated
    by `overrides` (dict); ValueError for an unknown key or a bad value. The
    defaults are loaded for the call and, on MicroPython, dropped after unless
    someone else had loaded them: a node builds its bus once (docs/sim.md "Memory")."""
    loaded = "busdefaults" in sys.modules
    import busdefaults
    try:
        return busdefaults.bus_config(overrides)
    finally:
        if not loaded and sys.implementation.name == "micropython":
            del sys.modules["busdefaults"]


def compute_capacity(soc, cfg):
    """Compute capacity available at state of charge `soc` (0..1): 1.0, 0.5 or 0."""
    if soc >= cfg["capacity_full_soc"]:
        return 1.0
    if soc >= cfg["capacity_half_soc"]:
        return 0.5
    return 0.0


def saa_intensity(lat, lon, alt_km):
    """SAA intensity 0..1 at a geodetic point (degrees, km): 0 outside the
    polygon; inside, 1 at the core falling to _SAA_EDGE_INTENSITY at the edge,
    times an altitude factor that falls off to 0 at _SAA_FLOOR_KM (full at
    _SAA_FULL_KM and above)."""
    if lon > 180:
        lon -= 360
    poly = _SAA_POLYGON
    inside = False
    lat_j = poly[-2]
    lon_j = poly[-1]
    for i in range(0, len(poly), 2):   # ray casting in the (lon, lat) plane
        lat_i = poly[i]
        lon_i = poly[i + 1]
        if (lat_i > lat) != (lat_j > lat) and lon < lon_i + (lat - lat_i) * (lon_j - lon_i) / (lat_j - lat_i):
            inside = not inside
        lat_j = lat_i
        lon_j = lon_i
    if not inside:
        return 0.0
    dlat = lat - _SAA_CORE_LAT
    dlon = (lon - _SAA_CORE_LON) * math.cos(math.radians(lat))
    dist = math.sqrt(dlat * dlat + dlon * dlon)
    shape = 1 - (1 - _SAA_EDGE_INTENSITY) * min(1, dist / _SAA_CORE_RADIUS_DEG)
    alt_factor = (alt_km - _SAA_FLOOR_KM) / (_SAA_FULL_KM - _SAA_FLOOR_KM)
    return shape * max(0, min(1, alt_factor))
