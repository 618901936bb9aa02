"""The predicted execution: the agent's executor replayed against the world
models, on a simulated time line, producing the event stream the agent will
emit (docs/planner.md is the contract, event by event).

It mirrors the agent (firmware/agent.py and the modules it loads for a step:
prim_eclipse.py, prim_window.py, prim_pass.py, transfer.py): polls every tick
while the link is up, one step at a time in topological order, compute in
slices, gates checked between slices, progress marks, checkpoints, the
primitives' rules (planner_rules.py, shared), transfers in chunks. The
battery and temperature come from sim/spacecraft.py's SimulatedSatellite,
driven with the same compute load the agent would set.

Used by planner.make_plan; not meant to be called on its own.
"""
import agentconfig
import events
import planner_rules as rules
import timeutil
# the executor's own progress marks and rounding: what it does is what is predicted
from agent import EPS, _next_mark, _r

SAMPLE_S = 300.0      # forecast sample spacing (plus one at every load change)


class Infeasible(Exception):
    """(status, reason): the job cannot be planned."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Step:
    """Execution state of one step (the agent keeps the same in its journal)."""

    def __init__(self, step, compute_s, power_w, memory_mb):
        self.step = step
        self.id = step["id"]
        self.compute = float(compute_s)
        self.power = power_w
        self.memory = memory_mb
        self.work = 0.0
        self.mark = 0
        self.ck = 0
        self.last_ck = 0.0
        self.paused = False
        self.why = None
        self.paused_at = 0.0
        self.t0 = None
        self.energy_wh = 0.0
        self.spans = []          # [[start, end]] of running compute
        self.pauses = []         # [[start, end, reason]]
        self.window_id = None


class Run:
    """One prediction. env: {sat (SimulatedSatellite), windows, start, end,
    deadline, bus, saa_checkpoints [t], plan_id, job}."""

    def __init__(self, env, cfg=None):
        self.cfg = cfg or agentconfig.defaults()
        self.tick_s = self.cfg["task_deadline_ms"] // 2 / 1000.0
        self.slice_s = float(self.cfg["slice_s"])
        self.env = env
        self.sat = env["sat"]
        self.bus = env["bus"]
        self.t = env["start"]
        self.limit = env["end"]
        self.job = env["job"]
        self.job_id = env["plan_id"]
        self.ev = []
        self.forecast = []
        self._last_sample = None
        self._load = None
        self.eclipses = [w for w in env["windows"] if w["kind"] == "eclipse"]
        self.contacts = [w for w in env["windows"] if w["kind"] == "contact"]
        self.sunlits = [w for w in env["windows"] if w["kind"] == "sunlit"]
        self.saa = list(env.get("saa_checkpoints") or ())
        self.ledger = {}         # eclipse id -> [battery Wh at its start, hours, granted Wh]
        self.outputs = {}        # step id -> output_mb
        self.runs = {}           # step id -> _Step
        self.schedule = {}       # step id -> schedule entry extras
        self.windows_used = {}
        self.transfers = []

    # --- time, physics, events --------------------------------------------------

    def to(self, t):
        """Advance the world to t (never backwards), sampling the forecast."""
        if t < self.t:
            t = self.t
        sat = self.sat
        last = self._last_sample
        while last is not None and last + SAMPLE_S < t:
            last += SAMPLE_S
            sat.advance_to(last)
            self._sample(last)
        sat.advance_to(t)
        self.t = t
        if t > self.limit + 1e-3:
            raise Infeasible(422, self._late_reason())

    def _sample(self, t):
        sat = self.sat
        self.forecast.append([round(t - self.env["start"], 1),
                              round(100.0 * sat.energy_wh / sat.bus["battery_wh"], 2),
                              round(sat.temperature, 2)])
        self._last_sample = t

    def load(self, power_w, memory_mb=0):
        if power_w != self._load:
            self.sat.advance_to(self.t)
            self._sample(self.t)
            self.sat.set_compute_load(power_w, memory_mb)
            self._load = power_w

    def battery_percent(self):
        self.sat.advance_to(self.t)
        return 100.0 * self.sat.energy_wh / self.sat.bus["battery_wh"]

    def emit(self, etype, step_id=None, **payload):
        ev = events.make(etype, timeutil.iso_utc(self.t), self.job_id, step_id, payload)
        self.ev.append(ev)
        return ev

    def _late_reason(self):
        what = self.current or "the transfer"
        if self.env.get("deadline_orbits"):
            return ("deadline: %s cannot finish within deadline_orbits %s (%d s after the plan "
                    "start)" % (what, _num(self.env["deadline_orbits"]),
                                self.limit - self.env["start"]))
        return ("horizon: %s cannot finish within the %s h prediction horizon (raise "
                "planning.prediction_hours, 48 at most)" % (what, _num(self.env["hours"])))

    # --- the world as the agent sees it --------------------------------------------

    def in_eclipse(self, t=None):
        t = self.t if t is None else t
        return _containing(self.eclipses, t) is not None

    def contact(self, t=None):
        t = self.t if t is None else t
        return _containing(self.contacts, t)

    def window_of(self, kind, t=None):
        t = self.t if t is None else t
        lst = self.eclipses if kind == "eclipse" else self.sunlits
        return _containing(lst, t)

    def next_start(self, lst, t):
        """First window of lst starting after t, or None."""
        for w in lst:
            if w["start"] > t:
                return w
        return None

    def wait_contact(self, since, reason):
        """The contact the agent finds up at its first tick (from `since`) inside one."""
        while True:
            c = self.contact()
            if c is not None:
                return c
            c = self.next_start(self.contacts, self.t)
            if c is None or c["start"] >= self.limit:
                if reason:
                    raise Infeasible(422, reason)
                self.to(self.limit + 1)   # raises: past the horizon or the deadline
            self.to(self.tick_at_or_after(since, c["start"]))

    def tick_at_or_after(self, since, t):
        """The agent's first check at or after t when it checks every tick from `since`."""
        if t <= since:
            return since
        n = int((t - since) / self.tick_s - 1e-9) + 1
        if since + (n - 1) * self.tick_s >= t - 1e-9:
            n -= 1
        return since + n * self.tick_s

    def use_window(self, w):
        if w is not None:
            self.windows_used[w["id"]] = True

    # --- the job ------------------------------------------------------------------------

    def run(self, order):
        """Predict the whole job; returns the events. order: step ids in topological order."""
        self.current = None
        job = self.job
        by_id = {}
        for s in job["steps"]:
            by_id[s["id"]] = s
        self._sample(self.t)
        # job.accepted: the first poll inside a contact (the agent looks every tick)
        c = self.wait_contact(self.t, "uplink: no ground contact within the horizon to receive "
                                      "the job")
        self.use_window(c)
        accepted = {"name": job.get("name") or self.job_id, "steps": len(job["steps"])}
        enc = (job.get("security") or {}).get("encryption")
        if enc and enc != "none":
            accepted["security"] = enc
        self.emit("job.accepted", **accepted)
        self.accepted_at = self.t
        # the executor picks the job up at its next tick
        self.to(self.t + self.tick_s)
        for sid in order:
            p = self.env["placements"][sid]
            self.emit("placement.decided", sid, location=p["location"], reason=p["reason"])
        self.plan_created = self.emit("plan.created", segments=0, windows_used=0, total_duration_s=0)
        self.predicted = self.emit("checkpoint.predicted", hazards_count=0, checkpoints_count=0,
                                   next_hazard=None, max_safe_window_s=None, overhead_fraction=0,
                                   hazards=[], checkpoint_schedule=[])
        done = {}
        pending = list(order)
        while pending:
            sid = self._next(pending, by_id, done)
            pending.remove(sid)
            step = by_id[sid]
            self.current = "step %r" % sid
            if self.env["placements"][sid]["location"] == "ground":
                done[sid] = True   # the Console's ground executor runs it
                continue
            kind = step.get("type", "standard")
            if kind == "eclipse":
                self.run_eclipse(step)
            elif kind == "window":
                self.run_window(step)
            elif kind == "pass":
                self.run_pass(step)
            else:
                self.run_standard(step)
            done[sid] = True
        self.current = None
        self.transfer(order, by_id)
        total = round(self.t - self.accepted_at, 1)
        self.emit("job.completed", total_duration_s=total, status="completed")
        self.load(0)
        self._sample(self.t)
        return self.ev

    def _next(self, pending, by_id, done):
        """The agent's choice: the first pending step in topological order; when it
        is an eclipse step, the ready eclipse step of highest priority instead."""
        first = pending[0]
        if by_id[first].get("type") != "eclipse":
            return first
        best = first
        for sid in pending:
            s = by_id[sid]
            if s.get("type") == "eclipse" and all(d in done for d in s["depends_on"]) \
                    and (s.get("priority") or 0) > (by_id[best].get("priority") or 0):
                best = sid
        return best

    # --- compute, as agent._run_step does it ------------------------------------------------

    def new_step(self, step, compute_s, memory_mb=None):
        st = _Step(step, compute_s, step.get("power_w") or self.bus["compute_w"],
                   step.get("memory_mb") or 0 if memory_mb is None else memory_mb)
        self.runs[st.id] = st
        return st

    def start_step(self, st, window):
        st.t0 = self.t
        st.last_ck = self.t
        st.window_id = window["id"] if window else None
        self.use_window(window)
        self.emit("step.started", st.id, location="onboard",
                  window=st.window_id, window_label=window["kind"] if window else "unknown")

    def gate(self, st, kind):
        """Why st may not run now (agent._gate), or None. kind: where it may run:
        'sunlit' (standard), 'eclipse', or 'any' (contact-bound work)."""
        eclipse = self.in_eclipse()
        if kind == "eclipse":
            if not eclipse:
                return "eclipse"
        elif kind == "sunlit" and eclipse:
            return "eclipse"
        cfg = self.cfg
        battery = self.battery_percent()
        floor = cfg["battery_resume_pct"] if (st.paused and st.why == "battery") else cfg["battery_stop_pct"]
        if battery < floor + cfg["battery_margin_pct"]:
            return "battery"
        temp = self.sat.temperature
        ceiling = cfg["temp_resume_c"] if (st.paused and st.why == "thermal") else cfg["temp_stop_c"]
        if temp > ceiling:
            return "thermal"
        return None

    def pause(self, st, reason):
        self.load(0)
        st.ck += 1
        frac = st.work / st.compute if st.compute else 0.0
        self.emit("checkpoint.saved", st.id, checkpoint_number=st.ck, progress_fraction=_r(frac))
        self.emit("step.paused", st.id, reason=reason, progress_fraction=_r(frac))
        st.paused = True
        st.why = reason
        st.paused_at = self.t

    def resume(self, st):
        frac = st.work / st.compute if st.compute else 0.0
        st.pauses.append([st.paused_at, self.t, st.why])
        self.emit("step.resumed", st.id, progress_fraction=_r(frac),
                  paused_s=round(self.t - st.paused_at, 1))
        st.paused = False
        st.why = None
        st.last_ck = self.t

    def wake_after_pause(self, st, kind):
        """When the paused agent next finds its gate open (it looks every tick):
        eclipse pauses jump to the window boundary, others tick."""
        since = st.paused_at
        if st.why == "eclipse":
            if kind == "eclipse":
                w = self.next_start(self.eclipses, self.t)
                target = w["start"] if w else self.limit + 1
            else:
                w = _containing(self.eclipses, self.t)
                target = w["end"] if w else self.t
            t = self.tick_at_or_after(since, max(target, self.t + EPS))
            return t
        return self.tick_at_or_after(since, self.t + EPS)

    def compute(self, st, until_work, kind, leave_on=None):
        """Run st from st.work to until_work under the gates of `kind`. With
        leave_on (a pause reason), return that reason instead of waiting once
        the step pauses for it; returns None when until_work is reached."""
        cfg = self.cfg
        ck_s = float(st.step.get("checkpoint_interval_s") or 0)
        while st.work < until_work - EPS:
            reason = self.gate(st, kind)
            if reason is not None:
                if not st.paused:
                    self.pause(st, reason)
                if leave_on is not None and reason == leave_on:
                    return reason
                self.to(self.wake_after_pause(st, kind))
                continue
            if st.paused:
                self.resume(st)
            capacity = agentconfig.compute_capacity(self.battery_percent(), cfg)
            if capacity <= 0:
                self.to(self.t + self.tick_s)
                continue
            self.load(st.power, st.memory)
            left = until_work - st.work
            mark_at = min(_next_mark(st.work / st.compute) * st.compute, until_work)
            dt = min(self.slice_s, left / capacity, (mark_at - st.work) / capacity)
            dt = max(0.001, int(dt * 1000 + 0.5) / 1000.0)
            t0 = self.t
            self.to(t0 + dt)
            self._span(st, t0, self.t)
            st.energy_wh += st.power * capacity * dt / 3600.0
            st.work = min(st.compute, st.work + dt * capacity)
            if st.work >= mark_at - EPS:
                st.work = max(st.work, mark_at)
            frac = st.work / st.compute
            mark = int(frac * 4 + EPS)
            if 0 < mark < 4 and mark > st.mark:
                st.mark = mark
                self.emit("step.progress", st.id, percent=mark * 25)
                st.last_ck = self.t
            elif ck_s and self.t - st.last_ck >= ck_s and st.work < st.compute - EPS:
                self._checkpoint(st)
            elif self._saa_due(t0) and st.work < st.compute - EPS:
                self._checkpoint(st)
        return None

    def _checkpoint(self, st):
        st.ck += 1
        self.emit("checkpoint.saved", st.id, checkpoint_number=st.ck,
                  progress_fraction=_r(st.work / st.compute))
        st.last_ck = self.t

    def _saa_due(self, t0):
        """A before-SAA checkpoint time fell in the slice just run (STEPS.md:
        checkpoint at hazards; the eclipse hazard is covered by the pause)."""
        due = False
        saa = self.saa
        while saa and saa[0] <= self.t:
            if saa[0] > t0 - EPS:
                due = True
            saa.pop(0)
        return due

    def _span(self, st, a, b):
        if st.spans and abs(st.spans[-1][1] - a) < 1e-6:
            st.spans[-1][1] = b
        else:
            st.spans.append([a, b])

    def complete(self, st, output_mb, kind_window=None):
        self.load(0)
        self.outputs[st.id] = output_mb
        self.emit("step.completed", st.id, duration_s=round(self.t - st.t0, 1),
                  location="onboard", data_output_mb=_r(output_mb))

    def entry(self, st, **extra):
        e = {"window_id": st.window_id, "start": st.t0, "end": self.t, "compute_s": st.compute,
             "spans": st.spans, "pauses": st.pauses}
        for k in extra:
            e[k] = extra[k]
        self.schedule[st.id] = e

    # --- standard steps -----------------------------------------------------------------

    def run_standard(self, step):
        st = self.new_step(step, step.get("compute_s") or 0)
        kind = "eclipse" if self.in_eclipse() else "sunlit"
        self.start_step(st, self.window_of(kind))
        self.compute(st, st.compute, "sunlit")
        for a, b in st.spans:
            self.use_window(self.window_of("sunlit", a))
        self.complete(st, step.get("output_mb") or 0)
        self.entry(st)

    # --- eclipse steps (STEPS.md) ---------------------------------------------------------

    def allowance(self, step, w):
        """This step's allowed_wh in eclipse w, less what steps before it in the
        same eclipse were granted: B and T are taken once per eclipse, when the
        first eclipse step looks at it (its start, or now if under way).
        Returns (allowed_wh, ledger) where ledger = [B_wh, T_h, granted_wh]."""
        led = self.ledger.get(w["id"])
        if led is None:
            self.sat.advance_to(self.t)
            led = [self.sat.energy_wh, (w["end"] - self.t) / 3600.0, 0.0]
            self.ledger[w["id"]] = led
        sat = self.sat
        allowed = rules.eclipse_allowance_wh(step, led[0], sat.bus["battery_wh"],
                                             sat.bus["bus_load_w"], led[1])
        return allowed - led[2], led

    def run_eclipse(self, step):
        st = self.new_step(step, step.get("compute_s") or 0)
        budget = step.get("energy_budget_wh")
        w = _containing(self.eclipses, self.t) or self.next_start(self.eclipses, self.t)
        if w is None:
            raise Infeasible(422, "step %r (eclipse): no eclipse within the horizon" % st.id)
        payload = {"window": w["id"], "energy_budget_wh": budget,
                   "eclipse_policy": step.get("eclipse_policy") or "balanced"}
        warning = rules.eclipse_warning(step)
        if warning:
            payload["reason"] = warning
        self.emit("eclipse_step.scheduled", st.id, **payload)
        first_window = None
        since = self.t
        while True:
            if self.t < w["start"]:
                self.load(0)
                self.to(self.tick_at_or_after(since, w["start"]))
            needed = rules.eclipse_needed_wh(step, st.compute - st.work, self.bus["compute_w"])
            allowed, led = self.allowance(step, w)
            if budget is not None:
                allowed = min(allowed, budget - st.energy_wh)
            allowed = max(0.0, allowed)
            ok = needed <= allowed + 1e-9
            pct = self.battery_percent()
            self.emit("eclipse_step.energy_check", st.id, needed_wh=_r(needed),
                      allowed_wh=_r(allowed), battery_percent=_r(pct), ok=ok)
            if not ok:
                w = self._defer_eclipse(st, w, "insufficient_energy: needs %.2f Wh, %.2f Wh allowed"
                                        % (needed, allowed), needed, allowed)
                since = self.t
                continue
            led[2] += needed
            self.use_window(w)
            if st.t0 is None:
                first_window = w
                self.emit("eclipse_step.started", st.id, energy_budget_wh=budget,
                          eclipse_policy=step.get("eclipse_policy") or "balanced",
                          battery_percent=_r(pct))
                self.start_step(st, w)
            elif st.paused:
                self.resume(st)
            why = None
            half = st.compute / 2.0
            if st.work < half - EPS:
                why = self.compute(st, half, "eclipse", leave_on="eclipse")
                if why is None and st.work < st.compute - EPS:
                    # the 50 % check, with the real battery
                    sat = self.sat
                    sat.advance_to(self.t)
                    rest = rules.eclipse_needed_wh(step, st.compute - st.work, self.bus["compute_w"])
                    fine, room = rules.eclipse_finish_ok(step, sat.energy_wh, sat.bus["battery_wh"],
                                                         sat.bus["bus_load_w"], (w["end"] - self.t) / 3600.0,
                                                         rest, st.energy_wh)
                    self.emit("eclipse_step.energy_check", st.id, needed_wh=_r(rest),
                              allowed_wh=_r(room), battery_percent=_r(self.battery_percent()), ok=fine)
                    if not fine:
                        self.pause(st, "battery")
                        w = self._defer_eclipse(st, w, "min_battery_soc: finishing would go below "
                                                "it (checked at 50 %)", rest, room)
                        since = self.t
                        continue
            if why is None:
                why = self.compute(st, st.compute, "eclipse", leave_on="eclipse")
            if why is None:
                break
            # the eclipse ended first: resume in the next one
            nxt = self.next_start(self.eclipses, self.t)
            if nxt is None:
                raise Infeasible(422, "step %r (eclipse): needs more eclipse time than the "
                                      "horizon holds" % st.id)
            w = nxt
            since = st.paused_at
        self.complete(st, step.get("output_mb") or 0)
        self.emit("eclipse_step.completed", st.id, energy_consumed_wh=_r(st.energy_wh),
                  battery_percent=_r(self.battery_percent()))
        self.entry(st, window_id=first_window["id"] if first_window else None,
                   energy_wh=_r(st.energy_wh))

    def _defer_eclipse(self, st, w, reason, needed, allowed):
        nxt = self.next_start(self.eclipses, w["start"])
        payload = {"reason": reason, "needed_wh": _r(needed), "allowed_wh": _r(allowed)}
        if nxt is not None and nxt["start"] < self.limit:
            payload["next_window"] = nxt["id"]
        self.emit("eclipse_step.deferred", st.id, **payload)
        if nxt is None or nxt["start"] >= self.limit:
            raise Infeasible(422, "step %r (eclipse): %s at every eclipse before the %s"
                             % (st.id, reason, "deadline" if self.env.get("deadline_orbits")
                                else "end of the horizon"))
        return nxt

    # --- window steps (STEPS.md) -----------------------------------------------------------

    def run_window(self, step):
        kind = step.get("window_kind") or "sunlit"
        lst = {"sunlit": self.sunlits, "eclipse": self.eclipses, "contact": self.contacts}[kind]
        free = self.bus["memory_mb"] - self.bus["memory_base_mb"]
        since = self.t
        w = _containing(lst, self.t)
        while True:
            if w is None:
                w = self.next_start(lst, self.t)
                if w is None or w["start"] >= self.limit:
                    raise Infeasible(422, "step %r (window): no %s window left before the %s fits "
                                          "min_tier %s" % (step["id"], kind, self._end_name(),
                                                           step.get("min_tier") or "minimal"))
                self.to(self.tick_at_or_after(since, w["start"]))
            available = w["end"] - self.t - rules.TIER_MARGIN_S
            capacity = agentconfig.compute_capacity(self.battery_percent(), self.cfg)
            tier = rules.select_tier(step, available, free, capacity)
            if tier is not None:
                break
            nxt = self.next_start(lst, w["start"])
            payload = {"reason": "no tier from %s to %s fits %d s of %s window (%.0f MB free)"
                       % (step.get("min_tier") or "minimal", step.get("preferred_tier"),
                          max(0, available), kind, free)}
            if nxt is not None and nxt["start"] < self.limit:
                payload["next_window"] = nxt["id"]
            self.emit("window_step.deferred", step["id"], **payload)
            since = self.t
            w = None
        t = step["quality_tiers"][tier]
        st = self.new_step(step, t["compute_s"], t.get("memory_mb", 0))
        self.emit("window_step.tier_selected", st.id, tier=tier, available_s=round(available, 1),
                  compute_s=t["compute_s"])
        self.emit("window_step.started", st.id, tier=tier)
        self.start_step(st, w)
        self.compute(st, st.compute, "eclipse" if kind == "eclipse" else
                     ("any" if kind == "contact" else "sunlit"))
        out = t.get("output_mb", 0)
        self.complete(st, out)
        self.emit("window_step.completed", st.id, tier=tier, output_mb=_r(out))
        self.entry(st, tier=tier)

    def _end_name(self):
        return "deadline" if self.env.get("deadline_orbits") else "end of the horizon"

    # --- pass steps (STEPS.md) ---------------------------------------------------------------

    def decompose(self, step, t):
        """[(pass window, usable start, compute_s)]: one segment per pass after t
        (a pass under way counts with the time left in it) whose usable length is
        at least min_pass_duration_s."""
        remaining = float(step.get("compute_s") or 0)
        min_s = step.get("min_pass_duration_s") or 0
        cursor = t
        segs = []
        for p in self.contacts:
            if p["end"] <= cursor:
                continue
            if p["start"] >= self.limit:
                break
            a = max(p["start"], cursor)
            usable = p["end"] - a
            if usable < min_s:
                continue
            c = rules.pass_segment_s(usable, remaining)
            if c <= 0 and remaining > 0:
                continue
            segs.append((p, a, c))
            remaining -= c
            cursor = a + c + rules.PASS_MARGIN_S
            if remaining <= EPS:
                return segs, 0.0
        return segs, remaining

    def run_pass(self, step):
        sid = step["id"]
        segs, left = self.decompose(step, self.t)
        if left > EPS:
            raise Infeasible(422, "step %r (pass): passes of at least %s s before the %s host only "
                                  "%.0f of its %.0f s of compute (%d segments)"
                             % (sid, _num(step.get("min_pass_duration_s") or 0), self._end_name(),
                                (step.get("compute_s") or 0) - left, step.get("compute_s") or 0,
                                len(segs)))
        limit = step.get("max_segments")
        if limit is not None and len(segs) > limit:
            raise Infeasible(422, "step %r (pass): needs %d segments but max_segments is %d"
                             % (sid, len(segs), limit))
        n = len(segs)
        self.emit("pass_step.decomposed", sid, segments=n, passes=[s[0]["id"] for s in segs])
        st = self.new_step(step, step.get("compute_s") or 0)
        total_out = step.get("output_mb") or 0
        outs = []
        done = 0.0
        since = self.t
        plan_segs = []
        for i, (p, a, c) in enumerate(segs):
            if self.t < a:
                self.load(0)
                self.to(self.tick_at_or_after(since, a))
            self.use_window(p)
            self.emit("pass_step.segment_started", sid, segment_index=i + 1, segments_total=n,
                      pass_id=p["id"])
            if st.t0 is None:
                self.start_step(st, p)
            elif st.paused:
                self.resume(st)
            seg_t0 = self.t
            done += c
            if st.compute > 0:
                self.compute(st, min(done, st.compute), "any")
            out = total_out * c / st.compute if st.compute else total_out
            outs.append(out)
            self.emit("pass_step.segment_completed", sid, segment_index=i + 1, segments_total=n,
                      output_mb=_r(out))
            plan_segs.append({"pass_id": p["id"], "start": seg_t0, "end": self.t,
                              "compute_s": round(c, 1)})
            if i < n - 1:
                self.pause(st, "link")
                since = self.t
        merged = rules.merged_output_mb(step.get("merge_strategy") or "concat", outs)
        self.emit("pass_step.merged", sid, merge_strategy=step.get("merge_strategy") or "concat",
                  segments=n, output_mb=_r(merged))
        if st.t0 is None:
            st.t0 = self.t
        self.complete(st, merged)
        self.entry(st, window_id=segs[0][0]["id"] if segs else None, segments=plan_segs)

    # --- transfers, as transfer.py does them on board -------------------------------------------

    def transfer(self, order, by_id):
        steps = []
        for sid in order:
            s = by_id[sid]
            steps.append({"id": sid, "location": self.env["placements"][sid]["location"],
                          "depends_on": s["depends_on"], "output_mb": s.get("output_mb") or 0})
        total = rules.downlink_mb(steps, self.outputs)
        self.downlink_total = total
        if total <= 0:
            return
        self.current = "the downlink"
        enc = (self.job.get("security") or {}).get("encryption")
        if enc and enc != "none":
            self.emit("security.encrypted", algorithm=rules.encryption_algorithm(enc), data_mb=_r(total))
        rate = self.bus["downlink_mbps"] / 8.0
        if rate <= 0:
            raise Infeasible(422, "the downlink: the bus downlink_mbps is 0")
        chunk_s = float(self.cfg["transfer_chunk_s"])
        done = 0.0
        started = None
        while done < total - EPS:
            c = self.wait_contact(self.t, None)
            if started is None:
                started = self.t
                self.emit("transfer.started", direction="downlink", raw_data_mb=_r(total),
                          total_transfer_mb=_r(total))
            station = c.get("station") or "unknown"
            self.use_window(c)
            self.emit("transfer.pass_started", ground_station=station,
                      station_name=self.env["station_names"].get(station, station),
                      elevation_peak_deg=c.get("elevation_peak_deg"))
            in_pass = 0.0
            t_pass = self.t
            mark = int(done / total * 4 + EPS)
            while done < total - EPS and self.contact() is not None:
                dt = min(chunk_s, (total - done) / rate)
                dt = max(0.001, int(dt * 1000 + 0.5) / 1000.0)
                self.to(self.t + dt)
                sent = min(total - done, dt * rate)
                done += sent
                in_pass += sent
                new_mark = int(done / total * 4 + EPS)
                if new_mark > mark and done < total - EPS:
                    mark = new_mark
                    self.emit("transfer.progress", data_transferred_mb=_r(done), total_mb=_r(total))
            self.emit("transfer.pass_completed", data_transferred_mb=_r(in_pass),
                      ground_station=station)
            self.transfers.append({"pass_id": c["id"], "station": station, "start": t_pass,
                                   "end": self.t, "data_mb": _r(in_pass)})
        self.emit("transfer.completed", total_transferred_mb=_r(total),
                  duration_s=round(self.t - started, 1))
        self.current = None


def _containing(lst, t):
    for w in lst:
        if w["start"] <= t < w["end"]:
            return w
        if w["start"] > t:
            break
    return None


def _num(x):
    return int(x) if x == int(x) else x

