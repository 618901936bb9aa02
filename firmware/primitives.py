"""The orbital primitives on board: eclipse, window and pass steps (STEPS.md;
docs/planner.md is the contract the planner predicts with). Functions of the
agent (`ag`), loaded by Agent._run_step only while a primitive step runs and
dropped after it, so a board without such a job never holds them in RAM."""
import agentconfig
from agent import ABORT, EPS, _load, _r
from scheduler import sleep_ms

def windows(ag, job, kind):
    return [w for w in job.get("windows") or () if w[1] == kind]

def window_containing(ag, job, kind, t):
    for w in windows(ag, job, kind):
        if w[2] <= t < w[3]:
            return w
    return None

def window_after(ag, job, kind, t):
    for w in windows(ag, job, kind):
        if w[2] > t:
            return w
    return None

def window_by_id(ag, job, wid):
    for w in job.get("windows") or ():
        if w[0] == wid:
            return w
    return None

def wait_until(ag, job, t):
    """Sleep in ticks until epoch t (False if the job went away meanwhile)."""
    while ag.now() < t:
        if ag.journal.state["job"] is not job or job.get("cancel"):
            return False
        ag.sensors.set_compute_load(0)
        yield sleep_ms(ag.chunk_ms)
    return True

def prim_fail(ag, job, step, s, reason):
    ag.journal.commit([["st", step["id"], {"status": "failed", "error": reason}]])

def run_eclipse(ag, job, step, s):
    rules = _load("planner_rules")
    sid = step["id"]
    p = step["prim"]
    budget = p.get("energy_budget_wh")
    policy = p.get("eclipse_policy") or "balanced"
    if s.get("ecl") is None:
        w = window_containing(ag, job, "eclipse", ag.now()) or \
            window_after(ag, job, "eclipse", ag.now())
        if w is None:
            prim_fail(ag, job, step, s, "no eclipse ahead")
            return
        payload = {"window": w[0], "energy_budget_wh": budget, "eclipse_policy": policy}
        warning = rules.eclipse_warning(p)
        if warning:
            payload["reason"] = warning
        ag.emit("eclipse_step.scheduled", sid, payload, ops=[["st", sid, {"ecl": w[0]}]])
    runner = ag._runner(job, step, s)
    if runner is None:
        return
    compute = step["compute_s"]
    capacity_wh = job["battery_wh"]
    while True:
        w = window_by_id(ag, job, s["ecl"])
        if w is None:
            prim_fail(ag, job, step, s, "no eclipse ahead")
            return
        ok = yield from wait_until(ag, job, w[2])
        if not ok:
            return
        needed = rules.eclipse_needed_wh(p, compute - s["work_s"], job["compute_w"])
        pct = ag.sensors.battery_percent()
        ledger = job.get("ledger") or {}
        led = ledger.get(w[0])
        if led is None:  # B and T are fixed when the first eclipse step looks at this eclipse
            led = [(pct if pct is not None else 100.0) / 100.0 * capacity_wh,
                   (w[3] - ag.now()) / 3600.0, 0.0]
        allowed = rules.eclipse_allowance_wh(p, led[0], capacity_wh, job["bus_load_w"],
                                             led[1]) - led[2]
        if budget is not None:
            allowed = min(allowed, budget - s.get("energy_wh", 0.0))
        allowed = max(0.0, allowed)
        fits = needed <= allowed + 1e-9
        ag.emit("eclipse_step.energy_check", sid, {"needed_wh": _r(needed),
                                                     "allowed_wh": _r(allowed),
                                                     "battery_percent": _r(pct), "ok": fits})
        if not fits:
            if not defer_eclipse(ag, job, step, s, w, "insufficient_energy: needs %.2f Wh, "
                                       "%.2f Wh allowed" % (needed, allowed), needed, allowed):
                return
            continue
        led[2] += needed
        ledger[w[0]] = led
        ag.journal.commit([["jset", "ledger", ledger]])
        if s["status"] == "pending":
            ag.emit("eclipse_step.started", sid, {"energy_budget_wh": budget,
                                                    "eclipse_policy": policy,
                                                    "battery_percent": _r(pct)})
            ag._start(step, s, w[0], "eclipse")
        elif s["status"] == "paused":
            ag._resume(step, s)
        why = None
        half = compute / 2.0
        if s["work_s"] < half - EPS:
            why = yield from ag._compute(job, step, s, runner, half, "eclipse", leave_on="eclipse")
            if why == ABORT:
                return
            if why is None and s["work_s"] < compute - EPS:
                # the 50 % check, with the real battery
                pct = ag.sensors.battery_percent()
                rest = rules.eclipse_needed_wh(p, compute - s["work_s"], job["compute_w"])
                fine, room = rules.eclipse_finish_ok(
                    p, (pct if pct is not None else 100.0) / 100.0 * capacity_wh, capacity_wh,
                    job["bus_load_w"], (w[3] - ag.now()) / 3600.0, rest)
                ag.emit("eclipse_step.energy_check", sid, {"needed_wh": _r(rest),
                                                             "allowed_wh": _r(room),
                                                             "battery_percent": _r(pct),
                                                             "ok": fine})
                if not fine:
                    ag._pause(step, s, "battery", runner)
                    if not defer_eclipse(ag, job, step, s, w, "min_battery_soc: finishing "
                                               "would go below it (checked at 50 %)", rest, room):
                        return
                    continue
        if why is None:
            why = yield from ag._compute(job, step, s, runner, compute, "eclipse",
                                           leave_on="eclipse")
            if why == ABORT:
                return
        if why is None:
            break
        nxt = window_after(ag, job, "eclipse", ag.now())  # the eclipse ended first
        if nxt is None:
            prim_fail(ag, job, step, s, "needs more eclipse time than the plan holds")
            return
        ag.journal.commit([["st", sid, {"ecl": nxt[0]}]])
    pct = ag.sensors.battery_percent()
    yield from ag._complete(job, step, s, runner, step["output_mb"], then=(
        "eclipse_step.completed", {"energy_consumed_wh": _r(s.get("energy_wh", 0.0)),
                                   "battery_percent": _r(pct)}))

