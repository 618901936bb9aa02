"""The agent's setup (Agent.__init__) and boot: rebuild the state from the
journal, judge the reset (an unexplained one counts; the step running at it
is charged; enough of them, or a module that failed the integrity check,
mean safe mode) and announce it with agent.booted. Functions of the agent
(`ag`), run once per boot by Agent() and Agent.boot and dropped after it."""
import binascii
import hashlib

import agentconfig
import hal
from agent import AGENT_LEVEL, DEFLATE_SEGMENT
from journal import Journal
from scheduler import RestartPolicy, Scheduler
from spool import Spool
from tmr import Cell


def setup(ag, cfg, clock, sensors, link, root, watchdog=None, fs=None,
          reset_cause="unknown", workdir=None, integrity=None, isl=None):
    """Agent.__init__: everything an agent holds, before its boot. `isl`: the
    inter-satellite link port (lib/isl.py), None on a satellite without one."""
    ag.cfg = cfg
    ag.clock = clock
    ag.sensors = sensors
    ag.link = link
    ag.isl = isl
    ag.watchdog = watchdog
    ag.reset_cause = reset_cause
    ag.workdir = workdir or root.rstrip("/") + "/work"
    ag.journal = Journal(root, cfg["max_log_bytes"], fs)
    ag.chunk_ms = cfg["task_deadline_ms"] // 2
    policy = RestartPolicy(backoff_ms=cfg["task_restart_backoff_ms"],
                           max_backoff_ms=cfg["task_restart_max_backoff_ms"],
                           max_crashes=cfg["task_crashes_before_reset"],
                           window_ms=cfg["task_crash_window_ms"], on_escalate=ag._escalate)
    ag.sched = Scheduler(clock, policy=policy, on_crash=ag._on_crash)
    ag.reset_requested = None
    ag.registered = False
    ag.empty_polls = 0     # 204 replies since the last job began or ended
    ag.ground_time = None  # the Console's clock at its last reply (Unix s)
    ag.challenge = None    # the fresh value our last poll asked a signed reply to carry
    # telemetry kept while the link is down: one file per report, one copy
    # (best effort: not journaled, not counted by the fault campaigns)
    ag.tq = Spool(root, "telemetry", segment_bytes=1, copies=1)
    # the real handlers' buffer, allocated first and kept: in a heap hours old
    # the 4 KiB may no longer be there in one piece
    ag.scratch = bytearray(DEFLATE_SEGMENT)
    ag.deflate_head = None  # compress's hash table: at the first compress, until no step is left
    ag.last_ck = 0     # clock ms of the running step's last start/progress/checkpoint/resume
    ag.refused = (None, 0)  # (outbox head seq, times the Console refused its batch)
    ag.dead_next_ms = 0     # dead letters are offered from now (deadletter.deliver)
    ag.memory_tries = (None, 0)  # (deployment, polls its workload did not fit the heap)
    ag.data_key = _data_key(cfg)
    ag.integrity = integrity or []  # [(module, problem)] found at boot (boot.py)
    # critical RAM state, triple-redundant: mirrored at every commit, scrubbed
    ag.tmr = {"seq": Cell(), "mode": Cell(), "deployment": Cell(), "step": Cell(),
              "work_ms": Cell()}
    ag.journal.after_commit = ag.mirror
    ag._scrubbing = False
    ag.stats = {"polls": 0, "batches": 0, "events_sent": 0, "event_bytes": 0,
                "feeds": 0, "feeds_refused": 0, "bad_workloads": 0,
                "seu_corrected": 0, "seu_restored": 0, "scrubs": 0}


def _data_key(cfg):
    """The AES key for outputs: config `data_key` (hex), else derived from the
    agent's identity (a development default; flight configs set data_key)."""
    if cfg.get("data_key"):
        return binascii.unhexlify(cfg["data_key"])
    return hashlib.sha256((cfg["agent_id"] + ":" + cfg["api_key"]).encode()).digest()[:16]


