"""The agent's constellation role (CONSTELLATION.md, docs/constellation.md):
one DAG across satellites, each running the steps it owns, talking to the
others over the inter-satellite link (lib/isl.py port, `ag.isl`) without
waiting for a ground pass. Loaded on a satellite with an ISL port
(its ISL task) and for a job that carries a constellation part; functions
of the agent (`ag`). Taking the job's constellation part (checking it,
announcing the assignment) is firmware/cstplan.py, loaded for that only.

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

from scheduler import Event, wait_for

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
    """After step.completed: report it, and tell every member (the owners of
    its dependants get its output: an ISL transfer)."""
    cst = job["cst"]
    sid = step["id"]
    epoch = cst["own"][sid][1]
    out_mb = s.get("out_mb") or 0
    res = s.get("res")
    if res is not None and len(json.dumps(res)) > 300:
        res = None  # too big for a message: dependants work on the stand-in
    text = _msg("done", cst["me"], sid, epoch, mb=out_mb, r=res)
    takers = [_owner(cst, d["id"]) for d in job["steps"] if sid in d["depends_on"]]
    q = _queued(cst, [(m, text, out_mb if m in takers else 0) for m in cst["sats"] if m != cst["me"]])
    ag.emit("constellation.step_completed", sid,
            {"step_id": sid, "duration_s": round(ag.now() - s.get("t0", ag.now()), 1),
             "data_output_mb": out_mb, "satellite_id": cst["me"], "epoch": epoch},
            ops=[["jset", "cst", q], ["st", sid, {"told": True}]])
    _kick(ag)


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
    reason = unfit(ag)
    if reason is None:
        return False
    fail_over(ag, job, step, s, runner, reason)
    return True


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


def fail_over(ag, job, step, s, runner, reason):
    """Hand the step to the next eligible alternate with its last checkpoint;
    none: the step fails here (the job ends partial)."""
    cst = job["cst"]
    sid = step["id"]
    ag.sensors.set_compute_load(0)
    now = ag.clock.now_ms()
    quiet_ms = cst["quiet_s"] * 1000
    hbs = ag.cst_hb
    chain = cst["chain"][sid]
    to = None
    for a in chain:
        if a == cst["me"]:
            continue
        if _healthy(hbs.get(a), now, quiet_ms) and ag.isl is not None and ag.isl.link(a) is not None:
            to = a
            break
    if to is None:
        ag.emit("constellation.failover", sid, {"step_id": sid, "from_satellite": cst["me"],
                                                "reason": reason, "to_satellite": None,
                                                "epoch": cst["own"][sid][1]})
        _give_up(ag, job, sid, "no eligible alternate for step %r (%s)" % (sid, reason))
        return
    epoch = _claim(cst, sid, to)
    ck = None
    if s.get("work_s"):
        ck = {"work_s": s["work_s"], "ck": s.get("ck", 0), "energy_wh": s.get("energy_wh", 0.0),
              "hs": runner.snapshot() if runner is not None else s.get("hs")}
    # its inputs travel with it: an ISL transfer of their outputs
    inputs_mb = 0
    steps = ag.journal.state["steps"]
    for d in step["depends_on"]:
        inputs_mb += steps[d].get("out_mb") or 0
    new = _queued(cst, [(to, _msg("fo", cst["me"], sid, epoch, c=ck), inputs_mb)] +
                  [(m, _msg("own", cst["me"], sid, epoch, o=to), 0)
                   for m in cst["sats"] if m not in (cst["me"], to)])
    own = dict(cst["own"])
    own[sid] = [to, epoch]
    new["own"] = own
    new["fo"] = list(cst.get("fo") or ()) + [sid]  # failed_over_steps
    ag.emit("constellation.failover", sid, {"step_id": sid, "from_satellite": cst["me"],
                                            "reason": reason, "to_satellite": to, "epoch": epoch},
            ops=[["jset", "cst", new], ["st", sid, {"status": "moved", "why": reason}]])
    _kick(ag)


def _claim(cst, sid, sat):
    chain = cst["chain"][sid]
    rank = chain.index(sat) if sat in chain else len(chain)
    return (cst["own"][sid][1] // ROUND + 1) * ROUND + rank + 1


def _give_up(ag, job, sid, why):
    cst = job["cst"]
    new = _queued(cst, [(m, _msg("fail", cst["me"], sid, cst["own"][sid][1]), 0)
                        for m in cst["sats"] if m != cst["me"]])
    ag.journal.commit([["jset", "cst", new], ["st", sid, {"status": "failed", "error": why}]])
    _kick(ag)



# --- when nothing here can run -----------------------------------------------------

def blocked(ag, job):
    """Steps that can never run (a dependency failed) fail too; a step whose
    dependant is done is done too (its output was taken: a member that missed
    its notice, cut off while it came and its owner's part over since, still
    ends its own); True when every step of the job is resolved."""
    steps = ag.journal.state["steps"]
    ops = []
    done = set()
    for step in reversed(job["steps"]):  # dependants first (the steps are in topological order)
        sid = step["id"]
        if steps[sid]["status"] == "done" or sid in done:
            for d in step["depends_on"]:
                if not resolved(steps[d]) and d not in done:
                    done.add(d)
                    ops.append(["st", d, {"status": "done", "remote": _owner(job["cst"], d),
                                          "implied": sid}])
    for step in job["steps"]:
        s = steps[step["id"]]
        if resolved(s) or step["id"] in done:
            continue
        for d in step["depends_on"]:
            if steps[d]["status"] == "failed":
                ops.append(["st", step["id"], {"status": "failed",
                                               "error": "its input %r failed" % d}])
                break
    if ops:
        ag.journal.commit(ops)
    return all(resolved(steps[step["id"]]) for step in job["steps"])


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


def close(ag, job):
    """The closer's end after the downlink: once the others are told,
    constellation.satellite_complete and job.completed, one after the other."""
    if not settled(ag, job):
        yield from wait(ag)
        return
    _closing(ag, job)
    ag._finish("completed", None)


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
        if live is None or now - live[3] < cst["unheard_s"] * 1000:
            return False
    return True


# --- the ISL task ---------------------------------------------------------------------

def install(ag):
    """A satellite with an ISL port (bootup): its ISL task, woken by an
    arrival (the port's on_arrival) or when its next heartbeat or resend is
    due. It waits on an Event past the task deadline, so it has none."""
    ag.isl_ev = Event()   # set when messages arrive
    ag.cst_ev = Event()   # set when the ISL task changed a constellation job
    ag.cst_hb = {}        # heard in heartbeats since boot
    ag.cst_tx = {}        # the ISL task's own RAM (next heartbeat, notices in flight, ...)
    ag.isl.on_arrival = ag.isl_ev.set
    ag.sched.spawn("isl", lambda: task(ag), priority=6)


HELD = 16  # messages kept (RAM) while this satellite has no constellation job yet


def task(ag):
    ev = ag.isl_ev
    while True:
        job = ag.journal.state["job"]
        ms = 60000
        if job is not None and job.get("cst") is not None and job["phase"] != "accepted":
            ms = tick(ag, job)
            ag.cst_ev.set()  # the execute task looks again
        elif job is None:
            _hold(ag)
        ev.clear()
        yield wait_for(ev, ms)


def _hold(ag):
    """No job: heartbeats are dropped, the rest kept (the newest HELD) for
    the constellation job this satellite has yet to poll."""
    held = ag.cst_tx.setdefault("held", [])
    while True:
        got = ag.isl.recv()
        if got is None:
            break
        if '"k":"hb"' not in got[1] if isinstance(got[1], str) else b'"k":"hb"' not in got[1]:
            held.append(got)
            del held[:-HELD]


def wait(ag):
    """The execute task's wait for the ISL task (at most half its deadline)."""
    ag.cst_ev.clear()
    yield wait_for(ag.cst_ev, ag.cfg["task_deadline_ms"] // 2)


def idle(ag, job):
    """Nothing of this satellite's can run now: the job may be over (finish),
    else wait for news over the ISL."""
    if blocked(ag, job):
        finish(ag, job)
    if ag.journal.state["job"] is job and job["phase"] == "run":
        yield from wait(ag)


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
    if not tx.get("checked"):
        # a reset between a step's completion and its report: report it now
        tx["checked"] = True
        steps = ag.journal.state["steps"]
        for step in job["steps"]:
            s = steps[step["id"]]
            if s["status"] == "done" and not s.get("remote") and not s.get("told") and \
                    cst["own"][step["id"]][0] == cst["me"]:
                completed(ag, job, step, s)
        cst = job["cst"]
    if now >= tx.get("hb_next", 0):
        _heartbeat(ag, job)
        tx["hb_next"] = now + cst["hb_s"] * 1000
    _send_queue(ag, job, now)
    _takeovers(ag, job, now)
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
            done.append(i)
            sent.pop(key, None)
            if mb and live is not None and live[0] is not None and not live[5]:
                _transfer_done(ag, dest, mb, live)  # its receipt came before we looked
            continue
        if live is not None and live[0] is not None and not live[5]:
            state = port.status(live[0])
            if state == "sending":
                continue
            if state == "delivered":
                live[5] = True
                if mb:
                    _transfer_done(ag, dest, mb, live)
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
            if live is None:
                live = sent[key] = [None, now, link, now, 0, False]
            else:
                live[2], live[3] = link, now
            live[1] = now - RETRY_MS + hold  # the send itself once sent
            _transfer_started(ag, dest, mb, link)
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


def _transfer_started(ag, dest, mb, link):
    ag.emit("isl_transfer.started", payload={"from": ag.journal.state["job"]["cst"]["me"],
                                             "to": dest, "data_mb": mb,
                                             "hop_count": link.get("hops", 1)})


def _transfer_done(ag, dest, mb, live):
    me = ag.journal.state["job"]["cst"]["me"]
    link = live[2] or {}
    hops = link.get("hops", 1) or 1
    q = link.get("quality")
    lat = link.get("latency_ms") or 0
    route = link.get("route") or [me] + [None] * (hops - 1) + [dest]
    per_hop = link.get("per_hop") or [[round(lat / hops, 3), q]] * hops
    for i in range(hops):
        ag.emit("isl_transfer.hop_completed", payload={
            "from": route[i] if i < len(route) else None,
            "to": route[i + 1] if i + 1 < len(route) else dest,
            "hop_index": i, "quality": per_hop[i][1] if i < len(per_hop) else q,
            "latency_ms": per_hop[i][0] if i < len(per_hop) else None})
    took = (ag.clock.now_ms() - live[3]) / 1000.0
    ag.emit("isl_transfer.completed", payload={"from": me, "to": dest,
                                               "total_duration_s": round(took, 3), "data_mb": mb})
    ag.emit("isl_transfer.quality_report", payload={
        "avg_quality": q, "min_quality": q, "total_latency_ms": lat,
        "effective_bandwidth_mbps": round(mb * 8.0 / took, 3) if took > 0 else None})


def _takeovers(ag, job, now):
    """A step whose owner is silent is taken by its first eligible alternate:
    this satellite, when every alternate before it is silent or unfit too."""
    cst = job["cst"]
    me = cst["me"]
    quiet_ms = cst["quiet_s"] * 1000
    hbs = ag.cst_hb
    boot = ag.cst_tx.setdefault("since", now)  # heard nothing since boot: wait quiet_s first
    if now - boot < quiet_ms or unfit(ag) is not None:
        return
    heard = False
    for m in cst["sats"]:
        hb = hbs.get(m)
        if m != me and hb is not None and now - hb[0] <= quiet_ms:
            heard = True
    tx = ag.cst_tx
    if not heard:
        tx["joined"] = None
        return  # everyone silent: this satellite is the one cut off, and takes nothing
    if tx.get("joined") is None:
        tx["joined"] = now  # back in touch: what it missed meanwhile arrives first
    if now - tx["joined"] < quiet_ms:
        return
    steps = ag.journal.state["steps"]
    for step in job["steps"]:
        sid = step["id"]
        s = steps[sid]
        owner, epoch = cst["own"][sid]
        if resolved(s) or owner == me or me not in cst["chain"][sid] or sid in tx.get("hint", ()):
            continue
        hb = hbs.get(owner)
        if hb is None and now - boot < cst["unheard_s"] * 1000:
            continue  # never heard: it may not have its part yet (its first pass is to come)
        if hb is not None and now - hb[0] <= quiet_ms:
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
        new_epoch = _claim(cst, sid, me)
        ag.emit("constellation.failover", sid, {"step_id": sid, "from_satellite": owner,
                                                "reason": "silent", "to_satellite": me,
                                                "epoch": new_epoch})
        _own(ag, job, sid, new_epoch, None, None)  # the old owner too: it fences itself when it hears
        cst = job["cst"]


def _own(ag, job, sid, epoch, ck, was):
    """This satellite owns the step from now, at `epoch` (a handoff's
    checkpoint `ck`, or from scratch): acknowledged, and every member told."""
    cst = job["cst"]
    me = cst["me"]
    new = _queued(cst, [(m, _msg("own", me, sid, epoch, o=me), 0)
                        for m in cst["sats"] if m not in (me, was)])
    own = dict(cst["own"])
    own[sid] = [me, epoch]
    new["own"] = own
    if ck:  # the quarter marks already passed are not reported again
        for step in job["steps"]:
            if step["id"] == sid and step["compute_s"]:
                ck["mark"] = min(3, int(ck.get("work_s", 0) / step["compute_s"] * 4 + 1e-6))
    fields = {"status": "pending", "ours": True, "resume": ck, "remote": None}
    ag.emit("constellation.failover_acknowledged", sid,
            {"step_id": sid, "to_satellite": me, "epoch": epoch,
             "from_checkpoint": ck.get("ck") if ck else None},
            ops=[["jset", "cst", new], ["st", sid, fields]])
    _kick(ag)


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
    st = ag.journal.state
    job = st["job"]
    cst = job["cst"]
    if kind == "hb":
        ag.cst_hb[m.get("f") or src] = [ag.clock.now_ms(), m.get("b"), m.get("t"), m.get("w"),
                                       bool(m.get("x"))]
        if isinstance(m.get("d"), list):  # done elsewhere: its notice is on its way
            hint = ag.cst_tx.setdefault("hint", set())
            for sid in m["d"]:
                if sid in cst["own"]:
                    hint.add(sid)
        return
    sid = m.get("s")
    if sid not in cst["own"] or not isinstance(m.get("e"), int):
        return
    epoch = m["e"]
    s = st["steps"][sid]
    owner, known = cst["own"][sid]
    if kind == "done":
        if epoch < known or s["status"] == "done":
            return  # fenced, or told again
        own = dict(cst["own"])
        own[sid] = [m.get("f") or src, epoch]
        new = dict(cst)
        new["own"] = own
        ag.journal.commit([["jset", "cst", new],
                           ["st", sid, {"status": "done", "remote": m.get("f") or src,
                                        "out_mb": m.get("mb"), "res": m.get("r")}]])
        return
    if kind == "fail":
        if epoch < known or resolved(s):
            return
        ag.journal.commit([["st", sid, {"status": "failed", "error": "failed on %s" % src}]])
        return
    if epoch <= known:
        return  # an old claim
    if kind == "fo" and m.get("f") == owner or kind == "fo" and src == owner:
        _own(ag, job, sid, epoch, m.get("c"), src)
        return
    if kind in ("own", "fo"):
        to = m.get("o") or src
        held = owner == cst["me"] and not resolved(s)
        own = dict(cst["own"])
        own[sid] = [to, epoch]
        new = dict(cst)
        new["own"] = own
        ops = [["jset", "cst", new]]
        if held or (s["status"] == "done" and not s.get("remote")):
            # fenced: a higher epoch holds it; ours never resumes or counts
            new["fo"] = list(cst.get("fo") or ()) + [sid]
            ops.append(["st", sid, {"status": "moved", "why": "epoch %d on %s" % (epoch, to)}])
            ag.sensors.set_compute_load(0)
        ag.journal.commit(ops)
