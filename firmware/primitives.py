"""The orbital primitives on board: eclipse, window and pass steps (STEPS.md;
docs/planner.md is the contract the planner predicts with). One module per
kind (prim_eclipse, prim_window, prim_pass), loaded by Agent._run_step only
while such a step runs and dropped after it; this one holds what they share:
the plan's windows and the waits. Functions of the agent (`ag`)."""
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
