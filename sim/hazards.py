"""Hazards along an orbit and the checkpoints they call for.

Two hazards: eclipses (battery only: a reset or brown-out is likeliest there)
and South Atlantic Anomaly transits (single-event upsets: checkpoint before,
scrub protected state more often inside; the intensity is
models.saa_intensity). `predict()` returns a dict shaped as
the `checkpoint.predicted` event payload (EVENTS.md) and the plan's `hazards`.
"""
import math

import models
import orbitscan
from orbitio import iso

DEFAULT_LEAD_S = 60.0            # checkpoint this long before a hazard starts
DEFAULT_CHECKPOINT_COST_S = 2.0  # time one checkpoint costs (for overhead_fraction)
SAA_SCRUB_INTERVAL_S = 30.0      # scrub protected state this often inside the SAA


def saa_transits(orb, t0, t1, step_s=models.WINDOW_STEP_S):
    """[(start, end, peak_intensity)] where the intensity is >= SAA_MIN_INTENSITY,
    boundaries bisected to WINDOW_TOLERANCE_S."""
    def level(t):
        return models.saa_intensity(*orb.subpoint(t)) - models.SAA_MIN_INTENSITY

    out = []
    start = None
    peak = 0.0
    t_prev = v_prev = None
    n = int(math.ceil((t1 - t0) / step_s))
    for i in range(n + 1):
        t = t0 + i * step_s if i < n else t1
        v = level(t)
        if v >= 0:
            if start is None:
                start = t0 if v_prev is None else orbitscan.refine_boundary(level, t_prev, t, v_prev)
                peak = 0.0
            peak = max(peak, v)
        elif start is not None:
            out.append((start, orbitscan.refine_boundary(level, t_prev, t, v_prev), peak + models.SAA_MIN_INTENSITY))
            start = None
        t_prev, v_prev = t, v
    if start is not None:
        out.append((start, t1, peak + models.SAA_MIN_INTENSITY))
    return out


def predict(orb, t0, t1, eclipses=None, checkpoint_interval_s=0.0, lead_s=DEFAULT_LEAD_S,
            checkpoint_cost_s=DEFAULT_CHECKPOINT_COST_S):
    """Hazards over [t0, t1] and a checkpoint schedule, as the payload of
    `checkpoint.predicted`. `eclipses`: [(start, end)] if already known (e.g. from
    a Timeline), else computed. A checkpoint is placed `lead_s` before each hazard
    and, with `checkpoint_interval_s` > 0, at least that often in between."""
    if t1 <= t0:
        raise ValueError("the prediction span must end after it starts")
    if eclipses is None:
        eclipses = orbitscan.scan(orb, t0, t1)[0]
    items = [("eclipse", a, b, None) for a, b in eclipses]
    items += [("saa", a, b, p) for a, b, p in saa_transits(orb, t0, t1)]
    items.sort(key=lambda h: h[1])
    hazards = []
    for i, (kind, a, b, peak) in enumerate(items):
        h = {"id": "hazard-%d" % (i + 1), "kind": kind, "start": iso(a), "end": iso(b),
             "duration_s": round(b - a, 1)}
        if kind == "eclipse":
            h["risk"] = "power"
        else:
            h["risk"] = "seu"
            h["intensity"] = round(peak, 3)
            h["scrub_interval_s"] = SAA_SCRUB_INTERVAL_S
        hazards.append(h)

    # checkpoints: before each hazard, and periodically in long quiet stretches
    times = []
    for i, (kind, a, b, _) in enumerate(items):
        at = max(t0, a - lead_s)
        times.append((at, hazards[i]["id"], "before_" + kind))
    if checkpoint_interval_s and checkpoint_interval_s > 0:
        before = sorted(times)
        last = t0
        k = 0
        periodic = []
        while True:
            nxt = last + checkpoint_interval_s
            while k < len(before) and before[k][0] <= nxt:
                last = before[k][0]
                k += 1
                nxt = last + checkpoint_interval_s
            if nxt >= t1:
                break
            periodic.append((nxt, None, "interval"))
            last = nxt
        times += periodic
    times.sort(key=lambda c: c[0])
    schedule = []
    last_at = None
    for at, hid, reason in times:
        if last_at is not None and at - last_at < lead_s and reason != "interval":
            continue   # one checkpoint already covers this hazard
        last_at = at
        entry = {"at": iso(at), "reason": reason}
        if hid is not None:
            entry["hazard_id"] = hid
        schedule.append(entry)

    # the longest stretch free of hazards
    safe = 0.0
    cursor = t0
    for _, a, b, _ in items:
        if a > cursor:
            safe = max(safe, a - cursor)
        cursor = max(cursor, b)
    safe = max(safe, t1 - cursor)
    return {"hazards_count": len(hazards), "checkpoints_count": len(schedule),
            "next_hazard": hazards[0] if hazards else None,
            "max_safe_window_s": round(safe, 1),
            "overhead_fraction": round(len(schedule) * checkpoint_cost_s / (t1 - t0), 6),
            "hazards": hazards, "checkpoint_schedule": schedule}
