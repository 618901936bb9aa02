"""Orbit, sun, shadow and ground contacts (MODELS.md "Orbit"), portable.

Elements come from a TLE (both checksums checked) or from Keplerian elements
{altitude_km, inclination_deg, eccentricity, raan_deg, arg_perigee_deg,
mean_anomaly_deg, epoch}. Propagation is two-body plus the J2 secular drift of
RAAN, argument of perigee and mean anomaly; Kepler's equation by Newton.
Positions are ECI (true-equator, mean-equinox-like: what SGP4 calls TEME, to
the precision that matters here); GMST turns them into longitudes.

Times are Unix seconds (floats). Errors in the input raise ValueError.

    el = parse_tle(line1, line2)          # orbitio: read_tle_text, keplerian_elements
    orb = Orbit(el)
    orb.position(t) -> (x, y, z) km;  orb.subpoint(t) -> (lat, lon, alt_km)
    find_windows(orb, t0, t1, stations) -> [window dicts, by start]

What only the planner and the host tools need (TLE text, Keplerian elements,
ISO output, an orbit's summary) is in orbitio.py, which a node never loads.
"""
import math

import timeutil
from models import (R_EARTH_KM, MU_KM3_S2, J2, EARTH_FLATTENING, OBLIQUITY_DEG,
                    MIN_ELEVATION_DEG, WINDOW_STEP_S, WINDOW_TOLERANCE_S)

TWO_PI = 2 * math.pi
DEG = math.pi / 180
# Whole numbers where a float is not needed: each distinct float literal costs a
# node ~40 bytes of heap, and float arithmetic with an int gives the same result.
J2000_UNIX = 946728000          # 2000-01-01T12:00:00 (JD 2451545.0), UTC ~ UT1 here
DAY_S = 86400
_E2 = EARTH_FLATTENING * (2 - EARTH_FLATTENING)   # WGS84 first eccentricity squared


# --- input -----------------------------------------------------------------------

def tle_checksum(line):
    """TLE modulo-10 checksum of the first 68 characters (digits, '-' counts 1)."""
    total = 0
    for ch in line[:68]:
        if "0" <= ch <= "9":
            total += ord(ch) - 48
        elif ch == "-":
            total += 1
    return total % 10


def _tle_float(text, what):
    try:
        return float(text)
    except ValueError:
        raise ValueError("TLE: bad %s field %r" % (what, text))


def parse_tle(line1, line2, name=None):
    """Elements dict from the two lines of a TLE. ValueError when a line is
    malformed, a checksum is wrong or the two lines are not the same satellite."""
    line1 = line1.rstrip()
    line2 = line2.rstrip()
    for num, line in ((1, line1), (2, line2)):
        if len(line) < 69 or line[0] != str(num) or line[1] != " ":
            raise ValueError("TLE line %d: need 69 characters starting '%d '" % (num, num))
        if not line[68].isdigit() or tle_checksum(line) != int(line[68]):
            raise ValueError("TLE line %d: checksum mismatch (expected %d, line says %s)"
                             % (num, tle_checksum(line), line[68]))
    norad = line1[2:7].strip()
    if line2[2:7].strip() != norad:
        raise ValueError("TLE lines of two satellites (%s, %s)" % (norad, line2[2:7].strip()))
    yy = int(_tle_float(line1[18:20], "epoch year"))
    doy = _tle_float(line1[20:32], "epoch day")
    year = 1900 + yy if yy >= 57 else 2000 + yy
    epoch = timeutil.days_from_civil(year, 1, 1) * DAY_S + (doy - 1) * DAY_S
    ecc = _tle_float("0." + line2[26:33].strip(), "eccentricity")
    el = {
        "source": "tle", "name": (name or "").strip() or norad, "norad_id": norad,
        "epoch": epoch,
        "ndot_rev_day2": _tle_float(line1[33:43], "mean motion derivative"),
        "inclination_deg": _tle_float(line2[8:16], "inclination"),
        "raan_deg": _tle_float(line2[17:25], "RAAN"),
        "eccentricity": ecc,
        "arg_perigee_deg": _tle_float(line2[34:42], "argument of perigee"),
        "mean_anomaly_deg": _tle_float(line2[43:51], "mean anomaly"),
        "mean_motion_rev_day": _tle_float(line2[52:63], "mean motion"),
        "tle": (line1, line2),
    }
    return check_elements(el)


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


