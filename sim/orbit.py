"""Orbit propagation and geodetic position (MODELS.md "Orbit"), portable.

Elements come from a TLE (tle.py: both checksums checked) or from Keplerian elements
{altitude_km, inclination_deg, eccentricity, raan_deg, arg_perigee_deg,
mean_anomaly_deg, epoch}. Propagation is two-body plus the J2 secular drift of
RAAN, argument of perigee and mean anomaly; Kepler's equation by Newton.
Positions are ECI (true-equator, mean-equinox-like: what SGP4 calls TEME, to
the precision that matters here); GMST turns them into longitudes.

Times are Unix seconds (floats). Errors in the input raise ValueError.

    el = parse_tle(line1, line2)          # orbitio: read_tle_text, keplerian_elements
    orb = Orbit(el)
    orb.position(t) -> (x, y, z) km;  orb.subpoint(t) -> (lat, lon, alt_km)

The window search (sun, shadow, eclipses and contacts) is in orbitscan.py, which
a node loads only while it extends its windows; what only the planner and the
host tools need (TLE text, Keplerian elements, ISO output, an orbit's summary)
is in orbitio.py, which a node never loads.
"""
import math
import sys

from models import R_EARTH_KM, MU_KM3_S2, J2, EARTH_FLATTENING

TWO_PI = 2 * math.pi
DEG = math.pi / 180
# Whole numbers where a float is not needed: each distinct float literal costs a
# node ~40 bytes of heap, and float arithmetic with an int gives the same result.
J2000_UNIX = 946728000          # 2000-01-01T12:00:00 (JD 2451545.0), UTC ~ UT1 here
DAY_S = 86400
_E2 = EARTH_FLATTENING * (2 - EARTH_FLATTENING)   # WGS84 first eccentricity squared


# --- input -----------------------------------------------------------------------

def parse_tle(line1, line2, name=None):
    """Elements dict from the two lines of a TLE (tle.parse_tle: ValueError for a
    malformed line, a wrong checksum, two satellites). The reader is an overlay:
    loaded for the call and, on MicroPython, dropped after unless someone else
    had loaded it; a node reads its TLE once (docs/sim.md "Memory")."""
    loaded = "tle" in sys.modules
    import tle
    try:
        return tle.parse_tle(line1, line2, name)
    finally:
        if not loaded and sys.implementation.name == "micropython":
            del sys.modules["tle"]


def check_elements(el):
    """The elements dict itself, or ValueError when it cannot be an orbit."""
    e = el["eccentricity"]
    if not 0 <= e < 1:
        raise ValueError("eccentricity %r outside [0, 1)" % (e,))
    if not 0 <= el["inclination_deg"] <= 180:
        raise ValueError("inclination %r outside 0..180 deg" % (el["inclination_deg"],))
    if el["mean_motion_rev_day"] <= 0:
        raise ValueError("mean motion must be positive")
    return el


# --- time --------------------------------------------------------------------------

def gmst_rad(t):
    """Greenwich mean sidereal time (IAU 1982, UT1 ~ UTC) at Unix time t, radians."""
    d = (t - J2000_UNIX) / DAY_S
    c = d / 36525
    deg = 280.46061837 + 360.98564736629 * d + c * c * (0.000387933 - c / 38710000)
    return (deg % 360) * DEG


# --- geodetic ------------------------------------------------------------------------

def ecef_to_geodetic(x, y, z):
    """(lat_deg, lon_deg, alt_km) on the WGS84 ellipsoid (4 fixed-point iterations)."""
    p = math.sqrt(x * x + y * y)
    lon = math.atan2(y, x)
    lat = math.atan2(z, p * (1 - _E2))
    for _ in range(4):
        sl = math.sin(lat)
        n = R_EARTH_KM / math.sqrt(1 - _E2 * sl * sl)
        cl = math.cos(lat)
        alt = p / cl - n if cl > 1e-9 else abs(z) - n * (1 - _E2)
        lat = math.atan2(z, p * (1 - _E2 * n / (n + alt)))
    return lat / DEG, lon / DEG, alt


# --- the orbit -------------------------------------------------------------------------

