"""The simulated ISL network behind lib/isl.py (docs/fleet.md "The ISL adapter"):
messages between satellites over the contact plan, on the world's clock.

    net = Network(plan, clock, start)      # start: Unix s at the clock's 0 ms
    port = net.port("99901")               # a lib/isl.py port for one satellite
    net.next_delivery_ms() -> the clock ms of the next arrival or loss, or None

A message is sent only while a route exists (the links of the moment join
the two satellites): it takes the route of that moment, hop after hop, each
hop costing its transmission (size x 8 / bandwidth) plus its latency at the
time it is sent (MODELS.md). A hop whose link closes before the message has
passed is the loss of the message, seen by the sender at that moment
(status LOST); the receiver never sees it. Times on the clock are whole
milliseconds, an arrival rounded up.
"""
import heapq
import math

import isl
from islroute import Router, segment_at, send_in_window


class Network:
    def __init__(self, plan, clock, start):
        self.router = Router(plan)
        self.clock = clock
        self.start = start
        self.inbox = {}          # satellite -> [(src, data)] arrived, in order
        self.status = {}         # msg id -> isl.SENDING | DELIVERED | LOST
        self.pending = []        # heap of (clock ms, msg id, dest, src, data, outcome)
        self.next_id = 1
        self.sent = 0
        self.lost = 0
        self.delivered = 0
        self.no_route = 0

    def port(self, sat_id):
        if sat_id not in self.router.adj:
            raise ValueError("unknown satellite %r" % (sat_id,))
        self.inbox.setdefault(sat_id, [])
        return Port(self, sat_id)

    def now(self):
        return self.start + self.clock.now_ms() / 1000.0

    def _ms(self, t):
        return int(math.ceil((t - self.start) * 1000.0 - 1e-6))

    def path_now(self, src, dst):
        """The route of the moment from src to dst, as Router.snapshot sees it (no
        size: the path of the best links), or None."""
        return self.router.snapshot(src, dst, self.now(), 0)

    def send(self, src, dst, data):
        self.deliver_due()
        now = self.now()
        if src == dst:
            raise ValueError("a satellite does not send to itself")
        snap = self.router.snapshot(src, dst, now, len(data) / 1e6)
        if snap is None:
            self.no_route += 1
            return None
        mb = len(data) / 1e6
        ready = now
        outcome = isl.DELIVERED
        path = snap["path"]
        for k in range(len(path) - 1):
            w = self.router.window_at(path[k], path[k + 1], now)   # the link this hop was routed over
            h = send_in_window(w, ready, mb) if w is not None and ready < w["end"] else None
            if h is None or h["depart"] > ready:
                outcome = isl.LOST           # the link closed before the message passed
                ready = w["end"] if w is not None and w["end"] > ready else ready
                break
            ready = h["arrival"]
        msg_id = self.next_id
        self.next_id += 1
        self.sent += 1
        self.status[msg_id] = isl.SENDING
        heapq.heappush(self.pending, (self._ms(ready), msg_id, dst, src, data, outcome))
        return msg_id

    def deliver_due(self):
        """Settle every message whose arrival or loss time has come."""
        now_ms = self.clock.now_ms()
        while self.pending and self.pending[0][0] <= now_ms:
            _, msg_id, dst, src, data, outcome = heapq.heappop(self.pending)
            self.status[msg_id] = outcome
            if outcome == isl.DELIVERED:
                self.inbox[dst].append((src, data))
                self.delivered += 1
            else:
                self.lost += 1

    def next_delivery_ms(self):
        return self.pending[0][0] if self.pending else None

    def stats(self):
        return {"sent": self.sent, "delivered": self.delivered, "lost": self.lost,
                "no_route": self.no_route, "in_flight": len(self.pending)}


class Port:
    """One satellite's end of the network: the lib/isl.py port interface."""

    def __init__(self, net, sat_id):
        self.net = net
        self.sat_id = sat_id

    def send(self, dest, data):
        return self.net.send(self.sat_id, dest, data)

    def status(self, msg_id):
        self.net.deliver_due()
        return self.net.status.get(msg_id, isl.LOST)

    def recv(self):
        self.net.deliver_due()
        box = self.net.inbox[self.sat_id]
        return box.pop(0) if box else None

    def link(self, dest):
        snap = self.net.path_now(self.sat_id, dest)
        if snap is None:
            return None
        now = self.net.now()
        lat = 0.0
        bw = None
        q = None
        for h in snap["hops"]:
            lat += h["latency_ms"]
        for k in range(len(snap["path"]) - 1):
            w = self.net.router.window_at(snap["path"][k], snap["path"][k + 1], now)
            m = segment_at(w, now)
            b = w["bandwidth_mbps"][m] if w["bandwidth_mbps"] else 0.0
            bw = b if bw is None or b < bw else bw
            qq = w["quality"][m] if w["quality"] else w["quality_min"]
            q = qq if q is None or qq < q else q
        return {"hops": len(snap["path"]) - 1, "latency_ms": lat, "bandwidth_mbps": bw, "quality": q}

    def neighbours(self):
        now = self.net.now()
        out = []
        for v in self.net.router.adj[self.sat_id]:
            if self.net.router.window_at(self.sat_id, v, now) is not None:
                out.append(v)
        return out
