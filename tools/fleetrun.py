"""The fleet world's agents (docs/fleet.md "Running the fleet"): every member of
a sim/fleet.py FleetWorld as a node of its own (sim/node.py under the
MicroPython unix port: the unchanged firmware, its spacecraft model, its
flash and its world store), all from the fleet's start over the same
horizon, against one real Console. Each node is supervised and restarted on
reset like `umbra agent run --sim` (tools/agent_cli.NodeProcess), so the
reset of one drops only that node's RAM; the others run on.

    run = FleetRun(world, ground, workdir, mpy_dir=..., heap=None (NODE_HEAP), heap_watch=False,
                   faults={"99902": [{"kind": "reset", "at_s": 3600},
                                     {"kind": "partition", "at_s": 7200, "for_s": 600}]},
                   until_s=None, isl=True, hub_log=False, grace_s=10.0)
    report = run.run()  -> {"wall_s", "satellites": [{satellite_id, agent_id, exit,
                            outcome, boots, reboots, restarts, polls, batches,
                            heap_peak, sim_time, link_error, isl, lost}],
                            "hub": tools/islhub.py Hub.stats(), "hub_log"}

With `isl` (the default) every node joins one ISL hub (tools/islhub.py, a
thread of this process) over the world's contact plan: the fleet on one
timeline, messages between agents through their `ag.isl` ports. Fleet
faults in `faults` (kinds lost, partition, isl_down: islhub.py) go to the
hub, the others to the node's own injector (sim/faults.py). A satellite lost
for good stops at that time (exit 4, outcome done, `lost` true) and is not
restarted. `hub_log` writes the hub's lockstep log to WORKDIR/islhub.log.

A run in a workdir where the nodes ran before carries on from their world
stores (stop one with until_s, or kill it): the fleet's physics and orbits
outlive the processes, as a single node's do.

`ground` is a tools.scenario.Ground (a Console on loopback with its
database) or anything with `.db` and `.url`.
"""
import json
import os
import threading
import time

from tools import islhub
from tools.agent_cli import NodeProcess
from tools.console import catalog
from tools.scenario import Node


# Each node's heap (-X heapsize): a flight board's order, not the unix port's 2 MiB
# default. Every gc.mem_free() (in every telemetry document) and every collection
# walks the whole heap: 20 nodes x 24 h took 60-63 s on 2 MiB heaps. A node with the
# constellation role completes the fleet demo clean at 180K (make bench, area constellation).
NODE_HEAP = "512K"


class FleetRun:
    def __init__(self, world, ground, workdir, mpy_dir=None, heap=None, heap_watch=False,
                 faults=None, watchdog_s=60.0, until_s=None, isl=True, hub_log=False, grace_s=10.0):
        self.world = world
        self.ground = ground
        self.workdir = str(workdir)
        self.mpy_dir = mpy_dir
        self.heap = heap or NODE_HEAP
        self.heap_watch = heap_watch
        ids = [m["satellite_id"] for m in world.members]
        # fleet faults (lost, partition, isl_down) go to the hub, the others to each node's injector
        self.fleet_faults, self.faults = islhub.split_faults(faults, ids)
        self.isl = isl                     # one clock for the fleet: every node joins the ISL hub
        self.hub_log = os.path.join(self.workdir, "islhub.log") if hub_log else None
        self.grace_s = grace_s             # wall s the hub holds the others for a node that went away
        self.hub = None
        self.watchdog_s = watchdog_s       # wall seconds without a heartbeat (20 nodes share 2 cores)
        self.until_s = until_s             # stop this run here (s after the start); the next run carries on
        self.procs = {}

    def _member_node(self, m):
        """The member's node: in the Console's catalog, its key there, config, flash,
        TLE (tools.scenario.Node). Returns its argv, environment and the folder to
        run it in."""
        catalog.add(self.ground.db, m["satellite_id"], m["name"], tle=list(m["tle"]), bus=m["bus"],
                    replace=True)
        node = Node(self.ground, _Dir(self.workdir), agent_id=m["agent_id"],
                    cfg={"satellite_id": m["satellite_id"]}, bus=m["bus"], heap=self.heap,
                    mpy_dir=self.mpy_dir)
        node.tle = os.path.join(str(node.dir), "orbit.tle")
        with open(node.tle, "w") as f:
            f.write("%s\n%s\n%s\n" % (m["name"], m["tle"][0], m["tle"][1]))
        argv, env = node.argv(until_idle=False, start=_iso(self.world.start), heap_watch=self.heap_watch)
        argv[argv.index("--hours") + 1] = repr(self.world.hours)
        if self.until_s is not None:
            argv += ["--until", _iso(self.world.start + self.until_s)]
        if self.hub is not None:
            argv += ["--isl", self.hub.address]
        script = self.faults.get(m["satellite_id"])
        if script:
            path = os.path.join(str(node.dir), "faults.json")
            with open(path, "w") as f:
                json.dump(script, f)
            argv += ["--faults", path]
        return argv, env, node.cwd

    def run(self, max_restarts=5):
        members = self.world.members
        if self.isl:
            os.makedirs(self.workdir, exist_ok=True)
            self.hub = islhub.Hub(self.world.plan, self.world.start, [m["satellite_id"] for m in members],
                                  faults=self.fleet_faults, grace_s=self.grace_s, log_path=self.hub_log)
        for m in members:
            argv, env, cwd = self._member_node(m)   # run in its .mpy folder (scenario.Node.cwd)
            self.procs[m["satellite_id"]] = NodeProcess(argv, env, watchdog_s=self.watchdog_s,
                                                        cause_arg="--reset-cause", cwd=cwd)
        codes = {}
        threads = []
        t0 = time.monotonic()
        if self.hub is not None:
            self.hub.start()

        def supervise(sid):
            codes[sid] = self.procs[sid].supervise(max_restarts=max_restarts)

        try:
            for m in members:
                th = threading.Thread(target=supervise, args=(m["satellite_id"],), daemon=True)
                th.start()
                threads.append(th)
            for th in threads:
                th.join()
        finally:
            for p in self.procs.values():
                p.kill()
            if self.hub is not None:
                self.hub.stop()
        wall = time.monotonic() - t0
        rows = []
        for m in members:
            p = self.procs[m["satellite_id"]]
            summary = json.loads(p.summary) if p.summary else {}
            stats = summary.get("stats") or {}
            rows.append({"satellite_id": m["satellite_id"], "agent_id": m["agent_id"],
                         "exit": codes.get(m["satellite_id"]), "outcome": p.outcome, "why": p.why,
                         "boots": summary.get("boots"), "reboots": summary.get("reboots"),
                         "restarts": len(p.starts) - 1, "polls": stats.get("polls"),
                         "batches": stats.get("batches"), "events_sent": stats.get("events_sent"),
                         "heap_peak": summary.get("heap_peak"), "sim_time": summary.get("sim_time"),
                         "link_error": summary.get("link_error"), "isl": summary.get("isl"),
                         "lost": (summary.get("isl") or {}).get("stopped") == "lost"})
        out = {"wall_s": wall, "start": _iso(self.world.start), "hours": self.world.hours,
               "satellites": rows}
        if self.hub is not None:
            out["hub"] = self.hub.stats()
            out["hub"]["error"] = self.hub.error
            out["hub_log"] = self.hub_log
        return out


class _Dir(str):
    """tools.scenario.Node wants a pathlib-like folder (`dir / name`)."""

    def __truediv__(self, name):
        return _Dir(os.path.join(self, name))


def _iso(t):
    import timeutil
    return timeutil.iso_utc(int(t))
