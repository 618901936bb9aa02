"""A constellation job run by the fleet's own firmware, in process
(CONSTELLATION.md "In simulation"; the one-executor rule of forecast.py, for
a fleet): every member of a sim/fleet.py FleetWorld boots the unchanged
agent (firmware/agent.py with its constellation role) under CPython on the
world's one SimClock, with its spacecraft model (sim/spacecraft.py), its
own flash (a scratch folder), the fleet's ISL network port (sim/islnet.py)
and forecast.ForecastConsole handing it its part of the job at its first
ground contact. What each agent emits is the fleet's stream.

Only the satellites that may run a step (owners and alternates) are flown,
unless `everyone`; a member whose part is over (its job ended, its workload
taken) is not run on then: nothing it does after reaches its events or the
others. Each member's windows are predicted an hour ahead at a time as a
node's are (sim/nodestart.py) and its flash is a scratch folder, in
/dev/shm where the host has it.

    out = run(world, cplan, job, end_s=None, faults=())
    out.events          -> {satellite_id: [its job's events, reported or not, seq order]}
    out.unsent          -> {satellite_id: [seqs still in its outbox at the end]}
    out.merged()        -> every event with its satellite_id, in time order
    out.state           -> {satellite_id: the agent's job state at the end (None: ended)}

Faults (the fleet's, scripted): {"kind": "reset", "satellite": S, "at_s": T}
(its computer resets: the agent boots again from its flash),
{"kind": "loss", "satellite": S, "at_s": T}
(the satellite's computer stops for good: no more heartbeats, messages, or
events), {"kind": "drain", "satellite": S, "at_s": T, "soc": 0.08} (its
battery drops to that state of charge), {"kind": "heat", "satellite": S,
"at_s": T, "temperature_c": 80}, {"kind": "partition", "satellite": S,
"from_s": A, "to_s": B} (every link of S is down meanwhile: sends find no
route, messages to it are lost, through the port's adapter), {"kind":
"link_loss", "pair": [A, B], "from_s": F, "to_s": T} (no route between A
and B meanwhile).
"""
import heapq
import os
import shutil
import tempfile

import agentconfig
import hal
import lazywatch
import nodestart
import spacecraft
import stations
from agent import Agent

from . import forecast

IDLE_WAKE_MS = 60000
SCRATCH = "/dev/shm"


class Outcome:
    def __init__(self):
        self.events = {}
        self.state = {}
        self.steps = {}
        self.consoles = {}
        self.unsent = {}   # {satellite: seqs still in its outbox at the end (any deployment)}

    def merged(self):
        out = []
        for sat in sorted(self.events):
            for e in self.events[sat]:
                out.append(dict(e, satellite_id=sat))
        out.sort(key=lambda e: (e["timestamp"], e["satellite_id"], e.get("seq") or 0))
        return out


class PartitionPort:
    """A member's ISL port in a fleet where satellites are cut off over
    intervals (cuts: {satellite: [(from_ms, to_ms)]} on the clock): while
    this one or the other end is cut off there is no route between them, and
    what arrives for a cut-off satellite is lost (a fault adapter)."""

    def __init__(self, port, sat_id, clock, cuts):
        self.port = port
        self.sat_id = sat_id
        self.clock = clock
        self.cuts = cuts
        self.on_arrival = None

    def _cut(self, sat, dest=None):
        now = self.clock.now_ms()
        cuts = self.cuts.get(sat, ())
        if dest is not None:
            cuts = list(self.cuts.get(dest, ())) + list(self.cuts.get(_pair(sat, dest), ()))
        return any(a <= now < b for a, b in cuts)

    def send(self, dest, data):
        return None if self._cut(self.sat_id) or self._cut(self.sat_id, dest) else \
            self.port.send(dest, data)

    def status(self, mid):
        return self.port.status(mid)

    def recv(self):
        got = self.port.recv()
        while got is not None and self._cut(self.sat_id):
            got = self.port.recv()  # arrived while cut off: lost
        return got

    def link(self, dest):
        return None if self._cut(self.sat_id) or self._cut(self.sat_id, dest) else \
            self.port.link(dest)

    def neighbours(self):
        return [] if self._cut(self.sat_id) else \
            [n for n in self.port.neighbours() if not self._cut(self.sat_id, n)]


def _pair(a, b):
    return a + "|" + b if a < b else b + "|" + a


