"""The constellation role's resident part (docs/constellation.md): on a
satellite with an ISL port (bootup installs it), its ISL task and the
executor's entry points. The role itself -- the job's messages,
heartbeats, transfers, failover, takeover and end -- is firmware/cstrole.py,
an overlay: loaded while this satellite holds a constellation job and
dropped once it holds none, so a satellite between jobs, and the poll that
takes its next one, carry only this. Functions of the agent (`ag`)."""
from agent import _load, _unload
from scheduler import Event, wait_for

ROLE = "cstrole"
HELD = 16  # messages kept (RAM) while this satellite has no constellation job yet


def _role():
    return _load(ROLE)


# --- what the executor asks (agent.py): the role's -----------------------------------

def started(ag, job, step):
    _role().started(ag, job, step)


def guard(ag, job, step, s, runner):
    return _role().guard(ag, job, step, s, runner)


def completed(ag, job, step, s):
    _role().completed(ag, job, step, s)


def idle(ag, job):
    yield from _role().idle(ag, job)


def close(ag, job):
    yield from _role().close(ag, job)


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


def task(ag):
    ev = ag.isl_ev
    while True:
        job = ag.journal.state["job"]
        ms = 60000
        mine = job is not None and job.get("cst") is not None and job["phase"] != "accepted"
        told = mine and _told_all(ag, job)
        if mine and not told:
            ms = _role().tick(ag, job)
            ag.cst_ev.set()  # the execute task looks again
        elif job is None or told:
            _hold(ag)
            _unload(ROLE)  # the role's code leaves the heap (no-op when not loaded)
            # on the minute: when it next looks does not hang on when messages came
            # (the fleet's hub hands them to a satellite with no job late, in order)
            ms -= ag.clock.now_ms() % ms
        ev.clear()
        yield wait_for(ev, ms)


def _told_all(ag, job):
    """The closer's downlink (the transfer phase: every step of the job is
    resolved) with every notice acknowledged and every step done here told:
    the role has nothing left to do until the job's end (close), and its code
    leaves the heap for the pass, the fullest time of the job (what arrives
    meanwhile is held as with no job)."""
    return job["phase"] == "transfer" and not job["cst"]["q"] and not untold(ag, job)


def untold(ag, job):
    """The steps completed here whose completion the others have not been
    told yet (cstrole.completed tells them)."""
    steps = ag.journal.state["steps"]
    cst = job["cst"]
    return [step for step in job["steps"] if steps[step["id"]]["status"] == "done" and
            not steps[step["id"]].get("remote") and not steps[step["id"]].get("told") and
            cst["own"][step["id"]][0] == cst["me"]]


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
