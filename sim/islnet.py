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
from islroute import Router, segment_at, departure_and_arrival


class Network:
    def __init__(self, plan, clock, start, router=None):
        self.router = router or Router(plan)   # router: one over this plan already built
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
        self.landed = set()      # who a message was delivered to (a reader may empty it)

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
        if src == dst:
            raise ValueError("a satellite does not send to itself")
        out = self.transmit(src, dst, len(data), self.now())
        if out is None:
            self.no_route += 1
            return None
        ready, outcome = out
        msg_id = self.next_id
        self.next_id += 1
        self.sent += 1
        self.status[msg_id] = isl.SENDING
        heapq.heappush(self.pending, (self._ms(ready), msg_id, dst, src, data, outcome))
        return msg_id

    def transmit(self, src, dst, size, t):
        """A message of `size` bytes sent from src to dst at t (Unix s): None when no
        route exists at t, else (the time it arrives or is lost, Unix s;
        isl.DELIVERED or isl.LOST). Changes nothing: the hub (tools/islhub.py)
        asks it at each sender's own time."""
        mb = size / 1e6
        found = self.router.path_and_links_at(src, dst, t, mb)
        if found is None:
            return None
        path, up = found
        ready = t
        outcome = isl.DELIVERED
        for k in range(len(path) - 1):
            w = up[path[k]].get(path[k + 1])   # the link this hop was routed over (up at t)
            sent = departure_and_arrival(w, ready, mb) if w is not None and ready < w["end"] else None
            if sent is None or sent[0] > ready:
                outcome = isl.LOST           # the link closed before the message passed
                ready = w["end"] if w is not None and w["end"] > ready else ready
                break
            ready = sent[1]
        return ready, outcome

    def link_at(self, src, dst, t):
        """lib/isl.py link() of src to dst at t (Unix s)."""
        snap = self.router.snapshot(src, dst, t, 0)
        if snap is None:
            return None
        lat = 0.0
        bw = None
        q = None
        per_hop = []
        for h in snap["hops"]:
            lat += h["latency_ms"]
        for k in range(len(snap["path"]) - 1):
            w = self.router.window_at(snap["path"][k], snap["path"][k + 1], t)
            m = segment_at(w, t)
            b = w["bandwidth_mbps"][m] if w["bandwidth_mbps"] else 0.0
            bw = b if bw is None or b < bw else bw
            qq = w["quality"][m] if w["quality"] else w["quality_min"]
            q = qq if q is None or qq < q else q
            per_hop.append([round(snap["hops"][k]["latency_ms"], 3), round(qq, 4)])
        return {"hops": len(snap["path"]) - 1, "latency_ms": lat, "bandwidth_mbps": bw, "quality": q,
                "route": list(snap["path"]), "per_hop": per_hop}

    def neighbours_at(self, sat_id, t):
        """lib/isl.py neighbours() of sat_id at t (Unix s)."""
        out = []
        for v in self.router.adj[sat_id]:
            if self.router.window_at(sat_id, v, t) is not None:
                out.append(v)
        return out

    def deliver_due(self):
        """Settle every message whose arrival or loss time has come."""
        now_ms = self.clock.now_ms()
        while self.pending and self.pending[0][0] <= now_ms:
            _, msg_id, dst, src, data, outcome = heapq.heappop(self.pending)
            self.status[msg_id] = outcome
            if outcome == isl.DELIVERED:
                self.inbox[dst].append((src, data))
                self.landed.add(dst)
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
        return self.net.link_at(self.sat_id, dest, self.net.now())

    def neighbours(self):
        return self.net.neighbours_at(self.sat_id, self.net.now())


def lookahead_ms(plan):
    """The least time any message takes between two satellites of the plan (whole
    ms, at least 1): the lowest latency of any link at any sample (a message
    also takes its transmission time; latency is linear between samples). A
    message sent at t arrives no earlier than t + this: the lookahead of the
    fleet's lockstep (tools/islhub.py)."""
    low = None
    for w in plan["windows"]:
        for lat in w["latency_ms"]:
            if low is None or lat < low:
                low = lat
    return max(1, int(low)) if low is not None else 1


def cut(plan, outages):
    """The plan with links taken down: `outages` is [(sats, t0, t1)], Unix s, where
    `sats` is one satellite id (all its links: a partition, or a satellite
    lost for good with t1 None) or a pair (a, b) (that pair's link). Each
    window loses the part inside [t0, t1]; what remains keeps its samples,
    with the cut edges interpolated."""
    windows = plan["windows"]
    for sats, t0, t1 in outages:
        out = []
        for w in windows:
            if isinstance(sats, tuple):
                hit = (w["a"], w["b"]) in (sats, (sats[1], sats[0]))
            else:
                hit = sats in (w["a"], w["b"])
            if not hit or w["end"] <= t0 or (t1 is not None and w["start"] >= t1):
                out.append(w)
                continue
            if w["start"] < t0:
                out.append(_part(w, w["start"], t0))
            if t1 is not None and w["end"] > t1:
                out.append(_part(w, t1, w["end"]))
        windows = out
    windows.sort(key=lambda w: w["start"])
    res = dict(plan)
    res["windows"] = windows
    return res


def _part(w, s, e):
    """Window w over [s, e] (inside it): samples inside kept, the edges interpolated."""
    ts = [s] + [t for t in w["t"] if s < t < e] + [e]

    def at(key, t):
        vals = w[key]
        src = w["t"]
        m = segment_at(w, t)
        if len(src) < 2 or src[m + 1] <= src[m]:
            return vals[m]
        f = min(1.0, max(0.0, (t - src[m]) / (src[m + 1] - src[m])))
        return vals[m] + (vals[m + 1] - vals[m]) * f

    segs = [segment_at(w, (ts[k] + ts[k + 1]) / 2.0) for k in range(len(ts) - 1)]
    seg_q = [w["quality"][m] for m in segs]
    return {"a": w["a"], "b": w["b"], "start": s, "end": e, "t": ts,
            "distance_km": [at("distance_km", t) for t in ts],
            "dark": [w["dark"][min(segment_at(w, t), len(w["dark"]) - 1)] for t in ts],
            "latency_ms": [at("latency_ms", t) for t in ts], "quality": seg_q,
            "bandwidth_mbps": [w["bandwidth_mbps"][m] for m in segs],
            "quality_min": min(seg_q) if seg_q else w["quality_min"],
            "quality_max": max(seg_q) if seg_q else w["quality_max"]}
