"""The agent's constellation role (CONSTELLATION.md, docs/constellation.md):
one DAG across satellites, each running the steps it owns, talking to the
others over the inter-satellite link (lib/isl.py port, `ag.isl`) without
waiting for a ground pass. An overlay: firmware/constellation.py (resident
on a satellite with an ISL port: its ISL task) loads it while this
satellite holds a constellation job and drops it once the job is over, so
the hours without one -- and the poll that takes the next job -- do not
hold its code. Functions of the agent (`ag`). Taking the job's
constellation part (checking it, announcing the assignment) is
firmware/cstplan.py, loaded for that only.

ConstellationState lives in the job record on flash (`job["cst"]`) and in
the steps' own state, changed only by journal commits, each with the event
that reports it:

    assigned_steps     steps whose owner is this satellite (cst "own")
    active_transfers   the outgoing notices not yet delivered (cst "q")
    completed_steps    steps whose status is "done" (here, or "remote")
    failed_over_steps  cst "fo": steps handed away from here, or fenced here

Ownership: cst "own" maps a step to [satellite, epoch]. The plan's owner
holds epoch 1; a claim from epoch e by the satellite of rank r in the
step's chain (owner, then alternates) takes epoch (e // 16 + 1) * 16 + r + 1,
above every epoch of the round before and never equal to another
satellite's claim. A higher epoch always wins (fencing): a satellite that
learns of one for a step it holds stops it and never completes it; a
completion or an output carrying a lower epoch than known is dropped.

Messages (JSON text; "k" the kind, "f" the sender, "s" the step, "e" its epoch):
    hb    {b: battery %, t: temperature, w: [step, work_s, ck] or null}  every heartbeat
    done  {mb: output MB, r: result or null}    a step completed (to every member)
    fo    {c: checkpoint or null}                a handoff (to the chosen alternate)
    own   {o: new owner}                         an ownership change (to every member)
    fail  {}                                     a step failed for good (to every member)
"""
import json

import constellation
from scheduler import wait_for

ROUND = 16           # epochs per claim round (a chain is shorter than this: cstplan.MAX_CHAIN)
RETRY_MS = 10000     # a notice that was lost or had no route is sent again after this
BATTERY_CRITICAL = 10.0   # CONSTELLATION.md "Failover"
THERMAL_LIMIT = 75.0
COMPUTE_FLOOR = 15.0


# --- what the executor asks ---------------------------------------------------------

def resolved(s):
    return s["status"] in ("done", "failed", "moved")


def started(ag, job, step):
    cst = job["cst"]
    sid = step["id"]
    ag.emit("constellation.step_started", sid,
            {"step_id": sid, "satellite_id": cst["me"], "epoch": cst["own"][sid][1]})


def completed(ag, job, step, s):
    """After step.completed: report it, and tell every member (cstrare.completed)."""
    _rare("completed", ag, job, step, s)


def _rare(name, *args):
    """One of the rarely used parts (firmware/cstrare.py: a step's report,
    handing a step over, taking one over, a notice, a transfer's events),
    loaded for the call and dropped after: none of it is resident while
    the job runs."""
    from agent import _load, _unload
    mod = "cstlate" if name == "deadline" else "cstrare"  # the deadline's: firmware/cstlate.py
    try:
        return getattr(_load(mod), name)(*args)
    finally:
        _unload(mod)


def _kick(ag):
    """Notices were queued: the ISL task sends them now, not at its next heartbeat."""
    ag.isl_ev.set()


def _owner(cst, sid):
    return cst["own"][sid][0]


def _queued(cst, entries):
    """A copy of cst with notices queued: [dest, text, data MB to transfer,
    the acknowledgement that settles it]."""
    new = dict(cst)
    new["q"] = list(cst["q"]) + [[d, t, mb, _ack_id(json.loads(t))] for d, t, mb in entries]
    return new


def _ack_id(m):
    return "%s:%s:%s" % (m.get("k"), m.get("s"), m.get("e"))


def _msg(kind, me, sid, epoch, **extra):
    doc = {"k": kind, "f": me, "s": sid, "e": epoch}
    for key in extra:
        doc[key] = extra[key]
    return json.dumps(doc, separators=(",", ":"))


