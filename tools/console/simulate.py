"""Simulated deployments: the Console writes the plan's predicted events itself
(agent_id "sim", seq 1..n), paced by speed_multiplier (0 = all at once;
otherwise the predicted gaps divided by the multiplier), so the event views
work for plans that never flew. One daemon thread per running simulation;
a restarted Console resumes unfinished ones (already stored seqs are skipped).
A constellation is simulated child by child: each writes its satellite's
share of the plan's predicted fleet stream (the parent follows them)."""
import threading
import time

import timeutil

from . import constellations, deployments

SIM_AGENT = "sim"


def origin_of(dep_id):
    return "sim:" + dep_id


class Simulator:
    def __init__(self, db):
        self.db = db
        self.stop = threading.Event()
        self._threads = {}
        self._wakers = {}
        self._lock = threading.Lock()

    def start(self, dep_id):
        with self._lock:
            t = self._threads.get(dep_id)
            if t is not None and t.is_alive():
                return
            self._wakers[dep_id] = threading.Event()
            t = threading.Thread(target=self._run, args=(dep_id,), daemon=True,
                                 name="sim-" + dep_id)
            self._threads[dep_id] = t
            t.start()

    def resume_all(self):
        # a constellation parent has no stream of its own: its children write theirs
        for row in self.db.query("SELECT id FROM deployments WHERE mode = 'simulated' AND "
                                 "status IN ('pending', 'running') AND kind != 'parent'"):
            self.start(row["id"])

    def cancelled(self, dep_id, timeout=5.0):
        """Wake a running simulation so it writes its job.failed (cancelled) now;
        returns once it has."""
        waker = self._wakers.get(dep_id)
        thread = self._threads.get(dep_id)
        if waker is not None:
            waker.set()
        if thread is not None:
            thread.join(timeout)

    def shutdown(self, timeout=2.0):
        self.stop.set()
        for waker in list(self._wakers.values()):
            waker.set()
        for t in list(self._threads.values()):
            t.join(timeout)

    def _run(self, dep_id):
        try:
            self.run(dep_id)
        except Exception:  # a simulation must never take the Console down
            import traceback
            traceback.print_exc()

    def run(self, dep_id):
        dep = deployments.get(self.db, dep_id)
        plan = deployments.get_plan(self.db, dep["plan_id"])
        predicted = plan["events"]
        prev_t = None
        if dep.get("kind") == "child":
            # a constellation's child: its satellite's share of the fleet stream,
            # paced from the fleet's first event (the children run side by side)
            predicted, first = constellations.predicted_share(plan, dep)
            prev_t = timeutil.parse_iso(first) if first else None
        speed = dep["speed_multiplier"]
        origin = origin_of(dep_id)
        done = deployments.acked_seq(self.db, origin)
        waker = self._wakers.get(dep_id) or threading.Event()
        prev_wall = time.monotonic()
        for seq, ev in enumerate(predicted, 1):
            t = timeutil.parse_iso(ev["timestamp"])
            if seq <= done:
                prev_t = t
                continue
            if speed > 0 and prev_t is not None and t > prev_t:
                waker.wait((t - prev_t) / speed)
            if self.stop.is_set():
                return
            if deployments.get(self.db, dep_id)["status"] == "cancelled":
                # simulated time reached when the operator cancelled
                now_t = t if prev_t is None or speed <= 0 else min(
                    t, prev_t + (time.monotonic() - prev_wall) * speed)
                self._write_cancelled(dep_id, origin, seq, now_t, ev.get("job_id"), predicted)
                return
            out = dict(ev)
            out["seq"] = seq
            deployments.store_events(self.db, dep_id, origin, SIM_AGENT, [out])
            prev_t = t
            prev_wall = time.monotonic()

    def _write_cancelled(self, dep_id, origin, seq, at, job_id, predicted):
        start = timeutil.parse_iso(predicted[0]["timestamp"]) if predicted else at
        failed = {"type": "job.failed", "timestamp": timeutil.iso_utc(at), "job_id": job_id,
                  "step_id": None, "seq": seq,
                  "payload": {"total_duration_s": round(at - start, 3), "status": "cancelled",
                              "reason": "cancelled by the operator"}}
        deployments.store_events(self.db, dep_id, origin, SIM_AGENT, [failed])
