"""The fleet world (docs/fleet.md): many satellites on one simulated timeline,
joined by the ISL network. Portable.

    fw = FleetWorld(doc, start=None, hours=24)    # doc: a fleet file (fleetfile.py)
    fw.members          -> [{"satellite_id", "agent_id", "name", "role", "tle", "bus"}]
    fw.plan             -> the contact plan over the horizon (contactplan.py)
    fw.router           -> routing over it (islroute.py)
    fw.clock, fw.network, fw.port(sat_id)   -> the ISL network on the world's clock (islnet.py)
    fw.advance_to_ms(t) -> move the clock (deliveries and losses settle when read)

Each member runs as a node of its own (sim/node.py: its unchanged firmware
agent, its own spacecraft model, its own flash store and its own world store
for its physics), given the member's TLE and bus and started at the fleet's
start: the host runs them (tools/fleetrun.py), each talking to the Console
only during its own ground passes. A reset of one is a reset of that node's
computer only. Every orbit is the member's TLE (fleetfile.py), so the nodes
and the contact plan fly the same orbits.
"""
from clock import SimClock
import contactplan
import fleetfile
import islnet
import islroute
import timeutil


def agent_id_for(satellite_id):
    return "sat-" + satellite_id


class FleetWorld:
    def __init__(self, doc, start=None, hours=24.0, keep_samples=False):
        """keep_samples: keep the contact plan's position samples (`samples`:
        contactplan.compute's keep) for a planner that needs them too."""
        if not hours > 0:
            raise ValueError("the horizon must be positive")
        sats = fleetfile.load(doc)
        if start is None:
            epoch = doc.get("epoch") if isinstance(doc, dict) else None
            start = timeutil.parse_iso(epoch) if isinstance(epoch, str) else min(s["orbit"].epoch for s in sats)
        elif isinstance(start, str):
            start = timeutil.parse_iso(start)
        self.start = int(start)             # whole seconds: the clock's origin
        self.hours = hours
        self.satellites = sats
        self.members = [{"satellite_id": s["satellite_id"], "agent_id": agent_id_for(s["satellite_id"]),
                         "name": s["name"], "role": s["role"], "tle": s["tle"], "bus": s["bus"]}
                        for s in sats]
        self.samples = {} if keep_samples else None
        self.plan = contactplan.compute([(s["satellite_id"], s["orbit"]) for s in sats],
                                        self.start, self.start + hours * 3600.0, keep=self.samples)
        self.router = islroute.Router(self.plan)
        self.clock = SimClock(start_epoch=self.start)
        self.network = islnet.Network(self.plan, self.clock, self.start, self.router)

    def port(self, sat_id):
        return self.network.port(sat_id)

    def advance_to_ms(self, t_ms):
        self.clock.advance_to(t_ms)
        self.network.deliver_due()

    def now(self):
        return self.start + self.clock.now_ms() / 1000.0
