"""The window search (docs/sim.md "Window search"), portable: eclipse and
contact windows of an orbit.Orbit over a span of time.

    eclipses, passes = scan(orb, t0, t1, stations)     # tuples (what a node keeps)
    find_windows(orb, t0, t1, stations) -> [window dicts, by start]
    add_window(timeline, w, seam)                      # a Timeline's window dicts

Kept out of orbit.py so that a node, which propagates its orbit every few
seconds but searches for windows once an hour of simulated time, loads this only
while it searches: spacecraft.Timeline imports it to extend its windows and, on
MicroPython, drops it from sys.modules right after. The planner, the world, the
hazards, the host tools and the tests import it directly.
"""
import math

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

from models import (R_EARTH_KM, OBLIQUITY_DEG, MIN_ELEVATION_DEG, WINDOW_STEP_S,
                    WINDOW_TOLERANCE_S)
from orbit import DEG, J2000_UNIX, DAY_S, _E2, gmst_rad


# --- sun, stations, shadow ---------------------------------------------------------

def sun_longitude_deg(t):
    """Ecliptic longitude of the Sun (low-precision almanac formula), degrees."""
    n = (t - J2000_UNIX) / DAY_S
    mean_lon = 280.460 + 0.9856474 * n
    g = (357.528 + 0.9856003 * n) * DEG
    return mean_lon + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g)


def geodetic_to_ecef(lat_deg, lon_deg, alt_km):
    lat = lat_deg * DEG
    lon = lon_deg * DEG
    sl = math.sin(lat)
    cl = math.cos(lat)
    n = R_EARTH_KM / math.sqrt(1 - _E2 * sl * sl)
    return ((n + alt_km) * cl * math.cos(lon), (n + alt_km) * cl * math.sin(lon),
            (n * (1 - _E2) + alt_km) * sl)


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


# --- the search ------------------------------------------------------------------------

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


# A tracker turns a sampled function into the intervals where it is >= 0
# (sign=+1) or < 0 (sign=-1): it refines sign changes by bisection, and
# searches the extremum between samples when the samples come close to zero
# without crossing it, so a short interval between two samples is not missed
# (`margin`: the closest approach, in the function's units, worth such a
# search). Its state is one small list per tracked function, fed by _track():
# a search tracks the shadow and every station at once, and closures (or an
# object) per tracker cost ~1.1 KB each on a node, where it runs in what the
# agent leaves of the heap (docs/sim.md "Memory").
_START = const(0)   # the interval open now (None: none), its best sample (t, v)
_BEST_T = const(1)
_BEST = const(2)
_N = const(3)       # samples seen; the last two are (tp, vp), (tq, vq)
_TP = const(4)
_VP = const(5)
_TQ = const(6)
_VQ = const(7)
_FOUND = const(8)   # [(start, end, t_extremum, extremum)]


def _tracker():
    return [None, None, None, 0, None, None, None, None, []]


def _close(st, fn, sign, step_s, end):
    # the extremum lies within one step of the best sample
    start, best_t, best = st[_START], st[_BEST_T], st[_BEST]
    lo = max(start, best_t - step_s)
    hi = min(end, best_t + step_s)
    if hi - lo > WINDOW_TOLERANCE_S:
        te, ve = _extremum(fn, lo, hi, sign)
        if sign * ve < sign * best:
            te, ve = best_t, best
    else:
        te, ve = best_t, best
    st[_FOUND].append((start, end, te, ve))
    st[_START] = None


def _at(fn, k):
    """fn(t, k) as a function of t alone (made only when a sample needs a refinement)."""
    return lambda t: fn(t, k)


def _track(st, fn, k, sign, margin, step_s, t, v):
    """The next sample (t, v = fn(t, k)), in time order, into tracker st."""
    pos = sign > 0              # inside is (v >= 0) == pos
    n = st[_N]
    tp, vp = st[_TP], st[_VP]
    if n == 0:
        if (v >= 0) == pos:
            st[_START] = t
            st[_BEST_T], st[_BEST] = t, v
    else:
        was_in = (vp >= 0) == pos
        now_in = (v >= 0) == pos
        if now_in and not was_in:
            st[_START] = refine_boundary(_at(fn, k), tp, t, vp)
            st[_BEST_T], st[_BEST] = t, v
        elif was_in and not now_in:
            f = _at(fn, k)
            _close(st, f, sign, step_s, refine_boundary(f, tp, t, vp))
        elif now_in:
            if sign * v > sign * st[_BEST]:
                st[_BEST_T], st[_BEST] = t, v
        elif n > 1:
            # sampled extremum outside the interval, but close to its edge
            tq, vq = st[_TQ], st[_VQ]
            if sign * vp >= sign * vq and sign * vp >= sign * v and sign * vp > -margin:
                f = _at(fn, k)
                te, ve = _extremum(f, tq, t, sign)
                if (ve >= 0) == pos:
                    st[_FOUND].append((refine_boundary(f, tq, te, vq),
                                       refine_boundary(f, te, t, ve), te, ve))
    st[_TQ], st[_VQ] = tp, vp
    st[_TP], st[_VP] = t, v
    st[_N] = n + 1


def _finish(st, fn, k, sign, step_s, t_end):
    """Tracker st's intervals, the one still open ending at t_end."""
    if st[_START] is not None:
        _close(st, _at(fn, k), sign, step_s, t_end)
    return st[_FOUND]


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

    def shadow(t, _k):
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
    ecl = _tracker()
    trackers = [_tracker() for _ in sites]    # per station
    n_steps = int(math.ceil((t1 - t0) / step_s))
    for i in range(n_steps + 1):
        t = t0 + i * step_s if i < n_steps else t1
        x, y, z = position(t)
        _track(ecl, shadow, None, -1, 200, step_s, t, shadow_margin_km((x, y, z), sun(t)))
        if trackers:
            th = gmst_rad(t)
            c = math.cos(th)
            s = math.sin(th)
            xe = c * x + s * y
            ye = c * y - s * x
            r = math.sqrt(x * x + y * y + z * z)
            for k in range(len(trackers)):
                _track(trackers[k], visibility, k, 1, 0.2, step_s, t, vis(xe, ye, z, r, sites[k]))
    eclipses = [(a, b) for a, b, _, _ in _finish(ecl, shadow, None, -1, step_s, t1)]
    eclipses.sort()
    passes = []
    for k in range(len(trackers)):
        for a, b, tp, vp in _finish(trackers[k], visibility, k, 1, step_s, t1):
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


def add_window(tl, w, seam):
    """Add a window dict found in the chunk from `seam` to a spacecraft.Timeline
    built with windows=True (the world's and the planner's); one cut by the seam
    is continued. Here, not in Timeline, because only a search makes window dicts:
    a node's Timeline keeps none, so it never holds this code."""
    kind = w["kind"]
    if kind == "sunlit":
        n = tl._counts[kind] + 1
    else:
        n = tl._add(w["start"], w["end"], w.get("station"), w.get("elevation_peak_deg"), seam)
    if w["start"] == seam and seam > tl.start:
        for old in reversed(tl.windows):   # continue a window cut by the seam
            if old["kind"] == kind and old["end"] == seam and old.get("station") == w.get("station"):
                old["end"] = w["end"]
                old["duration_s"] = round(old["end"] - old["start"], 1)
                if "elevation_peak_deg" in w:
                    old["elevation_peak_deg"] = max(old["elevation_peak_deg"], w["elevation_peak_deg"])
                return
    tl._counts[kind] = n
    w["id"] = "%s-%d" % (kind, n)
    tl.windows.append(w)
