"""The predicted event stream is the firmware's own run (STEPS.md "The plan").

`run(...)` boots the unchanged agent (firmware/agent.py) under CPython, on the
simulated clock, in the world models' forecast of the plan's horizon (the
orbit's windows, battery and thermal from sim/spacecraft.py), with an
in-process stand-in for the Console that hands it the workload at its first
contact and acknowledges every batch it reports. What the agent emits for the
deployment is the prediction; the schedule, the downlinks and the battery and
temperature forecast are read from that run, not computed beside it. Nothing
here decides anything a step does: the agent does.

The agent's storage is a scratch folder (the journal and the outbox as on a
board); its hardware is the simulated satellite through lib/hal's adapters
and its supervisor the simulated clock's (sim/lazywatch.py), as in
sim/node.py. Same job, same start: the same stream, byte for byte.
"""
import json
import shutil
import tempfile

import agentconfig
import hal
import lazywatch
import timeutil
from agent import Agent
from clock import SimClock

AGENT_ID = "forecast"
DEPLOYMENT_ID = "dep-forecast"
SAMPLE_S = 300            # forecast samples (t, battery %, temperature) this often
IDLE_WAKE_MS = 1000       # a scheduler with nothing due is looked at again this soon
ENVELOPE = ("type", "timestamp", "job_id", "step_id", "payload")


class ForecastConsole:
    """The Console as the forecast needs it, in process: register, the workload
    at the first poll (204 after), every event batch acknowledged, telemetry
    taken. `events`: what the agent reported for the deployment, in seq order."""

    def __init__(self, clock, spec):
        self.clock = clock
        self.spec = spec
        self.handed_at = None  # epoch s of the poll that took the workload
        self.events = []
        self.last_error = None
        self._stored = set()
        self._acked = 0

    def call(self, method, path, body=None, raw=None):
        if False:  # a generator, as a link is: this one never has to wait
            yield None
        now = timeutil.iso_utc(self.clock.epoch())
        if path == "/api/agent/register":
            return 201, {"id": AGENT_ID, "status": "idle", "last_seq": 0, "acked_seq": 0,
                         "server_time": now}
        if path.startswith("/api/agent/workloads"):
            if self.handed_at is None and self.spec is not None:  # None: nothing for it
                self.handed_at = self.clock.epoch()
                return 200, dict(self.spec, server_time=now)
            return 204, None
        if method == "POST" and (path == "/api/agent/events" or path.endswith("/events")):
            text = raw if raw is not None else json.dumps(body)
            if isinstance(text, tuple):  # the batch in pieces (bytes, memoryviews)
                text = b"".join(bytes(p) for p in text)
            evs = json.loads(text)
            evs = evs if isinstance(evs, list) else [evs]
            for ev in evs:
                if ev["seq"] in self._stored:
                    continue
                self._stored.add(ev["seq"])
                if path != "/api/agent/events":
                    self.events.append(ev)
            while self._acked + 1 in self._stored:
                self._acked += 1
            return 201, {"ids": [ev["seq"] for ev in evs], "acked_seq": self._acked,
                         "server_time": now}
        if path == "/api/agent/telemetry":
            return 200, {"ok": True, "server_time": now}
        return 404, {"error": "the forecast's Console has no %s %s" % (method, path)}

    def idle(self):
        pass


class Outcome:
    """What the forecast run shows: `events` (the deployment's, in seq order,
    as envelopes: type, timestamp, job_id, step_id, payload),
    `accepted_at` / `ended_at` (epoch s, None if it never happened),
    `failure` (the agent's reason, naming the step, when the job failed),
    `running` (the step running or waiting when the run stopped), `samples`
    [[t_s from start, battery %, temperature °C]]."""

    def __init__(self):
        self.events = []
        self.accepted_at = None
        self.ended_at = None
        self.failure = None
        self.running = None
        self.samples = []


