"""The fleet's ISL hub (docs/fleet.md "One clock for the fleet"): the simulated
ISL network (sim/islnet.py) over the fleet's contact plan, and the lockstep
that keeps every node (sim/node.py --isl HOST:PORT, its port sim/islport.py)
on one timeline. CPython, one thread, loopback TCP.

    hub = Hub(plan, start, members, faults={"99902": [{"kind": "partition", "at_s": 3600, "for_s": 600}]},
              log_path=None, grace_s=10.0)
    hub.start()                 # serves in a thread of its own; hub.address -> "127.0.0.1:PORT"
    ...                         # nodes join, run, exit
    hub.stop(); hub.stats()     # {"sent", "delivered", "lost", "no_route", "dropped", "releases", ...}

**The lockstep** (conservative, with the lookahead L = the least delay of any
message: islnet.lookahead_ms). Every node's clock is its own; the hub knows
for each node a lower bound on the time of anything it may still send, its
`base`: a running node's last reported time; a waiting node's wake (the
time it asked to advance to, or the first message on its way to it, if
sooner). A message sent at t arrives at t + its modelled delay >= t + L. So
no message can reach node j before H_j = min(its first incoming message,
min over the others of base + L): j may advance freely up to H_j (its
*horizon*, given with every answer), and asks the hub only to go further.
A node asking to go to T past its horizon waits until T <= H_j (then it goes
to T) or a message's arrival comes first (then it goes to that arrival and
gets the message: a node waiting for its next wake is woken by an arrival).
Its own sends are not in its horizon: each send is a request, and its
answer carries the horizon lowered by what the message may start. The node
with the least base is always free to go, so the fleet never deadlocks, and
a node napping for hours is not woken by anyone else's wakes.

**Quiet nodes.** A node whose agent has no job while no station is in view
(its world's next contact at P) can send nothing before P: only a job polled
from the Console gives it a constellation role, and what reaches it
meanwhile only waits in its radio (the firmware holds it, in arrival order,
for a job it may poll later). It says so ("q T P"), goes on alone to P
without asking, and is handed what arrived meanwhile when it asks to go past
P (the first ask of its pass), in arrival order; its base for the others is
P meanwhile. Its word holds over a reset (its journal still holds no job),
so it joins again at its own clock.

**Alone in a pass.** A node whose agent has no job while a station is in
view can get one only from its poll. Until its poll's next wake it can
send nothing either, and what reaches it only waits in its radio, as for a
quiet node. So it goes on to each other wake at once ("g T T2": its base is
T2 from then on, the others need not catch up first), and asks as any node
does only for its poll's wake, where it is handed what arrived meanwhile
before the poll runs. Its word reaches no further than its clock, so a
reset (whose reboot polls at once) rejoins as a running node does. A fleet
whose nodes have no job is then held only at its in-pass nodes' polls.

**Nodes that go.** A node whose connection closes (killed, crashed, reset,
at its end) holds the others at its last time for `grace_s` wall seconds (its
supervisor restarts it meanwhile) and then is *gone*: silent, its base out
of the lockstep, so it stalls no one. A node that joins again carries on at
its clock, or, when the others went on past it by more than L while it was
away, at the latest horizon handed out less L (the earliest moment at which
its messages still reach everyone in time); messages that arrived while it
was away are dropped (its computer was off). A member that has not joined
within `grace_s` of the hub's start is gone too.

**Fleet faults** (`faults`: satellite -> [fault]), times in s after `start`:
  {"kind": "lost", "at_s": T}                    the satellite is lost for good at T: its
                                                  links go down and its node ends at T (exit 4,
                                                  its summary's isl: "stopped": "lost");
                                                  it never joins again
  {"kind": "partition", "at_s": T, "for_s": D}   all its links down over [T, T + D]
  {"kind": "isl_down", "peer": ID, "at_s": T, "for_s": D}   the pair's link down over [T, T + D]
Links down are cut out of the contact plan (islnet.cut): no route through
them, and a message whose hop they cut in flight is lost.

**The protocol**: one JSON object a line each way, one answer per request.
Times are ms on the node's clock (0 = `start`).
  {"op": "join", "sat": ID, "t": T}        -> {"t": T', "h": H, "L": L}   (T' >= T: carry on there)
  {"op": "adv", "t": T, "to": T2}          -> {"t": R, "h": H, "m": [[src, arrival, kind, data]...]}
                                              (R <= T2; "stop": "lost" when it was lost at R)
      or, the same in short (asked most): "a T T2" -> "r R H" when nothing arrived
  "q T P"                                  -> "r R H"   (quiet: it sends nothing before P; it goes
                                              on alone to R = P, or to where it was lost, and
                                              gets what arrived meanwhile at its next advance)
  "g T T2"                                 -> "r R H"   (alone: no job, and T2 is not its poll's
                                              wake; it goes on to R = T2 at once, or to where
                                              it was lost, and gets what arrived meanwhile at
                                              its next advance)
  {"op": "send", "t": T, "to": ID, "s": TEXT | "b": BASE64}
                                           -> {"id": N, "at": MS, "ok": bool, "h": H}
                                              (id None: no route now; at: arrival or loss)
  {"op": "link", "t": T, "to": ID}         -> {"link": None | {hops, latency_ms, bandwidth_mbps, quality}}
  {"op": "nb", "t": T}                     -> {"nb": [ids]}
  {"op": "bye", "t": T}                    -> {"bye": true}   (at its end: gone, no grace)
A bad request gets {"err": why} and changes nothing.

With `log_path` the hub writes one JSON line per lockstep event: join, adv
(a node asks to go on), rel (a node released to a time, with its horizon
and the least base of the others), send, recv (a message handed over, with
the receiver's clock), gone.
"""
import base64
import heapq
import json
import math
import selectors
import socket
import threading
import time

