"""The contact plan (MODELS.md "ISL link model"): every pair's inter-satellite
link windows over a horizon, each with its quality, bandwidth and latency as
they change, from the propagated positions. Portable (pure Python).

    plan = compute([(sat_id, orbit.Orbit), ...], t0, t1)
    plan["windows"] -> [window, ...] sorted by start, each
        {"a", "b" (satellite ids, a < b in fleet order), "start", "end" (Unix s),
         "t": [sample times: start, the grid times inside, end],
         "distance_km": [at each sample], "dark": [either end in eclipse, each sample],
         "latency_ms": [at each sample: distance / c + 2 ms],
         "quality": [per segment t[i]..t[i+1]: the lower of its two samples],
         "bandwidth_mbps": [per segment: 100 Mbps x quality],
         "quality_min", "quality_max"}

A link is up while the two satellites are within ISL_RANGE_KM and the segment
between them passes at least LOS_CLEARANCE_KM above the Earth (R = 6378.137
km). The search samples every satellite on one grid of `step_s` and skips
ahead for a pair that is far out of range (the distance cannot shrink faster
than the two orbital speeds together), then bisects each edge to
EDGE_TOLERANCE_S, keeping the inner end: the link is up over the whole window
as reported. Where the samples come within half a step's worth of motion of a
link without one, the margin's maximum between them is searched, so a window
shorter than the step is found too.
"""
import math

from models import R_EARTH_KM, MU_KM3_S2, OBLIQUITY_DEG
from orbit import DEG
from orbitscan import shadow_margin_km, sun_longitude_deg
from world import ISL_RANGE_KM, ISL_DISTANCE_SLOPE, ISL_ECLIPSE_PENALTY, ISL_MAX_MBPS, \
    LIGHT_KM_S, ISL_HOP_OVERHEAD_S

LOS_CLEARANCE_KM = 100.0        # the line of sight must pass this far above the surface
STEP_S = 60                     # the grid every satellite is sampled on
EDGE_TOLERANCE_S = 0.5          # window edges bisected to better than this (<= 1 s asked)

_LOS_R_KM = R_EARTH_KM + LOS_CLEARANCE_KM
_COS_EPS = math.cos(OBLIQUITY_DEG * DEG)
_SIN_EPS = math.sin(OBLIQUITY_DEG * DEG)


def sun_direction(t):
    """Unit vector Earth -> Sun at t (the almanac's ecliptic longitude)."""
    lam = sun_longitude_deg(t) * DEG
    s = math.sin(lam)
    return (math.cos(lam), _COS_EPS * s, _SIN_EPS * s)


def link_margin_km(p, q):
    """How far (km) two positions are inside the link condition: the smaller of
    (range - distance) and the line of sight's height above R_E + 100 km.
    Negative: no link. Continuous in time, so its sign changes can be bisected."""
    ux = q[0] - p[0]
    uy = q[1] - p[1]
    uz = q[2] - p[2]
    uu = ux * ux + uy * uy + uz * uz
    range_margin = ISL_RANGE_KM - math.sqrt(uu)
    pu = p[0] * ux + p[1] * uy + p[2] * uz
    pp = p[0] * p[0] + p[1] * p[1] + p[2] * p[2]
    if uu > 0 and 0 < -pu < uu:     # the closest point to the centre lies between them
        closest2 = pp - pu * pu / uu
    else:
        closest2 = min(pp, q[0] * q[0] + q[1] * q[1] + q[2] * q[2])
    los_margin = math.sqrt(max(0.0, closest2)) - _LOS_R_KM
    return range_margin if range_margin < los_margin else los_margin


def quality(distance_km, either_dark):
    """MODELS.md: 1 - (d / 5000) * 0.6, x 0.9 when either end is in eclipse."""
    q = 1.0 - (distance_km / ISL_RANGE_KM) * ISL_DISTANCE_SLOPE
    return q * ISL_ECLIPSE_PENALTY if either_dark else q


def latency_ms(distance_km):
    return (distance_km / LIGHT_KM_S + ISL_HOP_OVERHEAD_S) * 1000.0


