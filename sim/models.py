"""The constants of MODELS.md, defined once (orbit, power, thermal, memory/CPU,
ISL link). Every spacecraft constant can be overridden per satellite with
`bus_config(overrides)`; the physical constants cannot.

Units are in the names or the comment beside them.
"""
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
# A polygon (lat, lon) roughly covering lat -50..0, lon -90..+40, with its core
# near (-27, -50). Intensity 0..1: 1 at the core, falling to SAA_EDGE_INTENSITY at
# the edge, times an altitude factor (the inner belt dips low over the South
# Atlantic: flux grows with altitude through LEO, negligible below ~200 km).
SAA_POLYGON = ((0.0, -90.0), (-5.0, -60.0), (0.0, -30.0), (-5.0, 0.0), (-10.0, 25.0),
               (-25.0, 40.0), (-40.0, 35.0), (-50.0, 10.0), (-50.0, -40.0),
               (-45.0, -75.0), (-30.0, -90.0))
SAA_CORE = (-27.0, -50.0)
SAA_CORE_RADIUS_DEG = 45.0      # distance from the core at which the shape factor reaches the edge value
SAA_EDGE_INTENSITY = 0.3
SAA_FLOOR_KM = 200.0            # below: no SAA effect
SAA_FULL_KM = 1000.0            # at and above: full intensity
SAA_MIN_INTENSITY = 0.05        # transits weaker than this are not hazards

# --- Spacecraft bus (a 6U-class default; every key overridable) ----------------
BUS_DEFAULTS = (
    ("battery_wh", 80.0),        # capacity
    ("initial_soc", 0.8),        # state of charge at start (0..1)
    ("solar_w", 45.0),           # array output in sunlight
    ("bus_load_w", 8.0),         # always-on platform load
    ("compute_w", 20.0),         # default power_w of a running step
    ("capacity_full_soc", 0.30),  # compute capacity 1.0 at or above
    ("capacity_half_soc", 0.15),  # 0.5 from here to full_soc; 0 below ("compute unavailable")
    ("critical_soc", 0.10),      # below: critical
    ("t_sun_c", 30.0),           # thermal equilibrium in sunlight, no compute
    ("t_eclipse_c", -10.0),      # in eclipse, no compute
    ("k_c_per_w", 2.0),          # heating per watt of compute load
    ("tau_s", 600.0),            # thermal time constant
    ("initial_temperature_c", 20.0),
    ("thermal_limit_c", 75.0),   # the agent's gate (STEPS.md); informative here
    ("memory_mb", 512.0),        # total RAM of the payload computer
    ("memory_base_mb", 64.0),    # used with no step running
    ("cpu_idle_percent", 5.0),   # CPU with no compute load
    ("storage_mb", 8192.0),
    ("downlink_mbps", 10.0),
)

# --- ISL link model --------------------------------------------------------------
ISL_RANGE_KM = 5000.0
ISL_DISTANCE_SLOPE = 0.6        # quality loss at full range
ISL_ECLIPSE_PENALTY = 0.9       # x when either endpoint is in eclipse
ISL_MAX_MBPS = 100.0
LIGHT_KM_S = 299792.458
ISL_HOP_OVERHEAD_S = 0.002


def bus_config(overrides=None):
    """A satellite's bus: the defaults updated by `overrides` (dict). Unknown keys
    or non-numeric values raise ValueError (a typo must not silently do nothing)."""
    cfg = {}
    for key, value in BUS_DEFAULTS:
        cfg[key] = value
    if overrides:
        for key in overrides:
            if key not in cfg:
                raise ValueError("unknown bus parameter %r" % (key,))
            value = overrides[key]
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError("bus parameter %r must be a number, got %r" % (key, value))
            cfg[key] = float(value)
    if cfg["battery_wh"] <= 0 or cfg["tau_s"] <= 0:
        raise ValueError("battery_wh and tau_s must be positive")
    if not 0 <= cfg["initial_soc"] <= 1:
        raise ValueError("initial_soc must be within 0..1")
    if not 0 <= cfg["capacity_half_soc"] <= cfg["capacity_full_soc"] <= 1:
        raise ValueError("need 0 <= capacity_half_soc <= capacity_full_soc <= 1")
    return cfg


def compute_capacity(soc, cfg):
    """Compute capacity available at state of charge `soc` (0..1): 1.0, 0.5 or 0."""
    if soc >= cfg["capacity_full_soc"]:
        return 1.0
    if soc >= cfg["capacity_half_soc"]:
        return 0.5
    return 0.0


def isl_quality(distance_km, either_in_eclipse):
    """Link quality 0..1 between two satellites `distance_km` apart (0 beyond range)."""
    if distance_km > ISL_RANGE_KM or distance_km < 0:
        return 0.0
    quality = 1.0 - (distance_km / ISL_RANGE_KM) * ISL_DISTANCE_SLOPE
    if either_in_eclipse:
        quality *= ISL_ECLIPSE_PENALTY
    return quality


def isl_hop(distance_km, either_in_eclipse):
    """{distance_km, quality, bandwidth_mbps, latency_ms, up} for one ISL hop."""
    quality = isl_quality(distance_km, either_in_eclipse)
    return {"distance_km": distance_km, "quality": quality, "up": quality > 0,
            "bandwidth_mbps": ISL_MAX_MBPS * quality,
            "latency_ms": (distance_km / LIGHT_KM_S + ISL_HOP_OVERHEAD_S) * 1000.0}
