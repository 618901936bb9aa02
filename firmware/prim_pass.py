"""Pass steps on board: the compute split into segments over the contact
windows (STEPS.md), merged at the end. Functions of the agent (`ag`), loaded by
Agent._run_step while such a step runs; firmware/primitives.py holds what the
three kinds share."""
from agent import EPS, _load, _r, _unload
from primitives import W_END, W_ID, W_START, prim_fail, wait_until, windows


def run_pass(ag, job, step, s):
    sid = step["id"]
    p = step["prim"]
    compute = step["compute_s"]
    if s.get("segs") is None:
        rules = _load("planner_rules")
        segs, left = decompose(ag, job, p, compute, ag.now(), rules)
        rules = None
        _unload("planner_rules")  # planned: the segments run without the rules in RAM
        limit = p.get("max_segments")
        if limit is not None and len(segs) > limit:
            prim_fail(ag, job, step, s, "needs %d pass segments but max_segments is %d"
                      % (len(segs), limit))
            return
        if left > EPS:
            prim_fail(ag, job, step, s, "%.0f s of its compute fit no pass the plan holds" % left)
            return
        ag.emit("pass_step.decomposed", sid, {"segments": len(segs),
                                                "passes": [seg[0] for seg in segs]},
                  ops=[["st", sid, {"segs": segs, "seg_i": 0, "outs": [], "done_s": 0.0}]])
    runner = ag.step_runner(job, step, s)
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
            ag.start_step(step, s, pid, "contact")
        elif s["status"] == "paused":
            ag.resume_step(step, s)
        target = min(s["done_s"] + c, compute)
        if compute > 0:
            why = yield from ag.compute_step(job, step, s, runner, target, "any")
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
            ag.pause_step(step, s, "link", runner)
    strategy = p.get("merge_strategy") or "concat"
    merged = _load("planner_rules").merged_output_mb(strategy, s["outs"])
    _unload("planner_rules")
    ag.emit("pass_step.merged", sid, {"merge_strategy": strategy, "segments": n,
                                        "output_mb": _r(merged)})
    yield from ag.complete_step(job, step, s, runner, merged)


def decompose(ag, job, p, compute, t, rules):
    """[[pass id, start, compute_s]] per usable contact after t (docs/planner.md)."""
    remaining = float(compute)
    min_s = p.get("min_pass_duration_s") or 0
    cursor = t
    segs = []
    for w in windows(ag, job, "contact"):
        if w[W_END] <= cursor:
            continue
        a = max(w[W_START], cursor)
        usable = w[W_END] - a
        if usable < min_s:
            continue
        c = rules.pass_segment_s(usable, remaining)
        if c <= 0 and remaining > 0:
            continue
        segs.append([w[W_ID], a, c])
        remaining -= c
        cursor = a + c + rules.PASS_MARGIN_S
        if remaining <= EPS:
            return segs, 0.0
    return segs, remaining