# --- time and sun ------------------------------------------------------------------

def gmst_rad(t):
    """Greenwich mean sidereal time (IAU 1982, UT1 ~ UTC) at Unix time t, radians."""
    d = (t - J2000_UNIX) / DAY_S
    c = d / 36525
    deg = 280.46061837 + 360.98564736629 * d + c * c * (0.000387933 - c / 38710000)
    return (deg % 360) * DEG


def sun_longitude_deg(t):
    """Ecliptic longitude of the Sun (low-precision almanac formula), degrees."""
    n = (t - J2000_UNIX) / DAY_S
    mean_lon = 280.460 + 0.9856474 * n
    g = (357.528 + 0.9856003 * n) * DEG
    return mean_lon + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g)


# --- stations ------------------------------------------------------------------------

def geodetic_to_ecef(lat_deg, lon_deg, alt_km):
    lat = lat_deg * DEG
    lon = lon_deg * DEG
    sl = math.sin(lat)
    cl = math.cos(lat)
    n = R_EARTH_KM / math.sqrt(1 - _E2 * sl * sl)
    return ((n + alt_km) * cl * math.cos(lon), (n + alt_km) * cl * math.sin(lon),
            (n * (1 - _E2) + alt_km) * sl)


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

    def ecef(self, t):
        x, y, z = self.position(t)
        th = gmst_rad(t)
        c = math.cos(th)
        s = math.sin(th)
        return (c * x + s * y, c * y - s * x, z)

    def subpoint(self, t):
        """(lat_deg, lon_deg, alt_km) geodetic, longitude in -180..180."""
        return ecef_to_geodetic(*self.ecef(t))

def _up(station):
    lat = station["lat"] * DEG
    lon = station["lon"] * DEG
    return (math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat))


def shadow_margin_km(pos, sun):
    """Signed distance (km) from the edge of the cylindrical shadow: negative in
    eclipse. Continuous across the terminator plane, so it can be bisected and its
    minima searched."""
    x, y, z = pos
    d = x * sun[0] + y * sun[1] + z * sun[2]
    r2 = x * x + y * y + z * z
    if d >= 0:
        return math.sqrt(r2) + d - R_EARTH_KM
    return math.sqrt(r2 - d * d) - R_EARTH_KM


# --- window search -------------------------------------------------------------------

def refine_boundary(fn, ta, tb, fa):
    """Bisect fn's sign change in [ta, tb] (fa = fn(ta)) to WINDOW_TOLERANCE_S."""
    neg_a = fa < 0
    while tb - ta > WINDOW_TOLERANCE_S:
        tm = (ta + tb) / 2
        if (fn(tm) < 0) == neg_a:
            ta = tm
        else:
            tb = tm
    return (ta + tb) / 2


_GOLD = 0.3819660112501051


def _extremum(fn, ta, tb, sign):
    """Golden-section search for the maximum of sign*fn on [ta, tb] -> (t, fn(t))."""
    c = ta + _GOLD * (tb - ta)
    d = tb - _GOLD * (tb - ta)
    fc = sign * fn(c)
    fd = sign * fn(d)
    while tb - ta > WINDOW_TOLERANCE_S:
        if fc >= fd:
            tb, d, fd = d, c, fc
            c = ta + _GOLD * (tb - ta)
            fc = sign * fn(c)
        else:
            ta, c, fc = c, d, fd
            d = tb - _GOLD * (tb - ta)
            fd = sign * fn(d)
    if fc >= fd:
        return c, sign * fc
    return d, sign * fd


