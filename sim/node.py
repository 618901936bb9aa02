"""A simulated node: the firmware agent and its one-satellite world in one
MicroPython process, on the simulated clock, talking to a real Console.

    micropython sim/node.py --config CFG.json --world DIR (--tle FILE | restored)
                            [--start ISO] [--hours H] [--until ISO] [--speed X]
                            [--bus JSON] [--until-idle] [--faults FILE.json [--seed S]]
                            [--heap-watch] [--isl HOST:PORT]

Start-up (the arguments, the world, the satellite) is sim/nodestart.py, loaded
for it and dropped after (docs/sim.md "Memory").

The agent sees the satellite only through lib/hal adapters (sensors, load,
watchdog). The world keeps its own physics (clock, battery, temperature) in
its own store under --world, synced whenever the agent makes a record durable,
so killing this process is a reset of the spacecraft's computer, not of its
orbit or battery. The watchdog is emulated in simulated time: a missed feed
drops the agent's RAM and reboots it from its store.

--heap-watch collects garbage after every scheduler round and reports the
most heap still in use after any of them ("heap_peak", bytes): the agent's
high-water mark (slow; for make bench).

--faults runs the seeded fault injector (sim/faults.py) on a script of faults:
the journal's file system, the link and the sensors are wrapped, the
injector fires timed faults between scheduler rounds, and a power cut resets
the node as a power-on. The exit summary carries what was injected
("faults"); each injection is also a {"fault": ...} line as it happens.

--isl joins the fleet's ISL hub (tools/islhub.py) as this node's satellite:
the agent gets its port (sim/islport.py, the lib/isl.py interface) as
`ag.isl`, and the node's clock waits (islport.HubPort.wait) only as far as the
hub lets it: one timeline for the fleet, never past a moment at which a
message could still reach it; a wait ends early when a message arrives, and
the port's `on_arrival` is called then, between scheduler rounds. A
satellite the fleet lost for good ends at that time (exit 4, its summary
says "isl": {..., "stopped": "lost"}).

Exit codes: 0 --until-idle reached, 2 start-up error (bad arguments, an
unreadable or invalid file, a heap too small to start), 4 the end time
(--hours from the first start, or --until) reached. Anything else is a crash
(`umbra agent run` restarts the node).
"""
import gc
import json
import sys