def run(spec, satellite, start, end, cfg=None):
    """Run the agent from `start` (epoch s) until its job has ended or the
    clock reaches `end`. spec: the compact WorkloadSpec the agent is handed
    (what a real agent gets at its first poll); satellite: a SimulatedSatellite
    without a clock (this run gives it one). Returns an Outcome."""
    root = tempfile.mkdtemp(prefix="umbra-forecast-")
    try:
        return _run(spec, satellite, start, end, cfg, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(spec, sat, start, end, cfg, root):
    overrides = dict(cfg or {})
    overrides.update({"agent_id": AGENT_ID, "api_url": "forecast:", "api_key": "forecast",
                      "satellite_id": str(spec.get("satellite_id") or "forecast"),
                      "storage_root": root, "time_sync": False, "uplink_key": None})
    cfg = agentconfig.make(overrides)
    clock = SimClock(start_epoch=start)
    sat.clock = clock
    console = ForecastConsole(clock, spec)
    watchdog = hal.SimWatchdog(cfg["watchdog_timeout_ms"], clock=clock)
    watchdog.arm()
    _stand_in_inputs(spec, root + "/work")
    agent = Agent(cfg, clock, hal.sim_sensors(sat), console, root, watchdog=watchdog,
                  reset_cause="power_on", workdir=root + "/work")
    lazywatch.install(agent)  # as sim/node.py: watchdog ticks no task can miss are skipped
    agent.boot()
    out = Outcome()
    end_ms = int((end - start) * 1000)
    next_sample = 0
    sched = agent.sched
    while True:
        sched.run_due()
        now = clock.now_ms()
        while next_sample <= now:
            out.samples.append([next_sample // 1000, round(sat.battery_percent(), 2),
                                round(sat.temperature_c(), 2)])
            next_sample += SAMPLE_S * 1000
        if agent.reset_requested or watchdog.expired(now):
            raise RuntimeError("the agent reset in the forecast (%s): a nominal run never does"
                               % (agent.reset_requested or "watchdog"))
        st = agent.journal.state
        if DEPLOYMENT_ID in st["done"] and st["job"] is None:
            break
        if now >= end_ms:
            break
        nxt = sched.next_wake_ms()
        nxt = now + IDLE_WAKE_MS if nxt is None else nxt
        nxt = min(nxt, end_ms, next_sample)
        if nxt > now:
            clock.wait_until(nxt)
    # everything the agent emitted: reported, or still in its outbox
    events = list(console.events)
    if agent.journal.pending():
        for seq, dep, text in agent.journal.outbox(10 ** 6, 10 ** 9):
            if bytes(dep) == DEPLOYMENT_ID.encode():  # the spooled text lacks its seq
                events.append(json.loads(b'{"seq":%d,' % seq + bytes(memoryview(text)[1:])))
    events.sort(key=lambda e: e["seq"])
    # the prediction is the envelope (EVENTS.md); who sent it, and its seq, are the
    # flying agent's own
    out.events = [dict((k, e.get(k)) for k in ENVELOPE) for e in events]
    out.samples.append([round(clock.now_ms() / 1000.0, 1), round(sat.battery_percent(), 2),
                        round(sat.temperature_c(), 2)])
    for ev in events:
        if ev["type"] == "job.accepted":
            out.accepted_at = timeutil.parse_iso(ev["timestamp"])
        elif ev["type"] in ("job.completed", "job.failed"):
            out.ended_at = timeutil.parse_iso(ev["timestamp"])
            if ev["type"] == "job.failed":
                out.failure = ev["payload"].get("reason") or "the job failed"
    job = st["job"]
    if job is not None:
        for step in job["steps"]:
            if st["steps"][step["id"]]["status"] not in ("done", "failed"):
                out.running = step
                break
        else:
            out.running = {"id": None, "type": "downlink"}
    return out


STAND_IN_LINES = 256  # a stand-in input file: a sensor series of this many lines


def _stand_in_inputs(spec, workdir):
    """The board's data a step names as its input file (its payload's
    recordings) is not the planner's to know: the forecast's flash holds a
    small deterministic stand-in for each (the hardware's part, faked as the
    simulator fakes sensors), so a nominal run finds its data as a board does."""
    import os
    steps = ((spec.get("plan_data") or {}).get("job") or {}).get("steps") or ()
    for step in steps:
        path = step.get("input")
        if isinstance(path, dict):
            path = path.get("path")
        if not isinstance(path, str) or not path or path.startswith("/") or ".." in path:
            continue
        full = os.path.join(workdir, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if os.path.exists(full):
            continue
        with open(full, "w") as f:
            for i in range(STAND_IN_LINES):
                f.write("%d,%d.%02d\n" % (i, (i * 7919) % 500, (i * 31) % 100))