def guard(ag, job, step, s, runner):
    """Checked before and throughout a step: True when it must stop here --
    another satellite holds a higher epoch for it (fenced), or this
    satellite is unfit (battery, heat) and the step was handed over or failed."""
    cst = job["cst"]
    sid = step["id"]
    if cst["own"][sid][0] != cst["me"]:
        return True  # fenced: its new owner has it
    if _late(ag, cst):
        ag.sensors.set_compute_load(0)
        _rare("give_up", ag, job, sid, "deadline passed")
        return True
    reason = unfit(ag)
    if reason is None:
        return False
    _rare("fail_over", ag, job, step, s, runner, reason)
    return True


def _late(ag, cst):
    """Past the job's deadline (cst "until", the plan's horizon)."""
    return cst.get("until") is not None and ag.now() >= cst["until"]


def unfit(ag):
    sensors = ag.sensors
    battery = sensors.battery_percent()
    temp = sensors.temperature_c()
    if battery is not None and battery < BATTERY_CRITICAL:
        return "battery_critical"
    if temp is not None and temp > THERMAL_LIMIT:
        return "thermal_exceedance"
    if battery is not None and battery < COMPUTE_FLOOR:
        return "compute_unavailable"
    return None


def _healthy(hb, now_ms, quiet_ms):
    if hb is None or now_ms - hb[0] > quiet_ms:
        return False
    b, t = hb[1], hb[2]
    return (b is None or b >= COMPUTE_FLOOR) and (t is None or t <= THERMAL_LIMIT) and not hb[4]


# --- when nothing here can run -----------------------------------------------------

def blocked(ag, job):
    """Steps that can never run (a dependency failed) fail too; a step whose
    dependant is done is done too (its output was taken: a member that missed
    its notice, cut off while it came and its owner's part over since, still
    ends its own); True when every step of the job is resolved. The answer
    holds until the next commit (the journal's record count "n"): an idle
    execute task asks it every few seconds while nothing changed."""
    st = ag.journal.state
    steps = st["steps"]
    last = ag.cst_tx.get("bl")
    if last is not None and last[0] == st["n"] and last[1] is steps:
        return last[2]
    ops = []
    done = set()
    for step in reversed(job["steps"]):  # dependants first (the steps are in topological order)
        if step["id"] in done or steps[step["id"]]["status"] == "done":
            for d in step["depends_on"]:
                if d not in done and not resolved(steps[d]):
                    done.add(d)
                    ops.append(["st", d, {"status": "done", "remote": _owner(job["cst"], d),
                                          "implied": step["id"]}])
    every = True
    for step in job["steps"]:
        if step["id"] in done or resolved(steps[step["id"]]):
            continue
        for d in step["depends_on"]:
            if steps[d]["status"] == "failed":
                ops.append(["st", step["id"], {"status": "failed",
                                               "error": "its input %r failed" % d}])
                break
        else:
            every = False
    if ops:
        ag.journal.commit(ops)
        every = all(resolved(steps[step["id"]]) for step in job["steps"])
    ag.cst_tx["bl"] = (st["n"], steps, every)
    return every


def finish(ag, job):
    """Every step is resolved. The job's last step (in topological order)
    ends it on its owner (the satellite that completed it, or whose
    failure or blocked input failed it): the downlink, then
    constellation.satellite_complete and job.completed (close), or those
    two with job.failed partial. Every
    other member ends its part with constellation.satellite_complete, once
    the others are told what it knows."""
    steps = ag.journal.state["steps"]
    cst = job["cst"]
    if _owner(cst, job["steps"][-1]["id"]) != cst["me"]:
        if settled(ag, job):
            _satellite_complete(ag, job, [["end", job["deployment_id"]]])
        return
    failed = [st["id"] for st in job["steps"] if steps[st["id"]]["status"] == "failed"]
    if not failed:
        ag.journal.commit([["jset", "phase", "transfer"]])  # then close()
    elif settled(ag, job):  # the others hear of the failure first
        _closing(ag, job)
        ag._finish("partial", "step %r failed: %s" % (failed[0], steps[failed[0]].get("error")))