def _max_speed_km_s(orb):
    # vis-viva at perigee: the fastest the satellite ever moves
    a = orb.a
    rp = a * (1 - orb.e)
    return math.sqrt(MU_KM3_S2 * (2 / rp - 1 / a))


def compute(sats, t0, t1, step_s=STEP_S, keep=None):
    """The contact plan of `sats` [(sat_id, Orbit)] over [t0, t1] (Unix s):
    {"t0", "t1", "step_s", "satellites": [ids], "windows": [...]} (module doc).
    ValueError for an empty span or a repeated satellite id. keep: a dict
    given the search's samples, for a caller that needs them too: "grid"
    [times], "pos" {sat_id: [ECI position at each grid time]}."""
    if t1 <= t0:
        raise ValueError("empty horizon (t1 <= t0)")
    if step_s <= 0:
        raise ValueError("step_s must be positive")
    ids = [sid for sid, _ in sats]
    if len(set(ids)) != len(ids):
        raise ValueError("a satellite id appears twice")
    n = int(math.ceil((t1 - t0) / step_s))
    grid = [t0 + k * step_s for k in range(n)] + [t1]
    orbits = [orb for _, orb in sats]
    pos = [[orb.position(t) for t in grid] for orb in orbits]
    if keep is not None:
        keep["grid"] = grid
        keep["pos"] = dict(zip(ids, pos))
    speeds = [_max_speed_km_s(orb) for orb in orbits]
    suns = {}           # grid index -> sun vector, filled as windows need it
    dark = [{} for _ in sats]

    def dark_at(i, k):
        d = dark[i]
        v = d.get(k)
        if v is None:
            sun = suns.get(k)
            if sun is None:
                sun = suns[k] = sun_direction(grid[k])
            v = d[k] = shadow_margin_km(pos[i][k], sun) < 0
        return v

    windows = []
    last = len(grid) - 1
    rng2 = ISL_RANGE_KM * ISL_RANGE_KM
    for i in range(len(sats)):
        pi = pos[i]
        for j in range(i + 1, len(sats)):
            pj = pos[j]
            jump_km = (speeds[i] + speeds[j]) * step_s   # the most the distance can shrink in a step
            near_km = jump_km / 2       # a window between samples has a sample within this of the link
            oi, oj = orbits[i], orbits[j]
            k = 0
            inside = False
            start = None
            m1 = m2 = None              # the margins of the two samples before this one (None: not sampled)
            while k <= last:
                p = pi[k]
                q = pj[k]
                dx = p[0] - q[0]
                dy = p[1] - q[1]
                dz = p[2] - q[2]
                d2 = dx * dx + dy * dy + dz * dz
                if d2 > rng2:
                    margin = ISL_RANGE_KM - math.sqrt(d2)   # at least as high as the link margin
                    if not inside:
                        # out of range until at least (d - range) / speed from now
                        skip = int(-margin / jump_km)
                        if skip > 1:
                            k += skip      # sample k + skip - 1 is known out too
                            m1 = m2 = None  # (and far from a short window)
                            continue
                else:
                    margin = link_margin_km(p, q)
                up = margin >= 0
                if not up and not inside and m1 is not None and m1 > -near_km and m1 >= margin \
                        and (m2 is None or m1 >= m2):
                    # the samples came close without a link: a window shorter than the step?
                    w = _short_window(oi, oj, grid[k - 2] if m2 is not None else grid[k - 1], grid[k])
                    if w is not None:
                        windows.append(_window(ids[i], ids[j], i, j, w[0], w[1], k, k - 1, grid, pos,
                                               oi, oj, dark_at))
                m2 = m1
                m1 = margin
                if up and not inside:
                    inside = True
                    start = t0 if k == 0 else _edge(oi, oj, grid[k - 1], grid[k], False)
                    first = k
                elif inside and not up:
                    inside = False
                    windows.append(_window(ids[i], ids[j], i, j, start, _edge(oi, oj, grid[k - 1], grid[k], True),
                                           first, k - 1, grid, pos, oi, oj, dark_at))
                k += 1
            if inside:
                windows.append(_window(ids[i], ids[j], i, j, start, t1, first, last, grid, pos, oi, oj, dark_at))
            elif m1 is not None and m2 is not None and m1 > -near_km and m1 >= m2:
                w = _short_window(oi, oj, grid[last - 1], grid[last])   # rising at the very end
                if w is not None:
                    windows.append(_window(ids[i], ids[j], i, j, w[0], w[1], last + 1, last, grid, pos,
                                           oi, oj, dark_at))
    windows.sort(key=lambda w: (w["start"], w["a"], w["b"]))
    return {"t0": t0, "t1": t1, "step_s": step_s, "satellites": ids, "windows": windows}


