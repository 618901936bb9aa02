"""The orbital primitives on board: eclipse, window and pass steps (STEPS.md;
docs/planner.md is the contract the planner predicts with). One module per
kind (prim_eclipse, prim_window, prim_pass), loaded by Agent._run_step only
while such a step runs and dropped after it; this one holds what they share:
the plan's windows and the waits. Functions of the agent (`ag`).

A window, as the job's record holds it (accept.job_record): a list
[id, kind, start, end], read by the names below (start and end in epoch s).
"""
from scheduler import sleep_ms

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

W_ID = const(0)
W_KIND = const(1)
W_START = const(2)
W_END = const(3)


def windows(ag, job, kind):
    return [w for w in job.get("windows") or () if w[W_KIND] == kind]


def window_containing(ag, job, kind, t):
    for w in windows(ag, job, kind):
        if w[W_START] <= t < w[W_END]:
            return w
    return None


def window_after(ag, job, kind, t):
    for w in windows(ag, job, kind):
        if w[W_START] > t:
            return w
    return None


def window_by_id(ag, job, wid):
    for w in job.get("windows") or ():
        if w[W_ID] == wid:
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