def _closing(ag, job):
    cst = job["cst"]
    if not cst.get("sc"):  # once, whatever reset comes between it and the job's end
        new = dict(cst)
        new["sc"] = True
        _satellite_complete(ag, job, [["jset", "cst", new]])


def _satellite_complete(ag, job, ops):
    cst = job["cst"]
    steps = ag.journal.state["steps"]
    fo = cst.get("fo") or ()
    ag.emit("constellation.satellite_complete", payload={
        "satellite_id": cst["me"],
        "steps_completed": sum(1 for sid in cst["own"] if steps[sid]["status"] == "done" and
                               steps[sid].get("told") and sid not in fo),
        "steps_failed_over": len(fo)},
        ops=ops)


def close(ag, job):
    """The closer's end after the downlink: once the others are told,
    constellation.satellite_complete and job.completed, one after the other."""
    if not settled(ag, job):
        yield from wait(ag)
        return
    _closing(ag, job)
    ag._finish("completed", None)


def settled(ag, job):
    """No notice is left for a member that can still take it: every one was
    acknowledged, or its satellite is silent (heard before, not for
    silence_s; never heard, for unheard_s of trying): a lost satellite must
    not keep the others' part of the job open."""
    cst = job["cst"]
    if not cst["q"]:
        return True
    now = ag.clock.now_ms()
    hbs = ag.cst_hb
    sent = ag.cst_tx.get("ids") or {}
    for entry in cst["q"]:
        hb = hbs.get(entry[0])
        if hb is not None:
            if now - hb[0] <= cst["quiet_s"] * 1000:
                return False
            continue
        live = sent.get(entry[0] + "|" + entry[1])
        if (live is None or now - live[3] < cst["unheard_s"] * 1000) and not _late(ag, cst):
            return False  # past the deadline, one never heard is as silent
    return True


# --- the ISL task's round (constellation.task) -------------------------------------