def member_spec(cplan, job, sat_id, deployment_id=None):
    """The workload a member polls, as the Console hands it to a child
    (tools/console/constellations.py): the whole DAG with the assignment,
    the alternates and the routes."""
    from tools.console import constellations
    plan = dict(cplan, id=cplan.get("id") or cplan["plan_id"], job=job)
    return {"plan_id": plan["id"], "deployment_id": deployment_id or "dep-%s" % sat_id,
            "satellite_id": sat_id,
            "plan_data": constellations.child_plan_data(plan, sat_id, "dep-fleet"),
            "events": []}


def _used(cplan):
    """The satellites the plan puts a step on or names as an alternate."""
    used = []
    for s in cplan["steps"]:
        for sat in [s["satellite"]] + list(s["alternates"]):
            if sat not in used:
                used.append(sat)
    return used


def run(world, cplan, job, end_s=None, faults=(), cfg=None, everyone=False):
    """everyone: every member of the world runs its agent, those without a
    part in the job idle (else only the plan's satellites run), and the run
    goes on to end_s (default: the world's horizon) even once the job is over."""
    # the members' flash: scratch folders, in memory where the host has a tmpfs
    root = tempfile.mkdtemp(prefix="umbra-fleet-", dir=SCRATCH if os.path.isdir(SCRATCH) else None)
    try:
        return _run(world, cplan, job, end_s, faults, cfg, root, everyone)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(world, cplan, job, end_s, faults, cfg, root, everyone):
    clock = world.clock
    used = _used(cplan)
    members = [m for m in world.members if everyone or m["satellite_id"] in used]
    for m in world.members:  # the others' radios too: what reaches them waits there
        world.port(m["satellite_id"])
    by_sat = dict((s["satellite_id"], s) for s in world.satellites)
    cuts = {}
    for f in faults:
        if f["kind"] in ("partition", "link_loss"):
            key = f["satellite"] if f["kind"] == "partition" else _pair(*f["pair"])
            cuts.setdefault(key, []).append((int(f["from_s"] * 1000), int(f["to_s"] * 1000)))
    nodes = {}
    for m in members:
        sid = m["satellite_id"]
        home = os.path.join(root, sid)
        overrides = dict(cfg or {})
        overrides.update({"agent_id": m["agent_id"], "api_url": "forecast:", "api_key": "forecast",
                          "satellite_id": sid, "storage_root": home, "time_sync": False,
                          "uplink_key": None})
        acfg = agentconfig.make(overrides)
        # its windows as a node predicts them (sim/nodestart.py): an hour ahead at a time
        timeline = spacecraft.Timeline(by_sat[sid]["orbit"], world.start, nodestart.WINDOW_CHUNK_S,
                                       stations.default_stations(), windows=False)
        sat = spacecraft.SimulatedSatellite(sid, by_sat[sid]["orbit"], world.start, bus=m["bus"],
                                            timeline=timeline)
        sat.clock = clock
        console = forecast.ForecastConsole(clock, member_spec(cplan, job, sid) if sid in used else None)
        port = world.port(sid)
        if cuts:
            port = PartitionPort(port, sid, clock, cuts)
        n = nodes[sid] = {"sat": sat, "console": console, "alive": True, "port": port,
                          "cfg": acfg, "home": home, "boots": 0}
        _boot(n, clock, "power_on")
    timed = sorted((f for f in faults if f["kind"] in ("loss", "drain", "heat", "reset")),
                   key=lambda f: f["at_s"])
    end_ms = int((end_s if end_s is not None else world.hours * 3600) * 1000)
    order = list(nodes)          # members in fleet order: who runs first at one instant
    wakes = []                   # heap of (clock ms, member index): each member's next wake
    for i, sid in enumerate(order):
        _queue(wakes, nodes[sid], i, 0)
    net = world.network
    inbox = net.inbox
    count = len(order)
    everybody = range(count)
    ran = everybody              # who may have taken from its inbox since the last look
    left = set(everybody)        # who has not ended its part yet
    seen = [0] * count           # each member's inbox length at the last look
    members = [nodes[sid] for sid in order]
    boxes = [inbox.get(sid) for sid in order]  # the network's lists (appended to in place)
    index = dict((sid, i) for i, sid in enumerate(order))
    landed = net.landed          # who got a delivery since the last look
    landed.clear()
    now_ms = clock.now_ms
    heappop, heappush = heapq.heappop, heapq.heappush
    pending = net.pending        # the network's heap of arrivals (settled when read)
    while True:
        now = now_ms()
        due = set()
        while timed and timed[0]["at_s"] * 1000 <= now:
            f = timed.pop(0)
            _inject(nodes, f, clock)
            if f["satellite"] in nodes:
                due.add(order.index(f["satellite"]))
        if pending and pending[0][0] <= now:
            net.deliver_due()
        # an inbox grows only by a delivery and shrinks only while its member
        # runs: the others are as they were at the last look
        if landed:
            look = set(ran)
            for sid in landed:
                if sid in index:
                    look.add(index[sid])
            landed.clear()
        else:
            look = ran
        for i in look:
            arrived = len(boxes[i])
            if arrived > seen[i]:
                n = members[i]
                if n["alive"] and n["port"].on_arrival is not None:
                    n["port"].on_arrival()  # the radio's interrupt: something new arrived
                    due.add(i)
            seen[i] = arrived
        while wakes and wakes[0][0] <= now:
            due.add(heappop(wakes)[1])
        ran = sorted(due) if len(due) > 1 else list(due)
        for i in ran:
            n = members[i]
            if not n["alive"]:
                left.discard(i)
                continue
            if i not in left and not everyone:
                continue  # its part is over: nothing it does now reaches the stream or the others
            agent = n["agent"]
            sched = agent.sched
            if sched.run_due():  # every task due now, one round (none: a stale wake)
                if agent.reset_requested or n["watchdog"].expired(now_ms()):
                    raise RuntimeError("%s reset in the fleet forecast (%s)" % (
                        order[i], agent.reset_requested or "watchdog"))
            w = sched.next_wake_ms()
            # its next wake on the heap (stale entries are only looked at again)
            heappush(wakes, (w if w is not None else now + IDLE_WAKE_MS, i))
            if agent.journal.state["job"] is None and n["console"].handed_at is not None:
                left.discard(i)
            else:
                left.add(i)
        if due and not everyone and not left:
            break
        if now >= end_ms:
            break
        nxt = wakes[0][0] if wakes and wakes[0][0] < end_ms else end_ms
        if pending:
            d = pending[0][0]
            nxt = min(nxt, max(d, now + 1))
        if timed:
            nxt = min(nxt, max(int(timed[0]["at_s"] * 1000), now + 1))
        if nxt > now:
            clock.wait_until(nxt)
    out = Outcome()
    for sid, n in nodes.items():
        agent = n["agent"]
        evs = list(n["console"].events)
        out.unsent[sid] = []
        if agent.journal.pending():
            import json
            for seq, dep, text in agent.journal.outbox(10 ** 6, 10 ** 9):
                out.unsent[sid].append(seq)
                if bytes(dep).startswith(b"dep-"):
                    evs.append(json.loads(b'{"seq":%d,' % seq + bytes(memoryview(text)[1:])))
        evs.sort(key=lambda e: e["seq"])
        out.events[sid] = evs
        out.state[sid] = agent.journal.state["job"]
        out.steps[sid] = agent.journal.state["steps"]
        out.consoles[sid] = n["console"]
    return out


