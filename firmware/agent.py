"""The Operator Agent: turns a plan into executed work and a typed event stream,
through dropped links, power limits and resets.

Five cooperative tasks on one lib/ scheduler:

    supervisor  feeds the watchdog only when every task checked in (may_feed)
    poll        while the link is up, at most every poll_interval_s: fetch work,
                validate it, store it, answer job.accepted (or job.failed)
    execute     runs the job's DAG: placement, steps with gates (eclipse,
                battery, heat), checkpoints, transfers at contact windows
    report      drains the outbox in batches while the link is up
    telemetry   every telemetry_interval_s; queued while the link is down

Everything that must survive a reset goes through the journal (journal.py);
the RAM copies are rebuilt from it at boot. An Agent is an object built from
config and adapters: a world may hold many.
"""
import gc
import json
import os
import sys

import agentconfig
import events
from scheduler import nap_ms, sleep_ms
from tmr import scrub_all as tmr_scrub_all

MARKS = (0.25, 0.5, 0.75)
AGENT_LEVEL = {}  # emit(job=AGENT_LEVEL): an event of the agent, not of the job it runs
ABORT = "abort"  # compute_step: the job went away, was cancelled, or the step failed
DEFLATE_SEGMENT = 4096  # handlers.DEFLATE_SEGMENT: the scratch buffer real handlers share (bootup allocates it)
SAMPLE_LINES = 400   # ~4 KB stand-in for a synthetic step's output
EPS = 1e-6