def _edge(oa, ob, ta, tb, up_at_a):
    """The time the link changes state in [ta, tb], bisected to EDGE_TOLERANCE_S;
    the end at which the link is up (inner end of the window)."""
    while tb - ta > EDGE_TOLERANCE_S:
        tm = (ta + tb) / 2
        if (link_margin_km(oa.position(tm), ob.position(tm)) >= 0) == up_at_a:
            ta = tm
        else:
            tb = tm
    return ta if up_at_a else tb


_GOLD = 0.3819660112501051


def _short_window(oa, ob, ta, tb):
    """(start, end) of a link shorter than the step between two samples without
    one, or None: the margin's maximum on [ta, tb] by golden section, then its
    two edges bisected."""
    def f(t):
        return link_margin_km(oa.position(t), ob.position(t))

    c = ta + _GOLD * (tb - ta)
    d = tb - _GOLD * (tb - ta)
    fc = f(c)
    fd = f(d)
    lo, hi = ta, tb
    while hi - lo > EDGE_TOLERANCE_S:
        if fc >= fd:
            hi, d, fd = d, c, fc
            c = lo + _GOLD * (hi - lo)
            fc = f(c)
        else:
            lo, c, fc = c, d, fd
            d = hi - _GOLD * (hi - lo)
            fd = f(d)
    te, fe = (c, fc) if fc >= fd else (d, fd)
    if fe < 0:
        return None
    return _edge(oa, ob, ta, te, False), _edge(oa, ob, te, tb, True)


def _sample(oa, ob, t):
    p = oa.position(t)
    q = ob.position(t)
    d = math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 + (p[2] - q[2]) ** 2)
    sun = sun_direction(t)
    return d, shadow_margin_km(p, sun) < 0 or shadow_margin_km(q, sun) < 0


def _window(a, b, i, j, start, end, k_first, k_last, grid, pos, oa, ob, dark_at):
    """A window's samples: its two edges and the grid times strictly inside."""
    ts = [start]
    ds = []
    darks = []
    d, dk = _sample(oa, ob, start)
    ds.append(d)
    darks.append(dk)
    for k in range(k_first, k_last + 1):
        t = grid[k]
        if start < t < end:
            p = pos[i][k]
            q = pos[j][k]
            ts.append(t)
            ds.append(math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 + (p[2] - q[2]) ** 2))
            darks.append(dark_at(i, k) or dark_at(j, k))
    if end > start:
        d, dk = _sample(oa, ob, end)
        ts.append(end)
        ds.append(d)
        darks.append(dk)
    qs = [quality(ds[m], darks[m]) for m in range(len(ts))]
    seg_q = [min(qs[m], qs[m + 1]) for m in range(len(ts) - 1)]
    return {"a": a, "b": b, "start": start, "end": end, "t": ts, "distance_km": ds, "dark": darks,
            "latency_ms": [latency_ms(d) for d in ds], "quality": seg_q,
            "bandwidth_mbps": [ISL_MAX_MBPS * x for x in seg_q],
            "quality_min": min(qs), "quality_max": max(qs)}


def pair_windows(plan, a, b):
    """The windows between satellites a and b (either order), by start."""
    return [w for w in plan["windows"] if (w["a"] == a and w["b"] == b) or (w["a"] == b and w["b"] == a)]
