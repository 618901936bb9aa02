"""The constellation role's rarely used parts (docs/constellation.md): a
step's report to the others, handing a step over with its checkpoint (or
failing it), taking a silent owner's step over, owning a step handed here,
a notice from another satellite, an ISL transfer's events. An overlay of
firmware/cstrole.py, loaded by its `_rare` for one call and dropped right
after; it reaches the role through its module, resident while the job runs
(never loaded on its own). A member's end stays in the role: it comes when
the heap is fullest (the outbox waiting for a pass, the downlink's code)."""
import json

import cstrole as role


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
    text = role._msg("done", cst["me"], sid, epoch, mb=out_mb, r=res)
    takers = [role._owner(cst, d["id"]) for d in job["steps"] if sid in d["depends_on"]]
    q = role._queued(cst, [(m, text, out_mb if m in takers else 0)
                           for m in cst["sats"] if m != cst["me"]])
    ag.emit("constellation.step_completed", sid,
            {"step_id": sid, "duration_s": round(ag.now() - s.get("t0", ag.now()), 1),
             "data_output_mb": out_mb, "satellite_id": cst["me"], "epoch": epoch},
            ops=[["jset", "cst", q], ["st", sid, {"told": True}]])
    role._kick(ag)




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
        if role._healthy(hbs.get(a), now, quiet_ms) and ag.isl is not None and ag.isl.link(a) is not None:
            to = a
            break
    if to is None:
        ag.emit("constellation.failover", sid, {"step_id": sid, "from_satellite": cst["me"],
                                                "reason": reason, "to_satellite": None,
                                                "epoch": cst["own"][sid][1]})
        give_up(ag, job, sid, "no eligible alternate for step %r (%s)" % (sid, reason))
        return
    epoch = claim(cst, sid, to)
    ck = None
    if s.get("work_s"):
        ck = {"work_s": s["work_s"], "ck": s.get("ck", 0), "energy_wh": s.get("energy_wh", 0.0),
              "hs": runner.snapshot() if runner is not None else s.get("hs")}
    # its inputs travel with it: an ISL transfer of their outputs
    inputs_mb = 0
    steps = ag.journal.state["steps"]
    for d in step["depends_on"]:
        inputs_mb += steps[d].get("out_mb") or 0
    new = role._queued(cst, [(to, role._msg("fo", cst["me"], sid, epoch, c=ck), inputs_mb)] +
                       [(m, role._msg("own", cst["me"], sid, epoch, o=to), 0)
                        for m in cst["sats"] if m not in (cst["me"], to)])
    owners = dict(cst["own"])
    owners[sid] = [to, epoch]
    new["own"] = owners
    new["fo"] = list(cst.get("fo") or ()) + [sid]  # failed_over_steps
    ag.emit("constellation.failover", sid, {"step_id": sid, "from_satellite": cst["me"],
                                            "reason": reason, "to_satellite": to, "epoch": epoch},
            ops=[["jset", "cst", new], ["st", sid, {"status": "moved", "why": reason}]])
    role._kick(ag)