import islnet
from clock import SimClock

MAX_LINE = 4 << 20          # one request at most this long (a message's data inside, base64)
HORIZON_CAP_MS = 600000     # no horizon reaches further than this past the node's time: what a
                            # node that comes back after it was gone may have to skip at most
FLEET_KINDS = ("lost", "partition", "isl_down")
UNJOINED, RUNNING, WAITING, QUIET, AWAY, GONE = "unjoined", "running", "waiting", "quiet", "away", "gone"


def split_faults(faults, members):
    """(fleet faults for the hub, node faults per satellite) from FleetRun's
    `faults` (satellite -> [fault]); ValueError naming the satellite for a bad
    fleet fault."""
    fleet, node = {}, {}
    for sid, script in (faults or {}).items():
        if sid not in members:
            raise ValueError("faults for %r: not a satellite of the fleet" % (sid,))
        if not isinstance(script, list):
            raise ValueError("faults for %s: a list of faults is needed" % sid)
        for f in script:
            if isinstance(f, dict) and f.get("kind") in FLEET_KINDS:
                _check_fault(sid, f, members)
                fleet.setdefault(sid, []).append(f)
            else:
                node.setdefault(sid, []).append(f)
    return fleet, node


def _check_fault(sid, f, members):
    def num(key):
        v = f.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or v != v or v == float("inf"):
            raise ValueError("fault %s of %s: %s must be a number >= 0" % (f["kind"], sid, key))
        return v
    num("at_s")
    if f["kind"] in ("partition", "isl_down"):
        num("for_s")
    if f["kind"] == "isl_down" and (f.get("peer") not in members or f.get("peer") == sid):
        raise ValueError("fault isl_down of %s: peer %r is not another satellite of the fleet"
                         % (sid, f.get("peer")))


class _Member:
    def __init__(self, sat):
        self.sat = sat
        self.state = UNJOINED
        self.sock = None
        self.buf = b""
        self.t = 0            # its last reported (or released) time
        self.want = None      # waiting: the time it asked for
        self.h = 0            # the horizon last handed to it
        self.inbox = []       # heap of [arrival ms, msg id, src, kind, data]
        self.away_since = None
        self.lost_ms = None
        self.promise = 0      # it sends nothing before this (a quiet node's word; kept over a reset)
        self.boot_ms = 0      # what arrives before this is lost with its RAM (its latest join)


