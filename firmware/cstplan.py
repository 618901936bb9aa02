"""Taking a constellation job's part on board (docs/constellation.md "The
workload"): check the plan's constellation part and build the job record's
ConstellationState; announce the steps this satellite owns. Loaded by
accept.py when such a job arrives or starts, dropped right after (the
running role is firmware/constellation.py)."""

HB_S = 60            # heartbeat interval (s) unless the plan says
QUIET_S = 300        # an owner unheard this long is silent (s) unless the plan says
UNHEARD_S = 6 * 3600  # ... and one never heard at all (it may not have polled its part yet)
MAX_CHAIN = 8        # satellites per step: owner and alternates (< constellation.ROUND)


def record(cdoc, me, step_ids):
    """The plan's constellation part -> (cst for the job record, None) or
    (None, reason). cdoc: {steps: [{step_id, satellite, alternates}],
    satellites?: [...], heartbeat_s?, silence_s?}."""
    if not isinstance(cdoc, dict) or not isinstance(cdoc.get("steps"), list):
        return None, "bad_field: plan_data.constellation.steps must be an array"
    own, chain, sats = {}, {}, []
    for i, row in enumerate(cdoc["steps"]):
        where = "plan_data.constellation.steps[%d]" % i
        if not isinstance(row, dict):
            return None, "bad_field: %s must be an object" % where
        sid = row.get("step_id")
        if sid not in step_ids:
            return None, "unknown_step: %s names step %r, not in the job" % (where, sid)
        first = _sat(row.get("satellite"))
        alts = row.get("alternates") or []
        if first is None or not isinstance(alts, list):
            return None, "bad_field: %s needs a satellite and a list of alternates" % where
        c = [first]
        for a in alts:
            a = _sat(a)
            if a is None:
                return None, "bad_field: %s.alternates holds a bad satellite id" % where
            if a not in c:
                c.append(a)
        if len(c) > MAX_CHAIN:
            return None, "too_large: %s has more than %d satellites" % (where, MAX_CHAIN)
        own[sid] = [first, 1]
        chain[sid] = c
        for a in c:
            if a not in sats:
                sats.append(a)
    for sid in step_ids:
        if sid not in own:
            return None, "missing_field: plan_data.constellation.steps has no row for step %r" % sid
    for a in cdoc.get("satellites") or ():
        a = _sat(a)
        if a is not None and a not in sats:
            sats.append(a)
    if me not in sats:
        return None, "bad_field: satellite %s has no part in this constellation job" % me
    hb = _secs(cdoc.get("heartbeat_s"), HB_S)
    quiet = _secs(cdoc.get("silence_s"), max(QUIET_S, 3 * hb))
    unheard = _secs(cdoc.get("unheard_s"), max(UNHEARD_S, quiet))
    return {"me": me, "own": own, "chain": chain, "sats": sats, "hb_s": hb,
            "quiet_s": quiet, "unheard_s": unheard, "q": []}, None


def _sat(v):
    if isinstance(v, int) and not isinstance(v, bool):
        v = str(v)
    return v if isinstance(v, str) and 0 < len(v) <= 32 else None


def _secs(v, default):
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and 1 <= v <= 86400 \
        else default


def announce(ag, job):
    """constellation.step_assigned for every step this satellite owns."""
    steps = ag.journal.state["steps"]
    cst = job["cst"]
    for step in job["steps"]:
        sid = step["id"]
        if cst["own"][sid][0] != cst["me"] or steps[sid].get("asg"):
            continue
        ag.emit("constellation.step_assigned", sid,
                {"step_id": sid, "satellite_id": cst["me"], "dependencies": list(step["depends_on"]),
                 "alternates": cst["chain"][sid][1:], "epoch": cst["own"][sid][1]},
                ops=[["st", sid, {"asg": True}]])
