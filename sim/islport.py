"""A node's end of the fleet's ISL hub (tools/islhub.py): the lib/isl.py port
interface, answered by the hub at this node's simulated time, and the
lockstep that keeps the node's clock where no message can still reach it
in its past. Portable (MicroPython unix port and CPython); loopback TCP.

    port = HubPort("127.0.0.1:4000", "99901", clock, beat=None)   # joins; the clock may move on
    port.send(dest, data) / status(msg_id) / recv() / link(dest) / neighbours()   (lib/isl.py)
    port.on_arrival = None or fn()   # called by notify() when messages have arrived
    port.advance(t_ms)   -> the clock's time after it: t_ms, or sooner when a message
                            arrived first (it is in recv() then); port.stopped is set
                            ("lost") when the hub stopped this satellite there
    port.notify()        -> calls on_arrival once if messages arrived since the last call
    port.close(bye=True) -> at the node's end: the hub no longer waits for it
    port.reset()         -> a reset of the computer: what arrived and was not read is gone,
                            on_arrival is None again

The node asks the hub only to go past its horizon (the time before which no
message can reach it, given with every answer), so a node napping within it
costs no exchange. While it waits for the hub it calls `beat()` about once
a wall second (the node's heartbeat to its supervisor: waiting for the
fleet is not a hang of its firmware).
"""
import json

import isl

try:
    import binascii
except ImportError:  # pragma: no cover
    import ubinascii as binascii
try:
    import select
except ImportError:  # pragma: no cover
    import uselect as select
import socket

KEEP_STATUS = 64      # the settle times of this many of the latest messages sent are kept


class HubError(OSError):
    pass


class HubPort:
    def __init__(self, address, sat_id, clock, beat=None):
        host, _, port = address.rpartition(":")
        self.sat_id = sat_id
        self.clock = clock
        self.beat = beat
        self.on_arrival = None
        self.stopped = None
        self.inbox = []
        self.arrived = False
        self.sent = {}          # msg id -> (ms it arrives or is lost, delivered?)
        self.counts = {"sent": 0, "no_route": 0, "received": 0, "waits": 0}
        ai = socket.getaddrinfo(host, int(port))[0]
        s = socket.socket(ai[0], socket.SOCK_STREAM)
        s.connect(ai[-1])
        try:
            s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY (Linux): one line each way, at once
        except OSError:
            pass
        self.sock = s
        self.rfile = s.makefile("rb") if hasattr(s, "recv_into") else s
        self.poll = select.poll()
        self.poll.register(s, select.POLLIN)
        reply = self._ask({"op": "join", "sat": sat_id, "t": clock.now_ms()})
        self.lookahead_ms = reply["L"]
        self.horizon = reply["h"]
        clock.advance_to(reply["t"])

    # --- the exchange ------------------------------------------------------------------

    def _ask(self, req):
        self.sock.sendall((json.dumps(req) + "\n").encode())
        return self._answer()

    def _answer(self):
        while True:
            ready = self.poll.poll(1000)
            if ready:
                break
            if self.beat is not None:
                self.beat()
        line = self.rfile.readline()
        if not line:
            raise HubError("the ISL hub closed the link")
        if line[:2] == b"r ":      # the short answer to an advance: "r T H"
            parts = line.split()
            return {"t": int(parts[1]), "h": int(parts[2]), "m": ()}
        reply = json.loads(line)
        if "err" in reply:
            raise ValueError("ISL hub: %s" % reply["err"])
        return reply

    def close(self, bye=False):
        """Close the link; with `bye` tell the hub first that this node has ended
        (the others need not wait for it to come back)."""
        if bye and self.stopped is None:
            try:
                self._ask({"op": "bye", "t": self.clock.now_ms()})
            except (OSError, ValueError):
                pass
        self.stopped = self.stopped or "closed"
        try:
            self.sock.close()
        except OSError:
            pass

    # --- the clock ---------------------------------------------------------------------

    def advance(self, t_ms):
        clock = self.clock
        now = clock.now_ms()
        if self.stopped is not None or t_ms <= now:
            return now
        if t_ms <= self.horizon:
            clock.advance_to(t_ms)
            return t_ms
        self.counts["waits"] += 1
        self.sock.sendall(b"a %d %d\n" % (now, t_ms))
        reply = self._answer()
        clock.advance_to(reply["t"])
        self.horizon = reply["h"]
        for src, _at, kind, data in reply["m"]:
            self.inbox.append((src, data if kind == "s" else binascii.a2b_base64(data)))
            self.counts["received"] += 1
            self.arrived = True
        if "stop" in reply:
            self.stopped = reply["stop"]
            self.close()
        return clock.now_ms()

    def notify(self):
        if self.arrived:
            self.arrived = False
            fn = self.on_arrival
            if fn is not None:
                fn()

    def reset(self):
        self.inbox = []
        self.arrived = False
        self.on_arrival = None

    # --- lib/isl.py ----------------------------------------------------------------------

    def send(self, dest, data):
        if not isinstance(dest, str):
            raise ValueError("dest must be a satellite id (str)")
        if dest == self.sat_id:
            raise ValueError("a satellite does not send to itself")
        if isinstance(data, str):
            req = {"op": "send", "t": self.clock.now_ms(), "to": dest, "s": data}
        elif isinstance(data, (bytes, bytearray)):
            req = {"op": "send", "t": self.clock.now_ms(), "to": dest,
                   "b": binascii.b2a_base64(data).decode().strip()}
        else:
            raise ValueError("data must be bytes or str")
        if self.stopped is not None:
            return None
        reply = self._ask(req)
        if reply["h"] < self.horizon:
            self.horizon = reply["h"]
        mid = reply["id"]
        if mid is None:
            self.counts["no_route"] += 1
            return None
        self.counts["sent"] += 1
        sent = self.sent
        sent[mid] = (reply["at"], reply["ok"])
        if len(sent) > KEEP_STATUS:
            del sent[min(sent)]
        return mid

    def status(self, msg_id):
        got = self.sent.get(msg_id)
        if got is None:
            return isl.LOST
        if self.clock.now_ms() < got[0]:
            return isl.SENDING
        return isl.DELIVERED if got[1] else isl.LOST

    def recv(self):
        return self.inbox.pop(0) if self.inbox else None

    def link(self, dest):
        if self.stopped is not None:
            return None
        return self._ask({"op": "link", "t": self.clock.now_ms(), "to": dest})["link"]

    def neighbours(self):
        if self.stopped is not None:
            return []
        return self._ask({"op": "nb", "t": self.clock.now_ms()})["nb"]

    def stats(self):
        return self.counts
