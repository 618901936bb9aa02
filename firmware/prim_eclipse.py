"""Eclipse steps on board: compute on battery inside an eclipse, within the
energy the policy allows (STEPS.md); deferred to a later eclipse when it does
not fit. Functions of the agent (`ag`), loaded by Agent._run_step while such a
step runs; firmware/primitives.py holds what the three kinds share."""
from agent import ABORT, EPS, _load, _r, _unload
from primitives import (W_END, W_ID, W_START, prim_fail, wait_until, window_after,
                        window_by_id, window_containing)


def run_eclipse(ag, job, step, s):
    # The rules are loaded for each decision and dropped before the compute:
    # the step's long part runs without them in RAM.
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
        payload = {"window": w[W_ID], "energy_budget_wh": budget, "eclipse_policy": policy}
        warning = _load("planner_rules").eclipse_warning(p)
        _unload("planner_rules")
        if warning:
            payload["reason"] = warning
        ag.emit("eclipse_step.scheduled", sid, payload, ops=[["st", sid, {"ecl": w[W_ID]}]])
    runner = None  # made once the energy fits: no handler in RAM while it waits or defers
    compute = step["compute_s"]
    capacity_wh = job["battery_wh"]
    while True:
        w = window_by_id(ag, job, s["ecl"])
        if w is None:
            prim_fail(ag, job, step, s, "no eclipse ahead")
            return
        ok = yield from wait_until(ag, job, w[W_START])
        if not ok:
            return
        rules = _load("planner_rules")
        needed = rules.eclipse_needed_wh(p, compute - s["work_s"], job["compute_w"])
        pct = ag.sensors.battery_percent()
        ledger = job.get("ledger") or {}
        led = ledger.get(w[W_ID])
        if led is None:  # B and T are fixed when the first eclipse step looks at this eclipse
            led = [(pct if pct is not None else 100.0) / 100.0 * capacity_wh,
                   (w[W_END] - ag.now()) / 3600.0, 0.0]
        allowed = rules.eclipse_allowance_wh(p, led[0], capacity_wh, job["bus_load_w"],
                                             led[1]) - led[2]
        rules = None
        _unload("planner_rules")
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
        if runner is None:
            runner = ag.step_runner(job, step, s)
            if runner is None:
                return
        led[2] += needed
        ledger[w[W_ID]] = led
        ag.journal.commit([["jset", "ledger", ledger]])
        if s["status"] == "pending":
            ag.emit("eclipse_step.started", sid, {"energy_budget_wh": budget,
                                                    "eclipse_policy": policy,
                                                    "battery_percent": _r(pct)})
            ag.start_step(step, s, w[W_ID], "eclipse")
        elif s["status"] == "paused":
            ag.resume_step(step, s)
        why = None
        half = compute / 2.0
        if s["work_s"] < half - EPS:
            why = yield from ag.compute_step(job, step, s, runner, half, "eclipse", leave_on="eclipse")
            if why == ABORT:
                return
            if why is None and s["work_s"] < compute - EPS:
                # the 50 % check, with the real battery
                pct = ag.sensors.battery_percent()
                rules = _load("planner_rules")
                rest = rules.eclipse_needed_wh(p, compute - s["work_s"], job["compute_w"])
                fine, room = rules.eclipse_finish_ok(
                    p, (pct if pct is not None else 100.0) / 100.0 * capacity_wh, capacity_wh,
                    job["bus_load_w"], (w[W_END] - ag.now()) / 3600.0, rest, s.get("energy_wh", 0.0))
                rules = None
                _unload("planner_rules")
                ag.emit("eclipse_step.energy_check", sid, {"needed_wh": _r(rest),
                                                             "allowed_wh": _r(room),
                                                             "battery_percent": _r(pct),
                                                             "ok": fine})
                if not fine:
                    ag.pause_step(step, s, "battery", runner)
                    if not defer_eclipse(ag, job, step, s, w, "min_battery_soc: finishing "
                                               "would go below it (checked at 50 %)", rest, room):
                        return
                    continue
        if why is None:
            why = yield from ag.compute_step(job, step, s, runner, compute, "eclipse",
                                           leave_on="eclipse")
            if why == ABORT:
                return
        if why is None:
            break
        nxt = window_after(ag, job, "eclipse", ag.now())  # the eclipse ended first
        if nxt is None:
            prim_fail(ag, job, step, s, "needs more eclipse time than the plan holds")
            return
        ag.journal.commit([["st", sid, {"ecl": nxt[W_ID]}]])
    pct = ag.sensors.battery_percent()
    yield from ag.complete_step(job, step, s, runner, step["output_mb"], then=(
        "eclipse_step.completed", {"energy_consumed_wh": _r(s.get("energy_wh", 0.0)),
                                   "battery_percent": _r(pct)}))


def defer_eclipse(ag, job, step, s, w, reason, needed, allowed):
    nxt = window_after(ag, job, "eclipse", w[W_START])
    payload = {"reason": reason, "needed_wh": _r(needed), "allowed_wh": _r(allowed)}
    if nxt is not None:
        payload["next_window"] = nxt[W_ID]
    ag.emit("eclipse_step.deferred", step["id"], payload,
              ops=[["st", step["id"], {"ecl": nxt[W_ID] if nxt else None}]])
    if nxt is None:
        prim_fail(ag, job, step, s, "%s, at every eclipse the plan holds" % reason)
        return False
    return True