def _tracker(fn, sign, margin, t_end, step_s):
    """Turns a sampled function into intervals where it is >= 0 (sign=+1) or
    < 0 (sign=-1): refines sign changes by bisection, and searches the extremum
    between samples when the samples come close to zero without crossing it, so a
    short interval between two samples is not missed. `margin` is the closest
    approach (in fn units) worth such a search.

    Returns add(t, v), to be called with each sample in time order, and
    finish() -> [(start, end, t_extremum, extremum)]. Closures rather than a class
    (a class costs a node ~0.7 KB of heap)."""
    pos = sign > 0              # inside is (v >= 0) == pos
    intervals = []
    start = best_t = best = None    # the interval open now and its best sample
    n = 0                       # samples seen; the last two are (tp, vp), (tq, vq)
    tp = vp = tq = vq = None

    def close(end):
        nonlocal start
        # the extremum lies within one step of the best sample
        lo = max(start, best_t - step_s)
        hi = min(end, best_t + step_s)
        if hi - lo > WINDOW_TOLERANCE_S:
            te, ve = _extremum(fn, lo, hi, sign)
            if sign * ve < sign * best:
                te, ve = best_t, best
        else:
            te, ve = best_t, best
        intervals.append((start, end, te, ve))
        start = None

    def add(t, v):
        nonlocal start, best_t, best, n, tp, vp, tq, vq
        if n == 0:
            if (v >= 0) == pos:
                start = t
                best_t, best = t, v
        else:
            was_in = (vp >= 0) == pos
            now_in = (v >= 0) == pos
            if now_in and not was_in:
                start = refine_boundary(fn, tp, t, vp)
                best_t, best = t, v
            elif was_in and not now_in:
                close(refine_boundary(fn, tp, t, vp))
            elif now_in:
                if sign * v > sign * best:
                    best_t, best = t, v
            elif n > 1:
                # sampled extremum outside the interval, but close to its edge
                if sign * vp >= sign * vq and sign * vp >= sign * v and sign * vp > -margin:
                    te, ve = _extremum(fn, tq, t, sign)
                    if (ve >= 0) == pos:
                        intervals.append((refine_boundary(fn, tq, te, vq), refine_boundary(fn, te, t, ve), te, ve))
        tq, vq = tp, vp
        tp, vp = t, v
        n += 1

    def finish():
        if start is not None:
            close(t_end)
        return intervals

    return add, finish