def defer_eclipse(ag, job, step, s, w, reason, needed, allowed):
    nxt = window_after(ag, job, "eclipse", w[2])
    payload = {"reason": reason, "needed_wh": _r(needed), "allowed_wh": _r(allowed)}
    if nxt is not None:
        payload["next_window"] = nxt[0]
    ag.emit("eclipse_step.deferred", step["id"], payload,
              ops=[["st", step["id"], {"ecl": nxt[0] if nxt else None}]])
    if nxt is None:
        prim_fail(ag, job, step, s, reason)
        return False
    return True

def run_window(ag, job, step, s):
    sid = step["id"]
    p = step["prim"]
    kind = p.get("window_kind") or "sunlit"
    if s.get("tier") is None:
        rules = _load("planner_rules")
        free = job["memory_mb"] - ag.cfg["memory_base_mb"]
        w = window_containing(ag, job, kind, ag.now())
        while True:
            if w is None:
                w = window_after(ag, job, kind, ag.now())
                if w is None:
                    prim_fail(ag, job, step, s, "no %s window fits min_tier" % kind)
                    return
                ok = yield from wait_until(ag, job, w[2])
                if not ok:
                    return
            available = w[3] - ag.now() - rules.TIER_MARGIN_S
            capacity = agentconfig.compute_capacity(ag.sensors.battery_percent(), ag.cfg)
            tier = rules.select_tier(p, available, free, capacity)
            if tier is not None:
                break
            nxt = window_after(ag, job, kind, w[2])
            payload = {"reason": "no tier from %s to %s fits %d s of %s window (%.0f MB free)"
                       % (p.get("min_tier") or "minimal", p.get("preferred_tier"),
                          max(0, available), kind, free)}
            if nxt is not None:
                payload["next_window"] = nxt[0]
            ag.emit("window_step.deferred", sid, payload)
            w = None
        t = p["quality_tiers"][tier]
        ag.emit("window_step.tier_selected", sid, {"tier": tier, "available_s": round(available, 1),
                                                     "compute_s": t["compute_s"]},
                  ops=[["st", sid, {"tier": tier, "compute": float(t["compute_s"]),
                                    "memory": t.get("memory_mb", 0),
                                    "out": t.get("output_mb", 0)}]])
        ag.emit("window_step.started", sid, {"tier": tier})
        ag._start(step, s, w[0], kind)
    runner = ag._runner(job, step, s)
    if runner is None:
        return
    gates = "eclipse" if kind == "eclipse" else ("any" if kind == "contact" else "sunlit")
    why = yield from ag._compute(job, step, s, runner, s["compute"], gates)
    if why is None:
        yield from ag._complete(job, step, s, runner, s["out"], then=(
            "window_step.completed", {"tier": s["tier"], "output_mb": _r(s["out"])}))