def boot(ag):
    """Rebuild state from the store, judge the reset, announce the boot,
    start the tasks."""
    hal.makedirs(ag.workdir)
    j = ag.journal.open()
    ag.tq.open(1 << 30, 0)  # telemetry queued before the reset goes out at the next contact
    st = j.state
    ag.mirror()
    boot_count = st["boot_count"] + 1
    intended = st.get("intended_reset")
    cause = intended or ag.reset_cause
    # An unexplained reset (watchdog, crash, power glitch: anything but a
    # power-on or our own intended reset) counts; a stable run clears it.
    unexplained = not intended and ag.reset_cause not in ("power_on",)
    resets = st.get("resets", 0) + 1 if unexplained else 0
    ag.emit("agent.booted", payload={
        "reset_cause": cause, "boot_count": boot_count,
        "firmware_version": agentconfig.FIRMWARE_VERSION, "mode": st["mode"]},
        ops=[["set", "boot_count", boot_count], ["set", "intended_reset", None],
             ["set", "resets", resets]],
        job=AGENT_LEVEL)
    st = ag.journal.state
    ag.boot_seq = st["seq"] - st["shift"]  # this boot's first event (spool seq): contact._restamp
    cut = j.damage()
    if j.corrupt:
        ag.emit("fault.detected", payload={"kind": "storage_corrupt",
                                             "detail": "journal unreadable; safe defaults"},
                  job=AGENT_LEVEL)
    elif cut:
        ag.emit("fault.detected", payload={"kind": "storage_corrupt",
                                             "detail": "%d corrupt journal record(s) or slot(s) at boot; "
                                                       "the other copy is whole" % cut},
                  job=AGENT_LEVEL)
        ag.emit("fault.recovered", payload={"kind": "storage_corrupt",
                                              "action": "restored_checkpoint"},
                  job=AGENT_LEVEL)
    if unexplained:
        blame_running_step(ag, cause)
    if st["mode"] != "safe":
        if ag.integrity:
            module, problem = ag.integrity[0]
            ag.emit("fault.detected", payload={"kind": "integrity",
                                                 "detail": "%s: %s" % (module, problem)},
                      job=AGENT_LEVEL)
            enter_safe_mode(ag, "integrity: %s %s" % (module, problem))
        elif resets >= ag.cfg["safe_mode_resets"]:
            enter_safe_mode(ag, "%d unexplained resets in a row" % resets)
    deadline = ag.cfg["task_deadline_ms"]
    spawn = ag.sched.spawn
    spawn("supervisor", ag._supervisor, priority=9, deadline_ms=deadline)
    spawn("scrub", ag._scrub_task, priority=7, deadline_ms=deadline)
    spawn("poll", ag._poll, priority=5, deadline_ms=deadline)
    spawn("report", ag._report, priority=4, deadline_ms=deadline)
    spawn("telemetry", ag._telemetry, priority=3, deadline_ms=deadline)
    spawn("execute", ag._execute, priority=1, deadline_ms=deadline)
    if ag.isl is not None:  # a constellation member: its ISL task waits for arrivals, no deadline
        __import__("constellation").install(ag)
    ag.booted_ms = ag.clock.now_ms()
    return ag


def blame_running_step(ag, cause):
    """A step that was running when an unexplained reset hit is charged with
    it; the same step causing quarantine_resets resets in a row fails."""
    st = ag.journal.state
    job = st["job"]
    if job is None:
        return
    for step in job["steps"]:
        s = st["steps"][step["id"]]
        if s["status"] != "running":
            continue
        blamed = s.get("resets", 0) + 1
        if blamed >= ag.cfg["quarantine_resets"]:
            ag.emit("fault.detected", step["id"], {
                "kind": "watchdog" if cause == "watchdog" else "task_crash",
                "detail": "step %s was running at %d resets in a row" % (step["id"], blamed)})
            ag.emit("fault.recovered", step["id"], {"kind": "watchdog",
                                                      "action": "step_quarantined"},
                      ops=[["st", step["id"], {"status": "failed", "resets": blamed,
                                               "error": "quarantined"}]])
        else:
            ag.journal.commit([["st", step["id"], {"resets": blamed}]])


def enter_safe_mode(ag, reason):
    ag.sensors.set_compute_load(0)
    ag.emit("agent.safe_mode", payload={"reason": reason}, ops=[["set", "mode", "safe"]],
              job=AGENT_LEVEL)