def wait(ag):
    """The execute task's wait for the ISL task (at most half its deadline)."""
    ag.cst_ev.clear()
    yield wait_for(ag.cst_ev, ag.cfg["task_deadline_ms"] // 2)


def idle(ag, job):
    """Nothing of this satellite's can run now: the job may be over (finish),
    else wait for news over the ISL. A wake that finds no commit since (the
    job, its steps, the mode as they were) and the outbox as roomy finds
    what the executor would look at as it was: it waits again here, from
    the same moment (the wait's timeout restarts as it would)."""
    j = ag.journal
    st = j.state
    if blocked(ag, job):
        finish(ag, job)  # it may wait for acknowledgements: tried at each wake
        if st["job"] is job and job["phase"] == "run":
            yield from wait(ag)
        return
    while st["job"] is job and job["phase"] == "run":
        n = st["n"]
        yield from wait(ag)
        if j.state is not st or st["n"] != n or ag._outbox_low():
            return


def tick(ag, job):
    """One round of the ISL task: take what arrived, send what is due (the
    heartbeat, queued notices, transfers), take over silent owners. Returns
    the ms until it wants to run again."""
    port = ag.isl
    now = ag.clock.now_ms()
    cst = job["cst"]
    held = ag.cst_tx.pop("held", None) or []
    while True:
        got = held.pop(0) if held else port.recv()
        if got is None:
            break
        _take(ag, got[0], got[1])
        if ag.journal.state["job"] is not job:
            return 0
        cst = job["cst"]
    tx = ag.cst_tx
    # a step completed here and not reported yet (a reset came between, or
    # the heap had no room for the report's code then): report it now (looked
    # for again only after a commit: the report is one)
    st = ag.journal.state
    steps = st["steps"]
    if tx.get("dn") != (st["n"], steps):
        for step in constellation.untold(ag, job):
            completed(ag, job, step, steps[step["id"]])
        cst = job["cst"]
        tx["dn"] = (st["n"], steps)
    if now >= tx.get("hb_next", 0):
        _heartbeat(ag, job)
        tx["hb_next"] = now + cst["hb_s"] * 1000
    _send_queue(ag, job, now)
    if not _late(ag, cst):
        _takeovers(ag, job, now)
    elif not tx.get("late"):  # what is left fails (cstlate.deadline), once it can
        tx["late"] = _rare("deadline", ag, job, now)
    wait = tx["hb_next"] - now
    if job["cst"]["q"]:
        wait = min(wait, 1000)
    return max(1, wait)


def _heartbeat(ag, job):
    cst = job["cst"]
    st = ag.journal.state
    w = None
    for step in job["steps"]:
        s = st["steps"][step["id"]]
        if s["status"] in ("running", "paused") and cst["own"][step["id"]][0] == cst["me"]:
            w = [step["id"], round(s.get("work_s", 0), 1), s.get("ck", 0)]
    # "d": the steps it knows are done (one back in touch learns them before it acts)
    done = [step["id"] for step in job["steps"] if st["steps"][step["id"]]["status"] == "done"]
    text = json.dumps({"k": "hb", "f": cst["me"], "b": _round(ag.sensors.battery_percent()),
                       "t": _round(ag.sensors.temperature_c()), "w": w, "d": done,
                       "x": unfit(ag) is not None or st["mode"] == "safe"}, separators=(",", ":"))
    for m in _watchers(cst):
        ag.isl.send(m, text)  # best effort: the next one follows


def _watchers(cst):
    """Who needs this satellite's health: the alternates of the steps it
    owns and the owners and alternates of the steps it may take over."""
    me = cst["me"]
    out = []
    for sid in cst["chain"]:
        chain = cst["chain"][sid]
        if me in chain or cst["own"][sid][0] == me:
            for m in chain + [cst["own"][sid][0]]:
                if m != me and m not in out:
                    out.append(m)
    return out


def _round(v):
    return round(v, 1) if isinstance(v, float) else v


def _send_queue(ag, job, now):
    """Notices in order of queueing, each until its receiver acknowledges it
    (a message delivered to a computer that was down is lost all the same);
    an entry that carries data is an ISL transfer: sent after its
    transmission time on the route, with its events, once. A notice waits
    longer between tries each time (RETRY_MS doubling, up to 6 x)."""
    port = ag.isl
    cst = job["cst"]
    tx = ag.cst_tx
    sent = tx.setdefault("ids", {})  # dest|text -> [msg id, last try ms, link, t0, tries, delivered]
    acked = tx.get("acked") or ()
    done = []
    for i, entry in enumerate(cst["q"]):
        dest, text, mb = entry[0], entry[1], entry[2]
        key = dest + "|" + text
        live = sent.get(key)
        if (dest, entry[3]) in acked:
            if mb and live is not None and live[0] is not None and not live[5]:
                _rare("transfer_done", ag, dest, mb, live)  # its receipt came before we looked
            done.append(i)
            sent.pop(key, None)
            continue
        if live is not None and live[0] is not None and not live[5]:
            state = port.status(live[0])
            if state == "sending":
                continue
            if state == "delivered":
                if mb:
                    _rare("transfer_done", ag, dest, mb, live)
                live[5] = True  # its events are out (a crash before: sent at the next round)
        if live is not None and now - live[1] < RETRY_MS * min(1 << live[4], 6):
            continue
        link = port.link(dest)
        if link is None:
            if live is None:
                sent[key] = [None, now, None, now, 0, False]
            else:
                live[1] = now
            continue
        if mb and (live is None or live[2] is None):
            # the output goes out at the route's bandwidth: the radio is busy this long
            hold = int(mb * 8.0 / max(0.001, link.get("bandwidth_mbps") or 1.0) * 1000)
            _rare("transfer_started", ag, dest, mb, link)  # first: a crash in it changes nothing
            if live is None:
                live = sent[key] = [None, now, link, now, 0, False]
            else:
                live[2], live[3] = link, now
            live[1] = now - RETRY_MS + hold  # the send itself once sent
            continue
        mid = port.send(dest, text)
        if live is None:
            sent[key] = [mid, now, link, now, 0, False]
        else:
            live[0], live[1] = mid, now
            live[4] += 1
    if done:
        new = dict(cst)
        new["q"] = [e for i, e in enumerate(cst["q"]) if i not in done]
        ag.journal.commit([["jset", "cst", new]])


def _takeovers(ag, job, now):
    """A step whose owner is silent is taken by its first eligible alternate:
    this satellite, when every alternate before it is silent or unfit too."""
    cst = job["cst"]
    me = cst["me"]
    quiet_ms = cst["quiet_s"] * 1000
    hbs = ag.cst_hb
    tx = ag.cst_tx
    boot = tx.setdefault("since", now)  # heard nothing since boot: wait quiet_s first
    if now - boot < quiet_ms:
        return
    heard = False
    for m in cst["sats"]:
        hb = hbs.get(m)
        if m != me and hb is not None and now - hb[0] <= quiet_ms:
            heard = True
            break
    steps = ag.journal.state["steps"]
    hint = tx.get("hint", ())
    if heard and tx.get("joined") is not None and _silent_owner(cst, steps, hint, hbs, now, boot) is None:
        return  # in touch, every owner heard: nothing to note, nothing to take (the health read spared)
    if unfit(ag) is not None:
        return
    if not heard:
        tx["joined"] = None
        return  # everyone silent: this satellite is the one cut off, and takes nothing
    if tx.get("joined") is None:
        tx["joined"] = now  # back in touch: what it missed meanwhile arrives first
    if now - tx["joined"] < quiet_ms:
        return
    for step in job["steps"]:
        sid = step["id"]
        owner = _silent_owner(cst, steps, hint, hbs, now, boot, sid)
        if owner is None:
            continue
        first = None
        for a in cst["chain"][sid]:
            if a == owner:
                continue
            if a == me or _healthy(hbs.get(a), now, quiet_ms):
                first = a
                break
        if first != me:
            continue
        _rare("take_over", ag, job, sid, owner)
        cst = job["cst"]


def _silent_owner(cst, steps, hint, hbs, now, boot, sid=None):
    """The silent owner of step sid (sid None: of the first such step) that
    this satellite may take over -- it is in the step's chain, no heartbeat
    says the step is done, it is not resolved here -- or None."""
    me = cst["me"]
    quiet_ms = cst["quiet_s"] * 1000
    for s in ((sid,) if sid is not None else cst["own"]):
        owner = cst["own"][s][0]
        if owner == me or me not in cst["chain"][s] or s in hint or resolved(steps[s]):
            continue
        hb = hbs.get(owner)
        if hb is None and now - boot < cst["unheard_s"] * 1000:
            continue  # never heard: it may not have its part yet (its first pass is to come)
        if hb is not None and now - hb[0] <= quiet_ms:
            continue
        return owner
    return None


def _take(ag, src, data):
    """One message from another satellite; a notice is acknowledged once
    taken (or known already), a heartbeat or an acknowledgement not."""
    try:
        m = json.loads(data)
        kind = m["k"]
    except (ValueError, KeyError, TypeError):
        return  # not ours, or mangled: dropped
    if kind == "ack":
        acked = ag.cst_tx.setdefault("acked", set())
        acked.add((m.get("f") or src, m.get("a")))
        return
    _handle(ag, src, m, kind)
    if kind != "hb":
        me = ag.journal.state["job"]["cst"]["me"]
        ag.isl.send(m.get("f") or src, json.dumps({"k": "ack", "f": me, "a": _ack_id(m)},
                                                 separators=(",", ":")))


def _handle(ag, src, m, kind):
    if kind == "hb":
        cst = ag.journal.state["job"]["cst"]
        ag.cst_hb[m.get("f") or src] = [ag.clock.now_ms(), m.get("b"), m.get("t"), m.get("w"),
                                       bool(m.get("x"))]
        if isinstance(m.get("d"), list):  # done elsewhere: its notice is on its way
            hint = ag.cst_tx.setdefault("hint", set())
            for sid in m["d"]:
                if sid in cst["own"]:
                    hint.add(sid)
        return
    _rare("handle", ag, src, m, kind)  # a notice: now and then, not every round