def _queue(wakes, n, i, now):
    """The member's next wake on the heap (stale entries are only looked at again)."""
    if n["alive"]:
        w = n["agent"].sched.next_wake_ms()
        heapq.heappush(wakes, (w if w is not None else now + IDLE_WAKE_MS, i))


def _boot(n, clock, cause):
    """The member's computer boots from its flash (its RAM is gone)."""
    acfg = n["cfg"]
    watchdog = hal.SimWatchdog(acfg["watchdog_timeout_ms"], clock=clock)
    watchdog.arm()
    agent = Agent(acfg, clock, hal.sim_sensors(n["sat"]), n["console"], n["home"],
                  watchdog=watchdog, reset_cause=cause, workdir=n["home"] + "/work", isl=n["port"])
    lazywatch.install(agent)
    agent.boot()
    n["agent"], n["watchdog"] = agent, watchdog
    n["boots"] += 1


def _inject(nodes, f, clock):
    n = nodes.get(f["satellite"])
    if n is None or not n["alive"]:
        return
    if f["kind"] == "reset":
        n["agent"].sensors.set_compute_load(0)
        n["port"].on_arrival = None
        _boot(n, clock, "hard")
        return
    if f["kind"] == "loss":
        n["alive"] = False
        n["agent"].sensors.set_compute_load(0)
    elif f["kind"] == "drain":
        sat = n["sat"]
        sat.advance_to(sat.clock.epoch())
        sat.energy_wh = f.get("soc", 0.08) * sat.bus["battery_wh"]
        sat.version += 1
    elif f["kind"] == "heat":
        sat = n["sat"]
        sat.advance_to(sat.clock.epoch())
        sat.temperature = f.get("temperature_c", 80.0)
        sat.version += 1