def run_pass(ag, job, step, s):
    sid = step["id"]
    p = step["prim"]
    compute = step["compute_s"]
    if s.get("segs") is None:
        rules = _load("planner_rules")
        segs, left = decompose(ag, job, p, compute, ag.now(), rules)
        limit = p.get("max_segments")
        if left > EPS or (limit is not None and len(segs) > limit):
            prim_fail(ag, job, step, s, "pass segments: %d needed, %s allowed, %.0f s unplaced"
                            % (len(segs), limit, left))
            return
        ag.emit("pass_step.decomposed", sid, {"segments": len(segs),
                                                "passes": [seg[0] for seg in segs]},
                  ops=[["st", sid, {"segs": segs, "seg_i": 0, "outs": [], "done_s": 0.0}]])
    runner = ag._runner(job, step, s)
    if runner is None:
        return
    segs = s["segs"]
    n = len(segs)
    total_out = step["output_mb"]
    while s["seg_i"] < n:
        i = s["seg_i"]
        pid, start, c = segs[i]
        ok = yield from wait_until(ag, job, start)
        if not ok:
            return
        ag.emit("pass_step.segment_started", sid, {"segment_index": i + 1,
                                                     "segments_total": n, "pass_id": pid})
        if s["status"] == "pending":
            ag._start(step, s, pid, "contact")
        elif s["status"] == "paused":
            ag._resume(step, s)
        target = min(s["done_s"] + c, compute)
        if compute > 0:
            why = yield from ag._compute(job, step, s, runner, target, "any")
            if why is not None:
                return
        out = total_out * c / compute if compute else total_out
        outs = list(s["outs"]) + [out]
        ag.emit("pass_step.segment_completed", sid, {"segment_index": i + 1,
                                                       "segments_total": n,
                                                       "output_mb": _r(out)},
                  ops=[["st", sid, {"seg_i": i + 1, "outs": outs, "done_s": target,
                                    "work_s": s["work_s"]}]])
        if i < n - 1:
            ag._pause(step, s, "link", runner)
    rules = _load("planner_rules")
    strategy = p.get("merge_strategy") or "concat"
    merged = rules.merged_output_mb(strategy, s["outs"])
    ag.emit("pass_step.merged", sid, {"merge_strategy": strategy, "segments": n,
                                        "output_mb": _r(merged)})
    yield from ag._complete(job, step, s, runner, merged)

def decompose(ag, job, p, compute, t, rules):
    """[[pass id, start, compute_s]] per usable contact after t (docs/planner.md)."""
    remaining = float(compute)
    min_s = p.get("min_pass_duration_s") or 0
    cursor = t
    segs = []
    for w in windows(ag, job, "contact"):
        if w[3] <= cursor:
            continue
        a = max(w[2], cursor)
        usable = w[3] - a
        if usable < min_s:
            continue
        c = rules.pass_segment_s(usable, remaining)
        if c <= 0 and remaining > 0:
            continue
        segs.append([w[0], a, c])
        remaining -= c
        cursor = a + c + rules.PASS_MARGIN_S
        if remaining <= EPS:
            return segs, 0.0
    return segs, remaining