class Hub:
    def __init__(self, plan, start, members, faults=None, host="127.0.0.1", grace_s=10.0, log_path=None):
        self.start_s = int(start)
        members = list(members)
        fleet, _ = split_faults(faults, members)
        outages = []
        self.members = dict((sid, _Member(sid)) for sid in members)
        for sid, script in fleet.items():
            for f in script:
                t0 = self.start_s + f["at_s"]
                if f["kind"] == "lost":
                    outages.append((sid, t0, None))
                    ms = int(f["at_s"] * 1000)
                    m = self.members[sid]
                    m.lost_ms = ms if m.lost_ms is None else min(m.lost_ms, ms)
                elif f["kind"] == "partition":
                    outages.append((sid, t0, t0 + f["for_s"]))
                else:
                    outages.append(((sid, f["peer"]), t0, t0 + f["for_s"]))
        self.plan = islnet.cut(plan, outages) if outages else plan
        self.net = islnet.Network(self.plan, SimClock(start_epoch=self.start_s), self.start_s)
        self.L = islnet.lookahead_ms(plan)
        self.grace_s = grace_s
        self.counts = {"sent": 0, "delivered": 0, "lost": 0, "no_route": 0, "dropped": 0,
                       "releases": 0, "requests": 0, "bad_requests": 0, "quiet": 0,
                       "alone": 0}
        self.next_id = 1
        self._log = open(log_path, "w") if log_path else None
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((host, 0))
        self._lsock.listen(64)
        self._lsock.setblocking(False)
        self.address = "%s:%d" % self._lsock.getsockname()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._lsock, selectors.EVENT_READ, None)
        self._conns = {}      # socket -> member (None until it joined)
        self._bufs = {}       # socket -> what it sent of a line, before it joined
        self._stop = False
        self._thread = None
        self._t0 = time.monotonic()
        self.error = None
        self.cpu_s = 0.0

    # --- running ----------------------------------------------------------------------

    def start(self):
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._serve, name="islhub", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop = True
        if self._thread is not None:
            self._thread.join(5)
        for s in list(self._conns):
            self._close(s)
        self._sel.close()
        self._lsock.close()
        if self._log:
            self._log.close()
            self._log = None

    def stats(self):
        out = dict(self.counts)
        out["lookahead_ms"] = self.L
        out["cpu_s"] = round(self.cpu_s, 2)
        out["gone"] = sorted(m.sat for m in self.members.values() if m.state == GONE)
        return out

    def _serve(self):
        c0 = time.thread_time()
        try:
            next_check = 0.0
            while not self._stop:
                for key, _ in self._sel.select(0.2):
                    if key.fileobj is self._lsock:
                        self._accept()
                    else:
                        self._read(key.fileobj)
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + 0.2
                    self._timeouts()
        except Exception as exc:  # the hub's own fault: say so, let the nodes see their link close
            self.error = "%s: %s" % (type(exc).__name__, exc)
            for s in list(self._conns):
                self._close(s)
        finally:
            self.cpu_s = time.thread_time() - c0

    def _accept(self):
        try:
            s, _ = self._lsock.accept()
        except OSError:
            return
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(True)
        self._conns[s] = None
        self._sel.register(s, selectors.EVENT_READ, None)

    def _close(self, s):
        m = self._conns.pop(s, None)
        self._bufs.pop(s, None)
        try:
            self._sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()
        if m is not None and m.sock is s:
            m.sock = None
            m.buf = b""
            if m.state in (RUNNING, WAITING, QUIET):
                if m.state == WAITING:
                    m.want = None
                m.state = AWAY
                m.away_since = time.monotonic()
                self._release_all()

    def _read(self, s):
        try:
            chunk = s.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            self._close(s)
            return
        m = self._conns.get(s)
        buf = (m.buf if m is not None else self._bufs.get(s, b"")) + chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            self._request(s, line)
            if s not in self._conns:
                return
        if len(buf) > MAX_LINE:
            self._close(s)
            return
        m = self._conns.get(s)
        if m is not None:
            m.buf = buf
        else:
            self._bufs[s] = buf

    def _timeouts(self):
        now = time.monotonic()
        changed = False
        for m in self.members.values():
            if m.state == AWAY and now - m.away_since > self.grace_s:
                self._gone(m, "away")
                changed = True
            elif m.state == UNJOINED and now - self._t0 > self.grace_s:
                self._gone(m, "never joined")
                changed = True
        if changed:
            self._release_all()

    def _gone(self, m, why):
        m.state = GONE
        m.want = None
        self._note("gone", sat=m.sat, t=m.t, why=why)

    # --- requests -------------------------------------------------------------------------

    def _send(self, s, doc):
        try:
            s.sendall((json.dumps(doc, separators=(",", ":")) + "\n").encode())
        except OSError:
            self._close(s)

    def _request(self, s, line):
        self.counts["requests"] += 1
        short = line[:2]
        if short in (b"a ", b"q ", b"g "):   # the ones asked most, in short: "a T TO" (advance),
            m = self._conns.get(s)     # "q T P" (quiet until P: no job, no station in view),
                                       # "g T TO" (alone to TO: no job, not its poll's wake)
            try:
                _, t, to = line.split()
                t = int(t)
                to = int(to)
            except ValueError:
                m = None
            if m is not None and m.state in (RUNNING, QUIET) and m.t <= t <= to:
                if short != b"a ":
                    return self._quiet(m, t, to, word=short == b"q ")
                m.t = t
                m.state = WAITING
                m.want = to
                if self._log:
                    self._note("adv", sat=m.sat, t=t, to=to)
                self._release_all()
                return
            # not as it should be: the long way says why
            line = {b"a ": b'{"op":"adv"}', b"q ": b'{"op":"quiet"}', b"g ": b'{"op":"alone"}'}[short]
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("a request is a JSON object")
            op = req.get("op")
            t = req.get("t")
            if isinstance(t, bool) or not isinstance(t, int) or t < 0:
                raise ValueError("t must be an integer ms >= 0")
            m = self._conns.get(s)
            if op == "join":
                return self._join(s, req.get("sat"), t)
            if m is None:
                raise ValueError("join first")
            if m.state == QUIET:      # its word ends with what it asks now
                if op == "send" and t < m.promise:
                    raise ValueError("a quiet satellite sends nothing before %d" % m.promise)
            elif m.state != RUNNING:
                raise ValueError("one request at a time")
            if t < m.t:
                raise ValueError("time went back (%d < %d)" % (t, m.t))
            m.t = t
            if m.state == QUIET:
                m.state = RUNNING
            if op == "adv":
                to = req.get("to")
                if isinstance(to, bool) or not isinstance(to, int) or to < t:
                    raise ValueError("to must be an integer ms >= t")
                m.state = WAITING
                m.want = to
                if self._log:
                    self._note("adv", sat=m.sat, t=t, to=to)
                self._release_all()
                return
            if op == "send":
                return self._send(s, self._transmit(m, req))
            if op == "link":
                dst = req.get("to")
                link = self.net.link_at(m.sat, dst, self._unix(t)) if dst in self.members and dst != m.sat else None
                return self._send(s, {"link": link})
            if op == "bye":       # at its end: gone now, the others need not wait for it
                self._gone(m, "bye")
                self._conns[s] = None
                m.sock = None
                self._send(s, {"bye": True})
                self._release_all()
                return
            if op == "nb":
                return self._send(s, {"nb": self.net.neighbours_at(m.sat, self._unix(t))})
            raise ValueError("unknown op %r" % (op,))
        except (ValueError, TypeError) as exc:
            self.counts["bad_requests"] += 1
            self._send(s, {"err": str(exc)})

    def _unix(self, ms):
        return self.start_s + ms / 1000.0

    def _ms(self, t):
        return int(math.ceil((t - self.start_s) * 1000.0 - 1e-6))

    def _join(self, s, sat, t):
        m = self.members.get(sat) if isinstance(sat, str) else None
        if m is None:
            raise ValueError("%r is not a satellite of the fleet" % (sat,))
        if m.state in (RUNNING, WAITING, QUIET):
            raise ValueError("%s has joined already" % sat)
        if m.lost_ms is not None and m.state == GONE and m.t >= m.lost_ms:
            raise ValueError("%s was lost" % sat)
        # carry on at its clock, unless the others went on past it (while it was away)
        # and it may send before they are back (a quiet node's word holds over its reset:
        # with no job and no station in view it sends nothing, its RAM lost or not)
        front = max([o.h for o in self.members.values() if o is not m] + [0])
        floor = max(t, m.t if m.state == AWAY else 0)
        if m.promise <= floor:
            floor = max(floor, front - self.L)
        dropped = 0
        while m.inbox and m.inbox[0][0] < floor:
            heapq.heappop(m.inbox)
            dropped += 1
        self.counts["dropped"] += dropped
        old = self._conns.get(s)
        if old is not None:
            raise ValueError("this connection has joined already")
        self._conns[s] = m
        m.sock = s
        m.buf = self._bufs.pop(s, b"")
        m.state = RUNNING
        m.t = floor
        m.boot_ms = floor
        m.away_since = None
        m.h = min(self._horizon(m), floor + HORIZON_CAP_MS)
        self._note("join", sat=sat, t=t, floor=floor, h=m.h, dropped=dropped)
        self._send(s, {"t": floor, "h": m.h, "L": self.L})
        self._release_all()

    def _transmit(self, m, req):
        dst = req.get("to")
        if "s" in req:
            kind, data = "s", req["s"]
            if not isinstance(data, str):
                raise ValueError("s must be a string")
            size = len(data.encode())
        else:
            kind, data = "b", req.get("b")
            if not isinstance(data, str):
                raise ValueError("a message needs s or b")
            size = len(base64.b64decode(data.encode(), validate=True))
        if dst == m.sat:
            raise ValueError("a satellite does not send to itself")
        out = None
        if dst in self.members and (m.lost_ms is None or m.t < m.lost_ms):
            out = self.net.transmit(m.sat, dst, size, self._unix(m.t))
        if out is None:
            self.counts["no_route"] += 1
            self._note("send", src=m.sat, dst=dst, t=m.t, id=None)
            return {"id": None, "h": m.h}
        ready, outcome = out
        at = max(self._ms(ready), m.t + self.L)
        ok = outcome == "delivered"
        mid = self.next_id
        self.next_id += 1
        self.counts["sent"] += 1
        d = self.members[dst]
        if ok and at < d.boot_ms:   # it reaches a computer that came up again after it: lost with its RAM
            self.counts["dropped"] += 1
        elif ok:
            heapq.heappush(d.inbox, [at, mid, m.sat, kind, data])
        else:
            self.counts["lost"] += 1
        m.h = min(self._horizon(m), m.h)   # what this message may start comes sooner
        self._note("send", src=m.sat, dst=dst, t=m.t, id=mid, at=at, ok=ok, size=size)
        self._release_all()
        return {"id": mid, "at": at, "ok": ok, "h": m.h}

    def _quiet(self, m, t, until, word=True):
        """A node with no job that goes on without the others, on its own, to
        `until`: it sends nothing before then, and what reaches it meanwhile only
        waits in its radio (the firmware holds it for a constellation job it may
        poll later), so it gets what arrived when it next asks to advance.
        Quiet ("q", word): no station in view until `until` (its own world's
        word), which is its base for the others meanwhile and holds over a reset.
        Alone ("g", not word): a wake before its poll's (the only thing that can
        give it a job, and with it a constellation role); it is at `until` at
        once, its base its clock, and its word no further: a reset of it rejoins
        as any running node's."""
        r = until
        if m.lost_ms is not None and m.lost_ms < r:
            r = max(t, m.lost_ms)   # it asks there again, and is stopped
        if word:
            m.t = t
            m.promise = until
            m.state = QUIET
        else:
            m.t = r
            m.state = RUNNING       # a quiet node's word ran out at its pass
        self.counts["quiet" if word else "alone"] += 1
        if self._log:
            if word:
                self._note("quiet", sat=m.sat, t=t, until=until, to=r)
            else:
                self._note("quiet", sat=m.sat, t=t, until=r, to=r, alone=1)
        if self._short_reply(m, r, m.h):
            self._release_all()

    def _short_reply(self, m, r, h):
        """ "r R H": go on to R, horizon H (nothing arrived). False when the link broke."""
        try:
            m.sock.sendall(b"r %d %d\n" % (r, h))
            return True
        except OSError:
            self._close(m.sock)
            return False

    # --- the lockstep -----------------------------------------------------------------------

    @staticmethod
    def _base(m):
        if m.state == WAITING:
            b = min(m.want, m.inbox[0][0]) if m.inbox else m.want
            return max(b, m.t)
        if m.state in (RUNNING, AWAY, UNJOINED, QUIET):
            return max(m.t, m.promise)
        return None

    def _lows(self):
        """The least and second least base, and whose the least is."""
        lo1 = lo2 = None
        who = None
        for m in self.members.values():
            b = self._base(m)
            if b is None:
                continue
            if lo1 is None or b < lo1:
                lo1, lo2, who = b, lo1, m
            elif lo2 is None or b < lo2:
                lo2 = b
        return lo1, lo2, who

    def _horizon(self, m, lows=None):
        lo1, lo2, who = lows or self._lows()
        others = lo2 if who is m else lo1
        h = others + self.L if others is not None else 1 << 62
        if m.inbox and m.inbox[0][0] < h:
            h = max(m.inbox[0][0], m.t)   # what came while it was quiet is handed over now
        if m.lost_ms is not None and m.lost_ms < h:
            h = m.lost_ms            # it goes no further without asking: it stops there
        return h

    def _release_all(self):
        # A release leaves the node's base where it was (it goes on from the time it
        # waited for): only a node stopped for good changes the others' bounds, and
        # then the round is made again.
        members = self.members.values()
        L = self.L
        while True:
            lows = self._lows()
            lo1, lo2, who = lows
            if lo1 is None:
                return
            again = False
            for m in members:
                if m.state != WAITING:
                    continue
                r = m.want
                if m.inbox and m.inbox[0][0] < r:
                    r = max(m.inbox[0][0], m.t)
                others = lo2 if who is m else lo1
                if others is not None and r > others + L:
                    continue        # someone may still reach it before r
                h = self._horizon(m, lows)
                if m.lost_ms is not None and m.lost_ms < r:
                    r = max(m.t, m.lost_ms)
                if r > h:
                    continue
                self._release(m, r, min(h, max(r, m.t) + HORIZON_CAP_MS), lows)
                again = again or m.state == GONE
            if not again:
                return

    def _release(self, m, r, h, lows):
        lo1, lo2, who = lows
        stop = None
        if m.lost_ms is not None and r >= m.lost_ms:
            r = max(m.t, m.lost_ms)
            stop = "lost"
        msgs = []
        while m.inbox and m.inbox[0][0] <= r:
            at, mid, src, kind, data = heapq.heappop(m.inbox)
            msgs.append([src, at, kind, data])
            self.counts["delivered"] += 1
            self._note("recv", dst=m.sat, src=src, id=mid, at=at, clock=r)
        m.state = RUNNING
        m.want = None
        m.t = r
        m.h = h
        self.counts["releases"] += 1
        if self._log:
            self._note("rel", sat=m.sat, t=r, h=h, others=lo2 if who is m else lo1)
        if not msgs and not stop:     # the answer given most, in short
            self._short_reply(m, r, h)
            return
        doc = {"t": r, "h": h, "m": msgs}
        if stop:
            doc["stop"] = stop
            self._note("gone", sat=m.sat, t=r, why="lost")
        self._send(m.sock, doc)
        if stop:
            m.state = GONE
            if m.sock is not None:
                self._conns.pop(m.sock, None)
                try:
                    self._sel.unregister(m.sock)
                except (KeyError, ValueError):
                    pass
                m.sock.close()
                m.sock = None

    def _note(self, ev, **kw):
        if self._log:
            kw["ev"] = ev
            self._log.write(json.dumps(kw, separators=(",", ":")) + "\n")
