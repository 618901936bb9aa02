"""A constellation member's end (docs/constellation.md "The end"): every
step of the job is resolved. An overlay of firmware/cstrole.py, loaded by
its `_rare` for one call and dropped right after (apart from cstrare.py: the
end comes while the downlink's or the contact's code may be in the heap);
it reaches the role through its module, resident while the job runs."""
import cstrole as role


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
    if role._owner(cst, job["steps"][-1]["id"]) != cst["me"]:
        if role.settled(ag, job):
            satellite_complete(ag, job, [["end", job["deployment_id"]]])
        return
    failed = [st["id"] for st in job["steps"] if steps[st["id"]]["status"] == "failed"]
    if not failed:
        ag.journal.commit([["jset", "phase", "transfer"]])  # then close()
    elif role.settled(ag, job):  # the others hear of the failure first
        closing(ag, job)
        ag._finish("partial", "step %r failed: %s" % (failed[0], steps[failed[0]].get("error")))


def closing(ag, job):
    cst = job["cst"]
    if not cst.get("sc"):  # once, whatever reset comes between it and the job's end
        new = dict(cst)
        new["sc"] = True
        satellite_complete(ag, job, [["jset", "cst", new]])


def satellite_complete(ag, job, ops):
    cst = job["cst"]
    steps = ag.journal.state["steps"]
    fo = cst.get("fo") or ()
    ag.emit("constellation.satellite_complete", payload={
        "satellite_id": cst["me"],
        "steps_completed": sum(1 for sid in cst["own"] if steps[sid]["status"] == "done" and
                               steps[sid].get("told") and sid not in fo),
        "steps_failed_over": len(fo)},
        ops=ops)
