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
    satellites?: [...]}, or the Console's compact form {fleet: [satellite
    id...], steps: [[step_id, owner, [alternates], routes?]...]} with
    satellites as indices into `fleet`; either with heartbeat_s?,
    silence_s?, unheard_s?, until? (the job's deadline, Unix s: the plan's
    horizon), satellite_id? (whose part this is)."""
    if not isinstance(cdoc, dict) or not isinstance(cdoc.get("steps"), list):
        return None, "bad_field: plan_data.constellation.steps must be an array"
    fleet = cdoc.get("fleet")
    if fleet is not None and (not isinstance(fleet, list) or any(_sat(f) is None for f in fleet)):
        return None, "bad_field: plan_data.constellation.fleet must be a list of satellite ids"
    whose = cdoc.get("satellite_id")
    if whose is not None and _sat(whose) != me:
        return None, "bad_field: this constellation part is for satellite %s, not %s" % (
            _sat(whose), me)
    own, chain, sats = {}, {}, []
    for i, row in enumerate(cdoc["steps"]):
        where = "plan_data.constellation.steps[%d]" % i
        if isinstance(row, dict):
            sid, first, alts = row.get("step_id"), row.get("satellite"), row.get("alternates") or []
        elif isinstance(row, list) and len(row) >= 3:
            sid, first, alts = row[0], row[1], row[2]
        else:
            return None, "bad_field: %s must be an object or [step, owner, alternates]" % where
        if sid not in step_ids:
            return None, "unknown_step: %s names step %r, not in the job" % (where, sid)
        if not isinstance(alts, list):
            return None, "bad_field: %s needs a list of alternates" % where
        first = _member(first, fleet)
        if first is None:
            return None, "bad_field: %s needs its satellite" % where
        c = [first]
        for a in alts:
            a = _member(a, fleet)
            if a is None:
                return None, "bad_field: %s.alternates holds a bad satellite" % where
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
    cst = {"me": me, "own": own, "chain": chain, "sats": sats, "hb_s": hb,
           "quiet_s": quiet, "unheard_s": unheard, "q": []}
    until = cdoc.get("until")
    if until is not None:
        if not isinstance(until, int) or isinstance(until, bool) or until < 946684800:
            return None, "bad_field: plan_data.constellation.until must be a Unix time (s)"
        cst["until"] = until
    return cst, None


def _member(v, fleet):
    """A satellite of a row: an index into `fleet` when there is one, else its id."""
    if fleet is None:
        return _sat(v)
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(fleet):
        return _sat(fleet[v])
    return None


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