try:
    # FACTS.md: allocation stays fast with a threshold set. On a board-sized
    # heap a sixteenth of it, not a quarter: garbage collected sooner leaves
    # fewer holes between live blocks (measured: the demo completes at 192K
    # instead of 208K). A heap of 384 KiB or more (a fleet node's 512K, the
    # unix port's default 2 MiB) has room to spare: there every collection
    # sweeps the whole heap, so it waits for half of it (an idle day's node
    # CPU 2.7 -> 2.3 s on 2 MiB, 1.75 s on 400-600K: gc.mem_free(), in every
    # telemetry document, walks the whole heap too). boot.py sets 16 KiB on a board.
    _heap = gc.mem_free() + gc.mem_alloc()
    gc.threshold(max(8192, _heap // 16) if _heap < 384 << 10 else _heap // 2)
    del _heap
except AttributeError:
    pass

import timeutil  # noqa: E402

REBOOT_MS = 3000          # a reset costs the computer this long (simulated)
WORLD_SYNC_MS = 300000    # the world is also saved at least this often (simulated; every commit saves it too)
MAX_REBOOTS = 200
GC_TIGHT_ROOM = 65536      # bytes free once the node is up: less is a tight heap (_gc_room)
GC_TIGHT_THRESHOLD = 2048  # bytes allocated between collections in a tight heap

try:
    from time import sleep_ms as _sleep_ms, ticks_diff as _wall_diff, ticks_ms as _wall_ms
except ImportError:  # CPython
    from hostticks import sleep_ms as _sleep_ms, ticks_diff as _wall_diff, ticks_ms as _wall_ms


class Node:
    def __init__(self, args):
        # start-up runs once: an overlay (nodestart.py), dropped when done
        loaded = "nodestart" in sys.modules
        import nodestart
        try:
            nodestart.setup(self, args, REBOOT_MS, _echo)
        finally:
            _drop(loaded, "nodestart")
        self.last_sync_ms = -1
        self._last_heartbeat = _wall_ms() - 1000  # the first feed shows at once
        self.agent = None
        self.reboots = 0
        self.heap_peak = 0  # with --heap-watch: the most live heap after any round

    # --- the world's own store ---------------------------------------------------

    def sync_world(self, force=False):
        now = self.clock.now_ms()
        if not force and now - self.last_sync_ms < 1000:
            return
        self.saved["t_ms"] = now
        self.saved["sat"] = self.sat.physical_state()
        self.wstore.snapshot(self.saved)
        self.last_sync_ms = now

    # --- the computer ---------------------------------------------------------------

    def heartbeat(self):
        # For a real-time parent (umbra agent run): at most one line a wall second.
        now = _wall_ms()
        if _wall_diff(now, self._last_heartbeat) >= 1000:
            self._last_heartbeat = now
            print("WDT")

    def boot(self, cause):
        while True:
            try:
                self._boot(cause)
                return
            except self.power_cut:  # the scripted cut landed while booting
                self.injector.power_cut_now()
                self._down("power_on")
                cause = "power_on"

    def _boot(self, cause):
        # every boot, the first too, runs in the start-up overlay: its code is out of the run's heap
        loaded = "nodestart" in sys.modules
        import nodestart
        try:
            nodestart.boot(self, cause)
        finally:
            _drop(loaded, "nodestart")

    def _down(self, cause):
        self.reboots += 1
        print(json.dumps({"reset": cause, "why": self.agent.reset_requested if self.agent else None,
                          "at": timeutil.iso_utc(self.clock.epoch())}))
        if self.reboots > MAX_REBOOTS:
            raise RuntimeError("node keeps resetting (%s)" % cause)
        if self.injector is not None:
            self.injector.note_reset(cause, self.clock.now_ms(), _wall_ms())
        if self.agent is not None:
            try:
                self.agent.link.idle()  # its kept connection goes with the computer
            except Exception:
                pass
        self.agent = None
        self.clock.wait_until(self.clock.now_ms() + REBOOT_MS)

    def reset(self, cause):
        self._down(cause)
        self.boot(cause)

    def run(self):
        # A restart of this process is a power cycle of the computer (SIGKILL is a
        # power cut) unless the parent says otherwise (--reset-cause watchdog
        # after it killed a node whose heartbeat stopped).
        self.boot(self.restart_cause if not self.first_boot else "power_on")
        _gc_room()
        wall0 = _wall_ms()
        sim0 = self.clock.now_ms()
        inj = self.injector
        while True:
            sched = self.agent.sched
            try:
                sched.run_due()
            except self.power_cut:
                pass  # the agent's storage lost power: the computer goes with it
            if self.heap_watch:  # the live heap after every round: its high-water mark
                gc.collect()
                if gc.mem_alloc() > self.heap_peak:
                    self.heap_peak = gc.mem_alloc()
            now = self.clock.now_ms()
            if inj is not None:
                if inj.power_cut_now():
                    self.reset("power_on")
                    continue
                cause = inj.tick(self, now)
                if cause is not None:
                    self.reset(cause)
                    continue
            if self.agent.reset_requested:
                self.reset("intended")
                continue
            if self.watchdog.expired(now):
                self.reset("watchdog")
                continue
            # --until-idle: a job has ended, everything is reported, the Console has nothing more
            if self.until_idle and self.agent.empty_polls > 0 and self.agent.state["job"] is None \
                    and self.agent.state["done"] and not self.agent.journal.pending():
                return 0
            if now >= self.end_ms:
                return 4
            nxt = sched.next_wake_ms()
            if nxt is None:
                nxt = now + 1000
            nxt = min(nxt, self.end_ms)
            if self.speed > 0 and nxt > now:
                due_wall = (nxt - sim0) / self.speed
                lag = due_wall - _wall_diff(_wall_ms(), wall0)
                if lag > 0:
                    _sleep_ms(int(lag))
            if nxt > now:
                self.clock.wait_until(nxt)  # with --isl: sooner if a message arrives first
                nxt = self.clock.now_ms()
                if nxt - self.last_sync_ms >= WORLD_SYNC_MS:
                    self.sync_world(force=True)
                    # keep the windows of the last hour and ahead
                    self.sat.timeline.forget_before(self.saved["start"] + nxt / 1000 - 3600)


def _gc_room():
    # Once the node is up: in a tight heap (less than GC_TIGHT_ROOM left for
    # the run) collect after every GC_TIGHT_THRESHOLD bytes allocated, not a
    # sixteenth of the heap. Garbage then goes back before new blocks land
    # past it, leaving fewer holes between live blocks: the demo at 160K on
    # the x64 port (.mpy in a short folder) completed in 0 of 5 runs with
    # 10 KiB, in 20 of 20 with 2 KiB (0 of 3 with 4 KiB); it costs time (more
    # collections), so a roomy heap keeps the big threshold.
    try:
        gc.collect()
        if gc.mem_free() < GC_TIGHT_ROOM:
            gc.threshold(GC_TIGHT_THRESHOLD)
    except AttributeError:
        pass


def _drop(loaded, name):
    # On MicroPython a loaded module lives in the heap: an overlay this file
    # loaded is forgotten again (docs/sim.md "Memory"); CPython keeps it.
    if not loaded and sys.implementation.name == "micropython":
        sys.modules.pop(name, None)


def _echo(doc):
    print(json.dumps(doc))


def _start(argv):
    # in a function of its own: a module imported in main() would stay alive
    # as main()'s local for the whole run
    loaded = "nodestart" in sys.modules
    import nodestart
    try:
        return Node(nodestart.parse_args(argv))
    finally:
        _drop(loaded, "nodestart")


def main(argv):
    try:
        node = _start(argv)
    except Exception as exc:  # bad arguments, files, TLE, config, a heap too small: say so, exit 2
        print(json.dumps({"error": "%s: %s" % (type(exc).__name__, exc)}))
        return 2
    code = node.run()
    node.sync_world(force=True)
    free = gc.mem_free() if hasattr(gc, "mem_free") else None
    import nodestart  # the summary is start-up's module too: the run's heap never held it
    print(json.dumps(nodestart.summary(node, code, free)))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