def claim(cst, sid, sat):
    chain = cst["chain"][sid]
    rank = chain.index(sat) if sat in chain else len(chain)
    return (cst["own"][sid][1] // role.ROUND + 1) * role.ROUND + rank + 1


def give_up(ag, job, sid, why):
    cst = job["cst"]
    new = role._queued(cst, [(m, role._msg("fail", cst["me"], sid, cst["own"][sid][1]), 0)
                             for m in cst["sats"] if m != cst["me"]])
    ag.journal.commit([["jset", "cst", new], ["st", sid, {"status": "failed", "error": why}]])
    role._kick(ag)






def transfer_started(ag, dest, mb, link):
    ag.emit("isl_transfer.started", payload={"from": ag.journal.state["job"]["cst"]["me"],
                                             "to": dest, "data_mb": mb,
                                             "hop_count": link.get("hops", 1)})


def transfer_done(ag, dest, mb, live):
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


def own(ag, job, sid, epoch, ck, was):
    """This satellite owns the step from now, at `epoch` (a handoff's
    checkpoint `ck`, or from scratch): acknowledged, and every member told."""
    cst = job["cst"]
    me = cst["me"]
    new = role._queued(cst, [(m, role._msg("own", me, sid, epoch, o=me), 0)
                             for m in cst["sats"] if m not in (me, was)])
    owners = dict(cst["own"])
    owners[sid] = [me, epoch]
    new["own"] = owners
    if ck:  # the quarter marks already passed are not reported again
        for step in job["steps"]:
            if step["id"] == sid and step["compute_s"]:
                ck["mark"] = min(3, int(ck.get("work_s", 0) / step["compute_s"] * 4 + 1e-6))
    fields = {"status": "pending", "ours": True, "resume": ck, "remote": None}
    ag.emit("constellation.failover_acknowledged", sid,
            {"step_id": sid, "to_satellite": me, "epoch": epoch,
             "from_checkpoint": ck.get("ck") if ck else None},
            ops=[["jset", "cst", new], ["st", sid, fields]])
    role._kick(ag)


def take_over(ag, job, sid, owner):
    """The step's owner is silent and this satellite is its first eligible
    alternate: it claims the step and starts it from scratch."""
    cst = job["cst"]
    me = cst["me"]
    new_epoch = claim(cst, sid, me)
    ag.emit("constellation.failover", sid, {"step_id": sid, "from_satellite": owner,
                                            "reason": "silent", "to_satellite": me,
                                            "epoch": new_epoch})
    own(ag, job, sid, new_epoch, None, None)  # the old owner too: it fences itself when it hears


def handle(ag, src, m, kind):
    """A notice from another satellite (done, fail, own, fo): ownership and
    the step's state as the highest epoch says."""
    st = ag.journal.state
    job = st["job"]
    cst = job["cst"]
    sid = m.get("s")
    if sid not in cst["own"] or not isinstance(m.get("e"), int):
        return
    epoch = m["e"]
    s = st["steps"][sid]
    owner, known = cst["own"][sid]
    if kind == "done":
        if epoch < known or s["status"] == "done":
            return  # fenced, or told again
        owners = dict(cst["own"])
        owners[sid] = [m.get("f") or src, epoch]
        new = dict(cst)
        new["own"] = owners
        ag.journal.commit([["jset", "cst", new],
                           ["st", sid, {"status": "done", "remote": m.get("f") or src,
                                        "out_mb": m.get("mb"), "res": m.get("r")}]])
        return
    if kind == "fail":
        if epoch < known:
            return
        ops = []
        if epoch > known:  # claimed and failed at a higher epoch (a closer's substitute): fenced
            owners = dict(cst["own"])
            owners[sid] = [m.get("f") or src, epoch]
            new = dict(cst)
            new["own"] = owners
            ops.append(["jset", "cst", new])
        if not role.resolved(s) or epoch > known and s["status"] == "done" and not s.get("remote"):
            ops.append(["st", sid, {"status": "failed", "error": "failed on %s" % src}])
            if owner == cst["me"]:
                ag.sensors.set_compute_load(0)
        if ops:
            ag.journal.commit(ops)
        return
    if epoch <= known:
        return  # an old claim
    if kind == "fo" and m.get("f") == owner or kind == "fo" and src == owner:
        own(ag, job, sid, epoch, m.get("c"), src)
        return
    if kind in ("own", "fo"):
        to = m.get("o") or src
        held = owner == cst["me"] and not role.resolved(s)
        owners = dict(cst["own"])
        owners[sid] = [to, epoch]
        new = dict(cst)
        new["own"] = owners
        ops = [["jset", "cst", new]]
        if held or (s["status"] == "done" and not s.get("remote")):
            # fenced: a higher epoch holds it; ours never resumes or counts
            new["fo"] = list(cst.get("fo") or ()) + [sid]
            ops.append(["st", sid, {"status": "moved", "why": "epoch %d on %s" % (epoch, to)}])
            ag.sensors.set_compute_load(0)
        ag.journal.commit(ops)