def scan(orbit, t0, t1, stations=(), min_elevation_deg=MIN_ELEVATION_DEG, step_s=WINDOW_STEP_S):
    """Eclipse intervals and passes over [t0, t1].

    Returns (eclipses, passes): eclipses as (start, end); passes as (station_index,
    start, end, t_peak, peak_elevation_deg). Boundaries within WINDOW_TOLERANCE_S;
    intervals cut by t0/t1 start/end there.

    Windows are where two functions change sign: the shadow margin (km, < 0 in
    eclipse) and, per station, sin(elevation) - sin(min elevation). They are
    closures here rather than a class (a class costs a node ~0.7 KB of heap)."""
    if t1 <= t0:
        raise ValueError("empty search span (t1 <= t0)")
    # Over one search the Sun is linear in ecliptic longitude (error < 0.001
    # deg/day^2): two trig calls per sample instead of a full ephemeris.
    lam0 = sun_longitude_deg(t0) * DEG
    lam_rate = (sun_longitude_deg(t0 + 3600) - sun_longitude_deg(t0 - 3600)) * DEG / 7200
    eps = OBLIQUITY_DEG * DEG
    cos_eps = math.cos(eps)
    sin_eps = math.sin(eps)
    sin_min = math.sin(min_elevation_deg * DEG)
    sites = []
    for s in stations:
        sites.append(geodetic_to_ecef(s["lat"], s["lon"], s.get("alt_m", 0) / 1000) + _up(s))
    # A cheap cone test skips the elevation of far-away stations: the satellite
    # is below (min elevation - 10 deg) when its geocentric direction is further
    # than this from the station's zenith.
    el_lo = max(min_elevation_deg - 10, -89) * DEG
    lam = math.pi / 2 - el_lo - math.asin(min(1, R_EARTH_KM * math.cos(el_lo) / (orbit.a * (1 + orbit.e))))
    cos_cone = math.cos(min(lam + 2 * DEG, math.pi))
    position = orbit.position

    def sun(t):
        lam = lam0 + lam_rate * (t - t0)
        s = math.sin(lam)
        return (math.cos(lam), cos_eps * s, sin_eps * s)

    def shadow(t):
        return shadow_margin_km(position(t), sun(t))

    def vis(x, y, z, r, site):
        sx, sy, sz, ux, uy, uz = site
        if x * ux + y * uy + z * uz < cos_cone * r:
            return -2   # outside the cone: well below the horizon
        rx = x - sx
        ry = y - sy
        rz = z - sz
        return (rx * ux + ry * uy + rz * uz) / math.sqrt(rx * rx + ry * ry + rz * rz) - sin_min

    def visibility(t, k):
        x, y, z = orbit.ecef(t)
        return vis(x, y, z, math.sqrt(x * x + y * y + z * z), sites[k])

    # shadow margin changes ~8 km/s at the terminator: a 200 km margin covers any dip between samples
    ecl_add, ecl_finish = _tracker(shadow, -1, 200, t1, step_s)
    adds = []       # per station
    finishes = []
    for k in range(len(sites)):
        add, finish = _tracker(lambda t, k=k: visibility(t, k), 1, 0.2, t1, step_s)
        adds.append(add)
        finishes.append(finish)
    n_steps = int(math.ceil((t1 - t0) / step_s))
    for i in range(n_steps + 1):
        t = t0 + i * step_s if i < n_steps else t1
        x, y, z = position(t)
        ecl_add(t, shadow_margin_km((x, y, z), sun(t)))
        if adds:
            th = gmst_rad(t)
            c = math.cos(th)
            s = math.sin(th)
            xe = c * x + s * y
            ye = c * y - s * x
            r = math.sqrt(x * x + y * y + z * z)
            for k in range(len(adds)):
                adds[k](t, vis(xe, ye, z, r, sites[k]))
    eclipses = [(a, b) for a, b, _, _ in ecl_finish()]
    eclipses.sort()
    passes = []
    for k in range(len(finishes)):
        for a, b, tp, vp in finishes[k]():
            el = math.asin(max(-1, min(1, vp + sin_min))) / DEG
            passes.append((k, a, b, tp, el))
    passes.sort(key=lambda p: p[1])
    return eclipses, passes


def _window(wid, kind, start, end, **extra):
    w = {"id": wid, "kind": kind, "start": start, "end": end,
         "duration_s": round(end - start, 1)}
    for key in extra:
        w[key] = extra[key]
    return w


def find_windows(orbit, t0, t1, stations=(), min_elevation_deg=MIN_ELEVATION_DEG,
                 step_s=WINDOW_STEP_S):
    """Sunlit, eclipse and contact windows over [t0, t1], sorted by start.

    A window is {id, kind: sunlit|eclipse|contact, start, end (Unix s),
    duration_s, station?, elevation_peak_deg?}; `orbitio.as_iso()` converts for output.
    Sunlit and eclipse windows tile [t0, t1]; a contact is per station."""
    eclipses, passes = scan(orbit, t0, t1, stations, min_elevation_deg, step_s)
    out = []
    t = t0
    n_sun = n_ecl = 0
    for a, b in eclipses:
        if a - t > 0:
            n_sun += 1
            out.append(_window("sunlit-%d" % n_sun, "sunlit", t, a))
        n_ecl += 1
        out.append(_window("eclipse-%d" % n_ecl, "eclipse", a, b))
        t = b
    if t1 - t > 0:
        n_sun += 1
        out.append(_window("sunlit-%d" % n_sun, "sunlit", t, t1))
    for i, (k, a, b, tp, el) in enumerate(passes):
        out.append(_window("contact-%d" % (i + 1), "contact", a, b, station=stations[k]["id"],
                           elevation_peak_deg=round(el, 2)))
    out.sort(key=lambda w: (w["start"], w["kind"]))
    return out
