"""Window steps on board: the highest quality tier that fits the window
(STEPS.md), degraded when the battery or the window shrinks. Functions of the
agent (`ag`), loaded by Agent._run_step while such a step runs;
firmware/primitives.py holds what the three kinds share."""
import agentconfig
from agent import _load, _r, _unload
from primitives import (W_END, W_ID, W_START, prim_fail, wait_until, window_after,
                        window_containing)


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
                ok = yield from wait_until(ag, job, w[W_START])
                if not ok:
                    return
            available = w[W_END] - ag.now() - rules.TIER_MARGIN_S
            capacity = agentconfig.compute_capacity(ag.sensors.battery_percent(), ag.cfg)
            tier = rules.select_tier(p, available, free, capacity)
            if tier is not None:
                break
            nxt = window_after(ag, job, kind, w[W_START])
            payload = {"reason": "no tier from %s to %s fits %d s of %s window (%.0f MB free)"
                       % (p.get("min_tier") or "minimal", p.get("preferred_tier"),
                          max(0, available), kind, free)}
            if nxt is not None:
                payload["next_window"] = nxt[W_ID]
            ag.emit("window_step.deferred", sid, payload)
            w = None
        rules = None
        _unload("planner_rules")  # chosen: the compute runs without the rules in RAM
        t = p["quality_tiers"][tier]
        ag.emit("window_step.tier_selected", sid, {"tier": tier, "available_s": round(available, 1),
                                                     "compute_s": t["compute_s"]},
                  ops=[["st", sid, {"tier": tier, "compute": float(t["compute_s"]),
                                    "memory": t.get("memory_mb", 0),
                                    "out": t.get("output_mb", 0)}]])
        ag.emit("window_step.started", sid, {"tier": tier})
        ag.start_step(step, s, w[W_ID], kind)
    runner = ag.step_runner(job, step, s)
    if runner is None:
        return
    gates = "eclipse" if kind == "eclipse" else ("any" if kind == "contact" else "sunlit")
    why = yield from ag.compute_step(job, step, s, runner, s["compute"], gates)
    if why is None:
        yield from ag.complete_step(job, step, s, runner, s["out"], then=(
            "window_step.completed", {"tier": s["tier"], "output_mb": _r(s["out"])}))