class Orbit:
    """Mean elements propagated with J2 secular rates. For a TLE the Kozai mean
    motion is converted to Brouwer's (as SGP4 does), and the TLE's ndot/2 term
    adds the drag-driven drift of the mean anomaly."""

    def __init__(self, elements):
        el = check_elements(elements)
        self.elements = el
        self.epoch = el["epoch"]
        e = el["eccentricity"]
        inc = el["inclination_deg"] * DEG
        n_rad_s = el["mean_motion_rev_day"] * TWO_PI / DAY_S
        cos_i = math.cos(inc)
        beta2 = 1 - e * e
        beta = math.sqrt(beta2)
        if el["source"] == "tle":
            # Kozai -> Brouwer mean motion and semi-major axis (Hoots & Roehrich 1980).
            k = 3 * J2 / 4 * (3 * cos_i * cos_i - 1)   # 1.5 k2 x3, k2 = J2 / 2
            a1 = (MU_KM3_S2 / n_rad_s ** 2) ** (1 / 3) / R_EARTH_KM
            d1 = k / (a1 * a1 * beta * beta2)
            a0 = a1 * (1 - d1 * (1 / 3 + d1 * (1 + 134 / 81 * d1)))
            d0 = k / (a0 * a0 * beta * beta2)
            n_rad_s = n_rad_s / (1 + d0)
            a = a0 / (1 - d0) * R_EARTH_KM
        else:
            a = R_EARTH_KM + el["altitude_km"]
        if a * (1 - e) <= R_EARTH_KM:
            raise ValueError("perigee %.1f km is below the Earth's surface" % (a * (1 - e) - R_EARTH_KM))
        p = a * beta2
        q = J2 * (R_EARTH_KM / p) ** 2 * n_rad_s
        self.a = a
        self.e = e
        self.n = n_rad_s
        self.cos_i = cos_i
        self.sin_i = math.sin(inc)
        self.beta = beta
        self.raan0 = el["raan_deg"] * DEG
        self.argp0 = el["arg_perigee_deg"] * DEG
        self.m0 = el["mean_anomaly_deg"] * DEG
        self.raan_rate = -3 * q / 2 * cos_i
        self.argp_rate = 3 * q / 4 * (5 * cos_i * cos_i - 1)
        self.m_rate = n_rad_s + 3 * q / 4 * beta * (3 * cos_i * cos_i - 1)
        # TLE ndot/2 (rev/day^2) -> rad/s^2 coefficient of dt^2
        self.m_accel = el.get("ndot_rev_day2", 0) * TWO_PI / (DAY_S * DAY_S)
        self.period_s = TWO_PI / self.m_rate

    def position(self, t):
        """ECI position (km) at Unix time t."""
        dt = t - self.epoch
        m = (self.m0 + self.m_rate * dt + self.m_accel * dt * dt) % TWO_PI
        e = self.e
        ecc_anom = m + e * math.sin(m)
        for _ in range(12):
            step = (ecc_anom - e * math.sin(ecc_anom) - m) / (1 - e * math.cos(ecc_anom))
            ecc_anom -= step
            if step * step < 1e-24:
                break
        ce = math.cos(ecc_anom)
        r = self.a * (1 - e * ce)
        u = self.argp0 + self.argp_rate * dt + math.atan2(self.beta * math.sin(ecc_anom), ce - e)
        raan = self.raan0 + self.raan_rate * dt
        cu = math.cos(u)
        su = math.sin(u)
        co = math.cos(raan)
        so = math.sin(raan)
        ci = self.cos_i
        return (r * (co * cu - so * su * ci), r * (so * cu + co * su * ci), r * su * self.sin_i)

    def ecef(self, t, eci=None):
        """ECEF position (km) at t; eci: position(t) when the caller has it."""
        x, y, z = eci or self.position(t)
        th = gmst_rad(t)
        c = math.cos(th)
        s = math.sin(th)
        return (c * x + s * y, c * y - s * x, z)

    def subpoint(self, t, eci=None):
        """(lat_deg, lon_deg, alt_km) geodetic, longitude in -180..180."""
        return ecef_to_geodetic(*self.ecef(t, eci))