class Agent:
    # Every field of the agent, and what it holds. Set by bootup.setup at
    # construction unless noted; RAM only: what must survive a reset is in
    # the journal (journal.state), never here. (A comment costs a board
    # nothing; tests/test_agent_fields.py checks that every field any
    # firmware module sets is listed here, and every one listed is set.)
    # --- fields
    #   cfg              the config (agentconfig.make): every tunable, firmware/agentdefaults.py
    #   clock            the clock (lib/clock.py): ms since boot, epoch seconds, time sync
    #   sensors          the hardware adapters (lib/hal.py Sensors): battery, thermal, link, load
    #   link             the Console link (link.HttpLink / seriallink.SerialLink)
    #   watchdog         the hardware watchdog, fed by the supervisor task (None: none)
    #   reset_cause      why this boot happened, as the board reported it
    #   workdir          where handlers read and write files (under the storage root)
    #   journal          the persistent state and the outbox (firmware/journal.py)
    #   chunk_ms         the longest a task computes between yields (half a task deadline)
    #   sched            the cooperative scheduler (lib/scheduler.py) running the tasks
    #   reset_requested  why a task asked for a reset (the loop around the agent performs it)
    #   registered       the Console knows this boot of ours (contact.register)
    #   empty_polls      204 replies since the last job began or ended
    #   ground_time      the Console's clock at its last reply (epoch s)
    #   challenge        the fresh value our last poll asked a signed reply to carry back
    #   tq               telemetry queued while the link is down (lib/spool.py, one copy)
    #   scratch          the handlers' 4 KiB buffer, allocated at boot and kept
    #   deflate_head     compress's hash table, from its first compress until no step is left
    #   last_ck          clock ms of the running step's last start/progress/checkpoint/resume
    #   refused          (outbox head seq, times the Console refused its batch) (contact.report)
    #   dead_next_ms     clock ms before which dead letters are not offered again (deadletter.py)
    #   memory_tries     (deployment, polls its workload did not fit the heap) (accept.screen)
    #   data_key         the AES key for outputs (config data_key, else derived)
    #   integrity        [(module, problem)] the deploy manifest check found at boot (boot.py)
    #   tmr              critical RAM state, triple-redundant cells, mirrored at every commit
    #   _scrubbing       a TMR scrub is under way (the mirror waits)
    #   stats            counters since boot that telemetry reports (polls, batches, feeds, ...)
    #   booted_ms        clock ms when the boot finished (bootup.boot)
    #   boot_seq         this boot's first event (spool seq): its unsynced stamps are corrected
    #                    once the clock is set (contact._restamp)
    #   isl              the inter-satellite link port (lib/isl.py), None without one
    #   isl_ev           set when ISL messages arrive (constellation.install; with an ISL port)
    #   cst_ev           set when the ISL task changed a constellation job (the execute task waits on it)
    #   cst_hb           {satellite: [clock ms, battery, temperature, work, unfit]} heard in heartbeats
    #   cst_tx           the ISL task's RAM: next heartbeat, notices in flight (constellation.py)
    # --- end of fields

    def __init__(self, cfg, clock, sensors, link, root, **options):
        """cfg (agentconfig.make), clock, sensors (hal), link, the storage root;
        options: watchdog, fs, reset_cause, workdir, integrity, isl. Set up by
        firmware/bootup.py, which boot() drops once the tasks run."""
        _load("bootup").setup(self, cfg, clock, sensors, link, root, **options)
        self.journal.spool.max_bytes = cfg["outbox_bytes"]
        self.stats["telemetry_thinned"] = 0  # queued reports dropped, oldest first, since boot

    # --- boot ---------------------------------------------------------------

    def boot(self):
        """Rebuild state from the store, judge the reset, announce the boot,
        start the tasks (firmware/bootup.py, dropped once done)."""
        _load("bootup").boot(self)
        _unload("bootup")
        return self

    def leave_safe_mode(self):
        self.journal.commit([["set", "mode", "normal"], ["set", "resets", 0]])

    # --- SEU: triple-redundant critical state --------------------------------------

    def _current_step(self):
        st = self.journal.state
        job = st["job"]
        if job is None:
            return None, None
        for step in job["steps"]:
            s = st["steps"][step["id"]]
            if s["status"] in ("running", "paused"):
                return step["id"], s
        return None, None

    def _live(self):
        """The critical values as RAM holds them now."""
        st = self.journal.state
        job = st["job"]
        sid, s = self._current_step()
        return {"seq": st["seq"], "mode": st["mode"],
                "deployment": job["deployment_id"] if job else None, "step": sid,
                "work_ms": int(s["work_s"] * 1000) if s else None}

    def mirror(self):
        live = self._live()
        for name in live:
            self.tmr[name].set(live[name])

    def scrub(self):
        """Vote every cell, repair one upset copy, check RAM against the vote.
        A disagreement no vote can settle restores the state from the store."""
        self._scrubbing = True
        try:
            self._scrub()
        finally:
            self._scrubbing = False

    def _scrub(self):
        self.stats["scrubs"] += 1
        corrected, lost = tmr_scrub_all(self.tmr)
        live = self._live()
        wrong = [name for name in live if name not in lost and live[name] != self.tmr[name].vote()[0]]
        # one upset working value of seq or mode the cells can outvote; anything
        # more (or a step/deployment/progress upset) is reloaded from flash
        if lost or len(wrong) > 1 or (wrong and wrong[0] not in ("seq", "mode")):
            self._restore_from_store(lost + wrong)
            return
        for name in wrong:  # a single live value upset: the cells outvote it
            self.journal.state[name] = self.tmr[name].vote()[0]
            corrected.append(name)
        if corrected:
            self.stats["seu_corrected"] += len(corrected)
            self.emit("fault.detected", payload={"kind": "seu",
                                                 "detail": "corrected " + ",".join(corrected)},
                      job=AGENT_LEVEL)
            self.emit("fault.recovered", payload={"kind": "seu", "action": "tmr_vote"},
                      job=AGENT_LEVEL)

    def _restore_from_store(self, names):
        """RAM cannot be trusted: rebuild it from flash (the last checkpoint and
        the records since), as a reset would, without resetting."""
        self.stats["seu_restored"] += 1
        self.journal.open()
        self.mirror()
        self.emit("fault.detected", payload={"kind": "seu",
                                             "detail": "no majority: " + ",".join(names)},
                  job=AGENT_LEVEL)
        self.emit("fault.recovered", payload={"kind": "seu", "action": "restored_checkpoint"},
                  job=AGENT_LEVEL)

    def _scrub_task(self):
        while True:
            saa = self.sensors.in_saa()
            yield from self._sleep_s(self.cfg["scrub_interval_saa_s"] if saa
                                     else self.cfg["scrub_interval_s"])
            self.scrub()
            if self.journal.state.get("resets") and \
                    self.clock.now_ms() - self.booted_ms >= self.cfg["stable_after_s"] * 1000:
                self.journal.commit([["set", "resets", 0]])  # a stable run

    @property
    def state(self):
        return self.journal.state

    def now(self):
        return self.clock.epoch()

    def request_reset(self, reason):
        """Record an intended reset, then stop: the runner resets the node."""
        try:
            self.journal.commit([["set", "intended_reset", "intended:" + reason]])
        except Exception:
            pass  # the reset matters more than its label
        self.reset_requested = reason
        self.sched.stop()

    # --- events ---------------------------------------------------------------

    def emit(self, etype, step_id=None, payload=None, ops=(), job=None):
        """Write one event (and the state change it reports) to flash. Only then
        does it count as emitted."""
        st = self.journal.state
        seq_vote, status = self.tmr["seq"].vote()
        if seq_vote != st["seq"] and not self._scrubbing:
            self.scrub()  # never number an event from an upset counter
            st = self.journal.state
        if job is None:
            job = st["job"]
        elif job is AGENT_LEVEL:
            job = None
        payload = payload if payload is not None else {}
        if events.is_enriched(etype):
            self._enrich(payload)
        dep = job["deployment_id"] if job else None
        ev = events.make(etype, self.clock.stamp(),
                         job["job_id"] if job else None, step_id, payload,
                         agent_id=self.cfg["agent_id"], deployment_id=dep)
        # spooled without its seq: the report puts it in front (a reseq moves it)
        self.journal.emit(st["seq"] + 1, dep, json.dumps(ev, separators=(",", ":")), ops)

    def _enrich(self, payload):
        s = self.sensors
        payload["actual_battery_percent"] = s.battery_percent()
        payload["actual_temperature_c"] = s.temperature_c()
        pos = s.position()
        payload["lat"], payload["lon"], payload["altitude_km"] = pos if pos else (None, None, None)
        payload["in_eclipse"] = s.in_eclipse()

    # --- helpers ----------------------------------------------------------------

    def link_up(self):
        return self.sensors.link_up() is not False  # unknown: try

    def _outbox_low(self, resuming=False):
        """Too little room in the outbox for work: less free than the reserve
        (boot and health events) plus the pause margin (twice it to resume)."""
        cfg, sp = self.cfg, self.journal.spool
        free = sp.max_bytes
        for seg in sp.segs:  # what the live records take (lib/spool.py)
            free -= seg[3]
        return free < cfg["outbox_reserve_bytes"] + cfg["outbox_pause_bytes"] * (2 if resuming else 1)

    def _sleep_s(self, seconds):
        """Sleep in pieces shorter than the task deadline (the supervisor rule);
        on a simulated clock in one nap (scheduler.nap_ms: checked in meanwhile)."""
        end = self.clock.now_ms() + int(seconds * 1000)
        if self.clock.simulated:  # one wake-up: the scheduler holds it checked in
            if end > self.clock.now_ms():
                yield nap_ms(end - self.clock.now_ms())
            return
        while True:
            left = end - self.clock.now_ms()
            if left <= 0:
                return
            yield sleep_ms(min(left, self.chunk_ms))

    def _look(self, ms, nap=False):
        """The wait before a look that does nothing while the link is down
        (poll, report, an idle execute: work comes only over the link): ms.
        On a simulated clock, while the link is known to stay down, a nap
        through as many whole ms as that lasts: the same looks at the same
        times, fewer wake-ups (docs/sim.md "A simulated day"). nap: ms is a
        nap too (the report's, as its sleep was)."""
        down = self.sensors.link_down_ms
        down = down() if down is not None and self.clock.simulated else None
        return nap_ms(ms * -(-down // ms)) if down else (nap_ms(ms) if nap else sleep_ms(ms))

    def _on_crash(self, name, exc, count):
        if self.journal.out_of_sync:
            self.request_reset("journal out of sync after %s" % type(exc).__name__)
            return
        if self.cfg.get("debug"):
            sys.print_exception(exc) if hasattr(sys, "print_exception") else print(repr(exc))
        self.emit("fault.detected", payload={"kind": "task_crash",
                                             "detail": "%s: %s %s" % (name, type(exc).__name__, exc)})
        self.emit("fault.recovered", payload={"kind": "task_crash", "action": "task_restarted"})

    def _escalate(self, name, crashes):
        self.request_reset("task %s crashed %d times" % (name, crashes))

    # --- supervisor -------------------------------------------------------------

    def _supervisor(self):
        # (a simulated node replaces this with sim/lazywatch.py's, which skips
        # the ticks at which no task can be late)
        while True:
            if self.sched.may_feed():
                self.stats["feeds"] += 1
                if self.watchdog is not None:
                    self.watchdog.feed()
            else:
                self.stats["feeds_refused"] += 1
            yield sleep_ms(1000)

    # --- poll -------------------------------------------------------------------

    def _poll(self):
        while True:
            up = self.link_up()
            if up and self.registered and self._outbox_low():
                yield from self._sleep_s(self.cfg["poll_interval_s"])  # drain first, take work after
            elif up:
                spec, ground_before = yield from _load("contact").poll(self)
                if spec is not None:
                    # a workload to validate: the heap needs the room more than
                    # the link's code does (both are loaded again at need)
                    self.link.idle()
                    _unload("contact", "deadletter")
                    box = [spec, ground_before]
                    spec = None  # the box is the only holder: take() lets it go
                    self._intake(box)
                    box = None
                yield from self._sleep_s(self.cfg["poll_interval_s"])
            else:
                # no contact: the link's client and the contact code leave the heap
                self.link.idle()
                _unload("contact", "deadletter")
                yield self._look(self.chunk_ms)

    def _intake(self, box):
        """Take a polled workload (box: [spec, Console time before it]) in
        three steps, one module in the heap at a time: screen and take
        (accept.py), between them the check (workload.py, the biggest)."""
        ticket = _load("accept").screen(self, box[0], box[1])
        _unload("accept")
        if ticket is None:
            return
        try:
            box[1] = _load("workload").check_on_board(box[0], self.cfg, ticket[1],
                                                      self.journal.state["nonces"],
                                                      self.challenge)
        except MemoryError:
            box[1] = None
        _unload("workload", "uplink", "signing", "handlers")
        _load("accept").take(self, box, ticket[0])
        _unload("accept")

    # --- execute ------------------------------------------------------------------

    def _execute(self):
        while True:
            st = self.journal.state
            job = st["job"]
            if job is None or st["mode"] == "safe":  # a job, or the word to leave safe mode, comes only over the link
                yield self._look(self.chunk_ms)
                continue
            if job.get("cancel"):
                self.sensors.set_compute_load(0)
                self._finish("cancelled", "cancelled by ground")
                continue
            phase = job["phase"]
            if phase != "transfer" and self._outbox_low() and self._current_step()[0] is None:
                yield sleep_ms(self.chunk_ms)  # no new work: the outbox must drain first
                continue
            if phase == "accepted":
                _load("announce").announce(self, job)
                _unload("announce")
                yield
            elif phase == "run":
                step = self._next_step(job)
                if step is None and job.get("cst") is not None:
                    # a constellation job: the others' steps are theirs to run
                    yield from _load("constellation").idle(self, job)
                elif step is None:
                    # no step left to run: compress's table goes back to the heap
                    # (the transfer phase and the hours before the next job need room)
                    self.deflate_head = None
                    failed = [s["id"] for s in job["steps"] if st["steps"][s["id"]]["status"] == "failed"]
                    if failed:  # the reason says which step, and why (its error)
                        self._finish("failed", "step %r failed: %s" % (
                            failed[0], st["steps"][failed[0]].get("error") or "unknown"))
                    else:
                        self.journal.commit([["jset", "phase", "transfer"]])
                else:
                    yield from self._run_step(job, step)
            elif phase == "transfer":
                try:
                    yield from _load("transfer").transfer(self, job)
                finally:
                    _unload("transfer")
            elif job.get("cst") is not None:  # the others are told first
                yield from _load("constellation").close(self, job)
            else:
                self._finish("completed", None)

    def _next_step(self, job):
        """The first ready step in topological order; when that is an eclipse
        step, the ready eclipse step of highest priority (one step at a time)."""
        steps = self.journal.state["steps"]
        cst = job.get("cst")
        first = None
        for step in job["steps"]:
            s = steps[step["id"]]
            if s["status"] in ("done", "failed", "moved"):
                continue
            if cst is not None and cst["own"][step["id"]][0] != cst["me"]:
                continue  # another satellite's
            if s["status"] in ("running", "paused"):
                return step  # under way (e.g. after a reset): finish it first
            if first is None and all(steps[d]["status"] == "done" for d in step["depends_on"]):
                first = step
        if first is None or first["type"] != "eclipse":
            return first
        best = first
        for step in job["steps"]:
            if step["type"] != "eclipse" or steps[step["id"]]["status"] != "pending" or \
                    (cst is not None and cst["own"][step["id"]][0] != cst["me"]):
                continue
            if all(steps[d]["status"] == "done" for d in step["depends_on"]) and \
                    (step["prim"].get("priority") or 0) > (best["prim"].get("priority") or 0):
                best = step
        return best

    def _gate(self, step, s, kind="sunlit"):
        """Why the step may not run now (a reason string), or None. kind: where
        it may run -- 'sunlit' (standard), 'eclipse' (battery-only night), or
        'any' (contact-bound work: battery and heat only)."""
        sensors, cfg = self.sensors, self.cfg
        paused_for = s.get("why") if s["status"] == "paused" else None
        if self._outbox_low(paused_for == "outbox_full"):
            return "outbox_full"
        eclipse = sensors.in_eclipse()
        if kind == "eclipse":
            if eclipse is False:
                return "eclipse"  # an eclipse step waits for the night
        elif kind == "sunlit" and eclipse:
            return "eclipse"
        battery = sensors.battery_percent()
        if battery is not None:
            floor = cfg["battery_resume_pct"] if paused_for == "battery" else cfg["battery_stop_pct"]
            if battery < floor + cfg["battery_margin_pct"]:
                return "battery"
        temp = sensors.temperature_c()
        if temp is not None:
            ceiling = cfg["temp_resume_c"] if paused_for == "thermal" else cfg["temp_stop_c"]
            if temp > ceiling:
                return "thermal"
        return None

    def _run_step(self, job, step):
        sid = step["id"]
        s = self.journal.state["steps"][sid]
        if step["location"] == "ground":
            # Ground steps run in the Console's ground executor once their
            # inputs are downlinked; on board they are only bookkeeping.
            self.journal.commit([["st", sid, {"status": "done", "ground": True}]])
            return
        self.last_ck = self.clock.now_ms()
        kind = step["type"]
        if kind in ("eclipse", "window", "pass"):
            run = getattr(_load("prim_" + kind), "run_" + kind)
            try:
                yield from run(self, job, step, s)
            finally:
                run = None
                # loaded again by the next primitive step (its import brought in
                # primitives; the rules it loads by name, and drops, are named)
                _unload("prim_" + kind, "planner_rules")
        else:
            if s["status"] == "pending":
                kind = self._window_kind()
                self.start_step(step, s, kind, kind, s.get("resume"))
            runner = self.step_runner(job, step, s)
            if runner is None:
                return
            why = yield from self.compute_step(job, step, s, runner, step["compute_s"], "sunlit")
            if why is None:
                yield from self.complete_step(job, step, s, runner, step["output_mb"])

    def start_step(self, step, s, window, label, extra=None):
        fields = {"status": "running", "t0": self.now(), "work_s": 0.0, "mark": 0, "ck": 0,
                  "hs": None, "attempts": s.get("attempts", 0) + 1, "energy_wh": 0.0}
        if extra:
            for key in extra:
                fields[key] = extra[key]
        self.emit("step.started", step["id"], {"location": "onboard", "window": window,
                                               "window_label": label},
                  ops=[["st", step["id"], fields]])
        job = self.journal.state["job"]
        if job.get("cst") is not None:
            _load("constellation").started(self, job, step)
        self.last_ck = self.clock.now_ms()

    def step_runner(self, job, step, s):
        try:
            return _HandlerRun(step, s.get("hs"), self._handler_ctx(step))
        except MemoryError:
            raise  # the heap's state, not the step's fault: the task restarts and tries again
        except Exception as exc:
            self._step_failed(job, step, s, "%s: %s" % (type(exc).__name__, exc))
            return None

    def pause_step(self, step, s, reason, runner):
        self.sensors.set_compute_load(0)
        sid = step["id"]
        fraction = _r(s["work_s"] / self._compute_s(step, s))
        ck = s.get("ck", 0) + 1
        self.emit("checkpoint.saved", sid, {"checkpoint_number": ck, "progress_fraction": fraction},
                  ops=[["st", sid, {"work_s": s["work_s"], "ck": ck, "energy_wh": s.get("energy_wh", 0.0),
                                    "hs": runner.snapshot() if runner else None}]])
        self.emit("step.paused", sid, {"reason": reason, "progress_fraction": fraction},
                  ops=[["st", sid, {"status": "paused", "why": reason, "paused_at": self.now()}]])

    def resume_step(self, step, s):
        self.emit("step.resumed", step["id"],
                  {"progress_fraction": _r(s["work_s"] / self._compute_s(step, s)),
                   "paused_s": round(self.now() - s.get("paused_at", self.now()), 1)},
                  ops=[["st", step["id"], {"status": "running", "why": None}]])
        self.last_ck = self.clock.now_ms()

    def _compute_s(self, step, s):
        c = s.get("compute")
        return c if c is not None else step["compute_s"]

    def compute_step(self, job, step, s, runner, until_work, kind, leave_on=None):
        """Run the step's work up to until_work (s at full capacity) under the
        gates of `kind` ('sunlit', 'eclipse', or 'any'). Returns None when
        reached; the pause reason when it pauses for `leave_on`; ABORT when the
        job went away, was cancelled, or the step failed."""
        sid = step["id"]
        compute = self._compute_s(step, s)
        power = step["power_w"] or job["compute_w"]
        memory = s.get("memory") if s.get("memory") is not None else step["memory_mb"]
        ck_ms = int(step["checkpoint_interval_s"] * 1000)
        cst = job.get("cst")
        while s["work_s"] < until_work - EPS:
            if self.journal.state["job"] is not job or job.get("cancel"):
                return ABORT
            if cst is not None and _load("constellation").guard(self, job, step, s, runner):
                return ABORT  # handed over (or failed) here, or fenced by a higher epoch
            reason = self._gate(step, s, kind)
            if reason is not None:
                if s["status"] != "paused":
                    self.pause_step(step, s, reason, runner)
                if leave_on is not None and reason == leave_on:
                    return reason
                yield sleep_ms(self.chunk_ms)
                continue
            if s["status"] == "paused":
                self.resume_step(step, s)
            capacity = agentconfig.compute_capacity(self.sensors.battery_percent(), self.cfg)
            if capacity <= 0:
                yield sleep_ms(self.chunk_ms)  # compute unavailable: the gate pauses next round
                continue
            # the step's power before capacity scaling: the bus scales it (MODELS.md)
            self.sensors.set_compute_load(power, memory)
            left = until_work - s["work_s"]
            mark_at = min(_next_mark(s["work_s"] / compute) * compute, until_work)
            dt = min(self.cfg["slice_s"], left / capacity, (mark_at - s["work_s"]) / capacity)
            t0 = self.clock.now_ms()
            yield sleep_ms(max(1, int(dt * 1000 + 0.5)))
            elapsed = (self.clock.now_ms() - t0) / 1000
            s["energy_wh"] = s.get("energy_wh", 0.0) + power * capacity * elapsed / 3600.0
            s["work_s"] = min(compute, s["work_s"] + elapsed * capacity)
            if s["work_s"] >= mark_at - EPS:
                s["work_s"] = max(s["work_s"], mark_at)
            self.tmr["work_ms"].set(int(s["work_s"] * 1000))
            fraction = s["work_s"] / compute
            error = yield from runner.advance(fraction)
            if error is not None:
                self.sensors.set_compute_load(0)
                self._step_failed(job, step, s, error)
                return ABORT
            mark = int(fraction * 4 + EPS)
            if 0 < mark < 4 and mark > s.get("mark", 0):
                self.emit("step.progress", sid, {"percent": mark * 25},
                          ops=[["st", sid, {"work_s": s["work_s"], "mark": mark,
                                            "energy_wh": s["energy_wh"], "hs": runner.snapshot()}]])
                self.last_ck = self.clock.now_ms()
            elif ck_ms and self.clock.now_ms() - self.last_ck >= ck_ms and s["work_s"] < compute - EPS:
                ck = s.get("ck", 0) + 1
                self.emit("checkpoint.saved", sid, {"checkpoint_number": ck,
                                                    "progress_fraction": _r(fraction)},
                          ops=[["st", sid, {"work_s": s["work_s"], "ck": ck,
                                            "energy_wh": s["energy_wh"], "hs": runner.snapshot()}]])
                self.last_ck = self.clock.now_ms()
        return None

    def complete_step(self, job, step, s, runner, out_mb, then=None):
        """Finish the real handler, report step.completed (and `then`, a
        primitive's own completion event, in the same breath)."""
        error = yield from runner.advance(1.0)
        self.sensors.set_compute_load(0)
        if error is not None:
            self._step_failed(job, step, s, error)
            return
        result = runner.result
        if runner.gen is not None:
            runner.gen = None
            _unload("handlers", *_load("handlers").MODULES)
        if result is not None and isinstance(result.get("output_mb"), (int, float)):
            out_mb = result["output_mb"]
        sid = step["id"]
        done = {"status": "done", "work_s": self._compute_s(step, s), "out_mb": out_mb,
                "res": result, "hs": None}
        if then is None:
            self.emit("step.completed", sid, {"duration_s": round(self.now() - s.get("t0", self.now()), 1),
                                              "location": "onboard", "data_output_mb": _r(out_mb)},
                      ops=[["st", sid, done]])
        else:
            self.emit("step.completed", sid, {"duration_s": round(self.now() - s.get("t0", self.now()), 1),
                                              "location": "onboard", "data_output_mb": _r(out_mb)})
            self.emit(then[0], sid, then[1], ops=[["st", sid, done]])
        if job.get("cst") is not None:
            _load("constellation").completed(self, job, step, s)
        if ON_BOARD_HEAP:  # the step's buffers back in one piece before the next one
            gc.collect()

    def _handler_ctx(self, step):
        """What a real handler is lent: where files go, the outputs of the
        steps it depends on, the boot-time scratch buffer, the data key."""
        if step["handler"] == "synthetic":
            return None
        steps = self.journal.state["steps"]
        inputs = []
        for dep in step["depends_on"]:
            res = steps[dep].get("res")
            if isinstance(res, dict) and (res.get("path") or res.get("value") is not None):
                inputs.append(res)
            else:
                inputs.append({"path": self._sample(dep)})
        if step["handler"] == "compress" and self.deflate_head is None:
            self.deflate_head = _load("handlers").new_deflate_head()
        return {"workdir": self.workdir, "data_root": self.workdir, "inputs": inputs,
                "scratch": self.scratch, "deflate_head": self.deflate_head, "key": self.data_key}

    def _sample(self, step_id):
        """A synthetic step accounts its output without materialising it (an MCU
        has no room for 200 MB); real handlers downstream work on this small,
        deterministic stand-in of it instead (a sensor series, as text)."""
        path = "%s/%s.sample" % (self.workdir, step_id)
        try:
            os.stat(path)
            return path
        except OSError:
            pass
        tmp = path + ".tmp"
        seed = 0
        for ch in step_id:
            seed = (seed * 31 + ord(ch)) & 0xFFFF
        with open(tmp, "w") as f:
            for i in range(SAMPLE_LINES):
                seed = (seed * 1103 + 12345) & 0xFFFF
                f.write("%d,%d.%02d\n" % (i, seed % 500, seed % 100))
        os.rename(tmp, path)
        return path

    def _step_failed(self, job, step, s, error):
        sid = step["id"]
        attempts = s.get("attempts", 0)
        if s["status"] == "pending":
            attempts += 1  # it failed before it started (start_step counts the others): a try all the same
        if step["retry_policy"] != "fail" and attempts <= step["max_retries"]:
            self.emit("fault.detected", sid, {"kind": "task_crash",
                                              "detail": "step %s: %s" % (sid, error)},
                      ops=[["st", sid, {"status": "pending", "work_s": 0.0, "mark": 0, "hs": None,
                                        "attempts": attempts}]])
            return
        self.journal.commit([["st", sid, {"status": "failed", "error": error}]])

    def _window_kind(self):
        return "eclipse" if self.sensors.in_eclipse() else "sunlit"

    # --- transfers ------------------------------------------------------------------

    def _finish(self, status, reason):
        self.empty_polls = 0
        st = self.journal.state
        job = st["job"]
        total = round(self.now() - job["accepted_at"], 1)
        if status == "completed":
            self.emit("job.completed", payload={"total_duration_s": total, "status": "completed"},
                      ops=[["end", job["deployment_id"]]])
        else:
            self.emit("job.failed", payload={"total_duration_s": total, "status": status,
                                             "reason": reason},
                      ops=[["end", job["deployment_id"]]])

    # --- report ---------------------------------------------------------------------

    def _report(self):
        while True:
            if self.clock.simulated:  # while the link is known to stay down, one nap (_look)
                yield self._look(self.cfg["report_interval_s"] * 1000, True)
            else:
                yield from self._sleep_s(self.cfg["report_interval_s"])
            # after register: the Console must know us (and we our seq) first
            # (dead letters wait too: contact.report hands them over)
            if self.registered and (self.journal.pending() or self.journal.state.get("dead")) \
                    and self.link_up():
                yield from _load("contact").report(self)

    # --- telemetry --------------------------------------------------------------------

    def telemetry(self):
        s = self.sensors
        st = self.journal.state
        job = st["job"]
        pos = s.position()
        doc = {"agent_id": self.cfg["agent_id"], "timestamp": self.clock.stamp(),
               "status": "safe_mode" if st["mode"] == "safe" else ("executing" if job else "idle"),
               "battery_percent": s.battery_percent(), "temperature_c": s.temperature_c(),
               "compute_capacity": agentconfig.compute_capacity(s.battery_percent(), self.cfg),
               "boot_count": st["boot_count"], "reset_cause": self.reset_cause, "mode": st["mode"],
               "heap_free": gc.mem_free() if hasattr(gc, "mem_free") else None,
               "outbox_depth": self.journal.pending(), "seq": st["seq"],
               "unexplained_resets": st.get("resets", 0),
               "seu_corrected": self.stats["seu_corrected"],
               "seu_restored": self.stats["seu_restored"],
               "telemetry_thinned": self.stats["telemetry_thinned"], "events_shed": st.get("shed", 0),
               "events_refused": st.get("refused", 0), "dead_letters": st.get("dead", 0)}
        if job is not None and job["phase"] == "transfer":
            doc["status"] = "transferring"
        if pos:
            doc["position"] = {"lat": pos[0], "lon": pos[1], "altitude_km": pos[2],
                               "in_eclipse": bool(s.in_eclipse())}
        return doc

    def _telemetry(self):
        while True:
            text = json.dumps(self.telemetry(), separators=(",", ":"))
            if self.link_up():
                yield from _load("contact").telemetry(self, text)
            else:
                self.queue_telemetry(text)
            text = None
            yield from self._sleep_s(self.cfg["telemetry_interval_s"])

    def queue_telemetry(self, text):
        """Keep a report for the next contact: on flash (the newest
        telemetry_queue of them), not in RAM."""
        q = self.tq
        n = q.segs[-1][2] + 1 if q.segs else 1
        before = len(q.segs)
        q.drop(n - self.cfg["telemetry_queue"])  # the oldest thinned first, counted
        try:
            q.append(n, None, text)
        except Exception:  # best effort: a full or failing queue is thinning too
            before += 1
        self.stats["telemetry_thinned"] += before + 1 - len(q.segs)


class _HandlerRun:
    """Drives a real handler alongside the step's modelled compute time: the
    handler's own progress is kept at or ahead of the step's. `synthetic`
    needs no driving: the modelled time is its work."""

    def __init__(self, step, state, ctx):
        self.name = step["handler"]
        self.state = state if isinstance(state, dict) else {}
        self.result = None
        self.progress = 0.0
        self.gen = None
        self.done = self.name == "synthetic"
        if not self.done:
            self.gen = _load("handlers").get(self.name)(step, self.state, ctx)

    def snapshot(self):
        """A copy of the handler's resume point, to journal."""
        return json.loads(json.dumps(self.state)) if self.gen is not None else None

    def advance(self, fraction):
        """Run handler slices until its progress reaches `fraction`; yields to
        the scheduler between slices. Returns None, or an error string."""
        while not self.done and self.progress < fraction - EPS:
            try:
                report = next(self.gen)
            except StopIteration as stop:
                self.done = True
                self.progress = 1.0
                self.result = stop.value if isinstance(stop.value, dict) else None
                break
            except MemoryError:
                raise  # not the step's fault (see step_runner)
            except Exception as exc:  # a handler's failure is the step's, not the agent's
                self.done = True
                return "%s: %s" % (type(exc).__name__, exc)
            if isinstance(report, (int, float)):
                self.progress = report
            yield
        return None


ON_BOARD_HEAP = sys.implementation.name == "micropython"


# Overlays: modules loaded for a task and dropped after (docs/sim.md "Memory").
# _load remembers what an overlay's import brought into RAM with it, and
# _unload drops the overlay and all of that: a new import in an overlay can
# not stay behind unnoticed (tests/test_overlays.py). What an overlay's
# functions import later, by name, the caller names too.
_BROUGHT = {}


def _load(name):
    """The overlay module `name`, imported if it is not in RAM."""
    mods = sys.modules
    if name in mods:
        return mods[name]
    if not ON_BOARD_HEAP:
        return __import__(name)
    before = list(mods)
    module = __import__(name)
    brought = [m for m in mods if m != name and m not in before]
    if brought:
        _BROUGHT[name] = brought
    return module


def _unload(*names):
    """Drop overlays, and what their import brought in, from RAM (a board
    re-imports them from flash). On MicroPython only, where a loaded module
    lives in the heap; CPython (the planner's forecast, the Console) keeps
    them, as sim/node.py does."""
    if not ON_BOARD_HEAP:
        return
    mods = sys.modules
    gone = False
    for name in names:
        for m in _BROUGHT.pop(name, ()):
            if m in mods:
                del mods[m]
        if name in mods:
            del mods[name]
            gone = True
    if gone:
        gc.collect()


def _next_mark(fraction):
    for m in MARKS:
        if fraction < m - EPS:
            return m
    return 1.0


def _r(x):
    return round(x, 4) if isinstance(x, float) else x
