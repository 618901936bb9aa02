"""A job's start: announce its placement, plan and predicted hazards
(placement.decided per step, plan.created, checkpoint.predicted), then the
job runs. A function of the agent (`ag`), loaded by its execute task when a
job is in phase "accepted" and dropped right after. Apart from accept.py, so
what a board loads here is this small module only: the start comes while the
first contact's link code is in the heap (measured: accept.py is ~7 KiB on
the unix port, this ~2)."""
import events  # resident (the agent's): no second copy


def announce(ag, job):
    steps = ag.journal.state["steps"]
    for step in job["steps"]:
        if steps[step["id"]].get("placed"):
            continue  # announced before a reset
        ag.emit("placement.decided", step["id"],
                  {"location": step["location"], "reason": step["reason"]},
                  ops=[["st", step["id"], {"placed": True}]])
    total = job["plan_total_s"] or sum(s["compute_s"] for s in job["steps"])
    ag.emit("plan.created", payload={"segments": int(job["plan_segments"]),
                                       "windows_used": int(job["plan_windows"]),
                                       "total_duration_s": total})
    # the hazard summary the plan predicted (its lists stay on the ground)
    predicted = {"hazards": [], "checkpoint_schedule": []}
    hazards = job.get("hazards") or {}
    for key in events.fields("checkpoint.predicted")[:-2]:  # accept.HAZARD_SUMMARY
        predicted[key] = hazards.get(key) if hazards.get(key) is not None else \
            (0 if key.endswith(("count", "fraction")) else None)
    if job.get("cst") is not None:  # a constellation job: the steps this satellite owns
        from agent import _load, _unload
        _load("cstplan").announce(ag, job)
        _unload("cstplan")
    # announced: what only the announcement needed leaves the job's record (RAM)
    ag.emit("checkpoint.predicted", payload=predicted,
            ops=[["jset", "phase", "run"], ["jset", "hazards", None], ["jset", "name", None]])
