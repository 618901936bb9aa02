"""Plan versus actual: a deployment's predicted event stream beside the one its
agent executed, aligned, with every divergence marked and explained.

Rows are aligned on (type, step_id) with a longest-matching-blocks diff:

    =  executed as predicted (timestamps within the tolerance)
    ~  the same event, at another time (how far off is the note)
    -  predicted, never executed
    +  executed, not predicted (the note says why: the event's reason,
       detail, action, tier change, or the agent's reset cause)

A constellation parent (compare_fleet): its children's merged stream
against the plan's predicted fleet stream, satellite by satellite.
"""
import difflib
import heapq

import timeutil

TOLERANCE_S = 10.0

# payload fields that say why an event happened, in the order they are tried
WHY_FIELDS = ("reason", "detail", "action", "reset_cause", "kind")


def _key(ev):
    return (ev.get("type"), ev.get("step_id"))


def _t(ev):
    try:
        return timeutil.parse_iso(ev.get("timestamp"))
    except ValueError:
        return None


def why(ev):
    """A short reason an event happened, from its payload."""
    p = ev.get("payload") or {}
    if "from_tier" in p:
        return "%s -> %s: %s" % (p.get("from_tier"), p.get("to_tier"), p.get("reason"))
    for f in WHY_FIELDS:
        if p.get(f) is not None:
            return "%s=%s" % (f, p[f])
    if "tier" in p:
        return "tier=%s" % p["tier"]
    return ""


def compare(predicted, executed, tolerance_s=TOLERANCE_S):
    """(rows, summary). rows: [{mark, predicted, executed, note}] in time order."""
    a = [_key(e) for e in predicted]
    b = [_key(e) for e in executed]
    rows = []
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            for p, e in zip(predicted[i1:i2], executed[j1:j2]):
                tp, te = _t(p), _t(e)
                dt = (te - tp) if tp is not None and te is not None else 0.0
                if abs(dt) <= tolerance_s:
                    rows.append({"mark": "=", "predicted": p, "executed": e, "note": ""})
                else:
                    rows.append({"mark": "~", "predicted": p, "executed": e,
                                 "note": "%+.0f s" % dt})
            continue
        for p in predicted[i1:i2]:
            rows.append({"mark": "-", "predicted": p, "executed": None,
                         "note": "predicted, not executed"})
        for e in executed[j1:j2]:
            rows.append({"mark": "+", "predicted": None, "executed": e, "note": why(e)})
    return rows, _summary(rows)


def _summary(rows):
    counts = {"=": 0, "~": 0, "-": 0, "+": 0}
    first = None
    for r in rows:
        counts[r["mark"]] += 1
        if first is None and r["mark"] != "=":
            first = r
    summary = {"matched": counts["="], "shifted": counts["~"], "missing": counts["-"],
               "extra": counts["+"], "identical": counts["="] == len(rows),
               "first_divergence": None}
    if first is not None:
        ev = first["executed"] or first["predicted"]
        summary["first_divergence"] = {"mark": first["mark"], "type": ev.get("type"),
                                       "step_id": ev.get("step_id"),
                                       "timestamp": ev.get("timestamp"), "note": first["note"]}
        if "satellite_id" in first:
            summary["first_divergence"]["satellite_id"] = first["satellite_id"]
    return summary


def compare_fleet(predicted, executed, tolerance_s=TOLERANCE_S):
    """compare() for a constellation: the predicted fleet stream against the
    parent's merged stream, satellite by satellite (each event's
    satellite_id; a satellite's events are aligned with its own prediction
    only, so one running late shifts no other's rows), the rows merged in
    time order (timestamp, satellite). Each row has its `satellite_id`."""
    sats = []
    for ev in list(predicted) + list(executed):
        if ev.get("satellite_id") not in sats:
            sats.append(ev.get("satellite_id"))
    per_sat = []
    for sat in sats:
        got, _ = compare([e for e in predicted if e.get("satellite_id") == sat],
                         [e for e in executed if e.get("satellite_id") == sat], tolerance_s)
        for r in got:
            r["satellite_id"] = sat
        per_sat.append(got)
    # a merge keeps each satellite's rows in their own order
    rows = list(heapq.merge(*per_sat, key=lambda r: (
        (r["executed"] or r["predicted"]).get("timestamp") or "", str(r["satellite_id"]))))
    return rows, _summary(rows)


def with_agent_events(executed, agent_events):
    """The executed stream plus the agent's own events (boots, faults, safe
    mode) that fall inside it, in seq order: a reset shows where it struck."""
    if not executed:
        return list(executed)
    lo = min(e.get("seq") or 0 for e in executed)
    hi = max(e.get("seq") or 0 for e in executed)
    extra = [e for e in agent_events if lo <= (e.get("seq") or 0) <= hi]
    return sorted(list(executed) + extra, key=lambda e: e.get("seq") or 0)
