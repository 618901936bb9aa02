"""The constellation role's last resort (docs/constellation.md "The
deadline"): what the job's deadline fails, and a silent closer's
substitute. An overlay of firmware/cstrole.py, loaded by its `_rare` for
one call once the deadline has passed (never before: none of it is in RAM
while the job runs), dropped right after; it reaches the role through its
module, resident while the job runs."""
import cstrole as role


def deadline(ag, job, now):
    """The job's deadline passed (docs/constellation.md "The deadline"): every
    step not resolved here fails (one of this satellite's: the others are
    told; one running here fails in its guard), and a job whose closer is
    silent is ended by its substitute -- the first member of the job's
    satellites heard within silence_s, when this satellite hears anyone at
    all -- which claims the last step at a raised epoch (fencing), fails it
    and so becomes its closer (finish: job.failed partial). True once
    nothing is left to do here."""
    st = ag.journal.state
    steps = st["steps"]
    cst = job["cst"]
    me = cst["me"]
    hbs = ag.cst_hb
    quiet_ms = cst["quiet_s"] * 1000
    left = False
    ops, notes = [], []
    for step in job["steps"]:
        sid = step["id"]
        s = steps[sid]
        mine = cst["own"][sid][0] == me
        if role.resolved(s):
            continue
        if mine and s["status"] in ("running", "paused"):
            left = True
            continue
        ops.append(["st", sid, {"status": "failed", "error": "deadline passed"}])
        if mine:
            notes += [(m, role._msg("fail", me, sid, cst["own"][sid][1]), 0)
                      for m in cst["sats"] if m != me]
    last = job["steps"][-1]["id"]
    owner = cst["own"][last][0]
    first = None
    if owner != me and steps[last]["status"] != "done":
        hb = hbs.get(owner)
        if hb is None or now - hb[0] > quiet_ms:  # its closer is silent
            for m in cst["sats"]:
                if m == owner:
                    continue
                if m == me:
                    break
                hb = hbs.get(m)
                if hb is not None and now - hb[0] <= quiet_ms:
                    first = m
                    break
            if first is None:  # this satellite would be the substitute: if it hears anyone
                first = me if any(now - hbs[m][0] <= quiet_ms for m in hbs if m != owner) else owner
    new = role._queued(cst, notes)
    if first == me:
        # claimed as a takeover is (cstrare.claim); a member outside the chain ranks
        # by its index in the job's satellites, above every chain's rank
        chain = cst["chain"][last]
        half = role.ROUND // 2
        rank = chain.index(me) if me in chain else half + cst["sats"].index(me) % half
        epoch = (cst["own"][last][1] // role.ROUND + 1) * role.ROUND + rank + 1
        owners = dict(cst["own"])
        owners[last] = [me, epoch]
        new = role._queued(new, [(m, role._msg("fail", me, last, epoch), 0)
                                 for m in cst["sats"] if m != me])
        new["own"] = owners
        ops = [op for op in ops if op[1] != last]
        ops.append(["st", last, {"status": "failed",
                                 "error": "deadline passed, its owner %s silent" % owner}])
        ag.emit("constellation.failover", last, {"step_id": last, "from_satellite": owner,
                                                 "reason": "deadline", "to_satellite": me,
                                                 "epoch": epoch})
        ag.emit("constellation.failover_acknowledged", last,
                {"step_id": last, "to_satellite": me, "epoch": epoch, "from_checkpoint": None},
                ops=[["jset", "cst", new]] + ops)
    elif ops or notes:
        ag.journal.commit([["jset", "cst", new]] + ops)
    if notes or first == me:
        role._kick(ag)
    return not left
