"""A node's end of the fleet's ISL hub (tools/islhub.py): the lib/isl.py port
interface, answered by the hub at this node's simulated time, and the
lockstep that keeps the node's clock where no message can still reach it
in its past. Portable (MicroPython unix port and CPython); loopback TCP.
Joining and leaving are sim/islstart.py (an overlay: loaded, used, dropped).

    port = islstart.connect("127.0.0.1:4000", "99901", clock, beat=None)   # joins; the clock may move on
    port.send(dest, data) / status(msg_id) / recv() / link(dest) / neighbours()   (lib/isl.py)
    port.on_arrival = None or fn()   # called by the node's loop (wait) when messages have arrived
    port.wait(t_ms)      -> the node's clock.wait_until with --isl (islstart.join)
    port.reset()         -> a reset of the computer: what arrived and was not read is gone
    port.advance(t_ms)   -> the clock's time after it: t_ms, or sooner when a message
                            arrived first (it is in recv() then, and port.arrived is
                            True); port.stopped is set ("lost") when the hub stopped
                            this satellite there
    islstart.bye(port)   -> at the node's end: the hub no longer waits for it

The node asks the hub only to go past its horizon (the time before which no
message can reach it, given with every answer), so a node napping within it
costs no exchange. While it waits for the hub it calls `beat()` about once
a wall second (the node's heartbeat to its supervisor: waiting for the
fleet is not a hang of its firmware).
"""
import json

try:
    import binascii
except ImportError:  # pragma: no cover
    import ubinascii as binascii

KEEP_STATUS = 16      # the settle times of this many of the latest messages sent are kept (a
                      # notice's is asked within seconds: a round a second while any waits)
MAX_DATA = 1 << 20    # one message at most this long (bytes)


class HubPort:
    # made by islstart.connect: sock, rfile, poll, sat_id, clock, beat, horizon, lookahead_ms
    def __init__(self):
        self.on_arrival = None
        self.node = None        # the node (sim/node.py) it serves: islstart.join sets it
        self.stopped = None
        self.inbox = []
        self.arrived = False
        self.sent = {}          # msg id -> (ms it arrives or is lost, delivered?)
        self.counts = {"sent": 0, "no_route": 0, "received": 0, "waits": 0, "quiet": 0,
                       "alone": 0}
        self.grant = 0          # quiet: it may go on alone to here (islhub "Quiet nodes")
        self.ram_from = -1      # what arrived before this went with a reset's RAM

    def _ask(self, req, short=None):
        self.sock.sendall(short or (json.dumps(req) + "\n").encode())
        while not self.poll.poll(1000):
            if self.beat is not None:
                self.beat()
        line = self.rfile.readline()
        if not line:
            raise OSError("the ISL hub closed the link")
        if line[:2] == b"r ":      # the short answer to an advance: "r T H"
            parts = line.split()
            return {"t": int(parts[1]), "h": int(parts[2]), "m": ()}
        reply = json.loads(line)
        if "err" in reply:
            raise ValueError("ISL hub: %s" % reply["err"])
        return reply

    def wait(self, t_ms):
        """The node's clock.wait_until with --isl (islstart.join): only as far as the
        hub lets it; sooner when a message arrives first (then on_arrival is
        called and the wait ends), on through arrivals while the computer is
        down (node.agent None: they go with its RAM). A satellite stopped by
        the hub ends there (node.end_ms)."""
        node = self.node
        if node.agent is None:  # the computer is down: what the radio held goes with its RAM
            self.reset()
        while self.clock.now_ms() < t_ms and self.stopped is None:
            self.advance(t_ms)
            if node.agent is None:
                self.reset()    # and so does what arrives while it is down
            elif self.arrived:
                self.arrived = False
                if self.on_arrival is not None:
                    self.on_arrival()
                return
        if self.stopped is not None and self.clock.now_ms() < node.end_ms:
            node.end_ms = self.clock.now_ms()     # lost for good here: the node's run ends

    def reset(self):
        self.inbox = []
        self.arrived = False
        self.on_arrival = None
        self.ram_from = self.clock.now_ms()

    def _quiet_until(self, now):
        """The start of the next pass (ms on its clock) while the agent has no job
        and no station is in view: before it no job can come, so this satellite
        sends nothing (only a constellation job's role sends). None otherwise,
        and in a node whose world gives no such word (--faults)."""
        node = self.node
        ag = node.agent if node is not None else None
        if ag is None or ag.journal.state["job"] is not None:
            return None
        if ag.sensors.link_down_ms is None:
            return None
        # sim/spacecraft.py link_down_ms at `now`, without its _sync: stepping the
        # physics to an extra moment would round the battery and temperature
        # differently from a run without the hub. Kept here, not split out of
        # spacecraft.py, whose every byte the board-side world holds (the an500
        # demo runs at its heap's edge); keep the two in step.
        t = self.clock.start_epoch + now / 1000
        tl = node.sat.timeline
        tl.extend_to(t)
        nxt = tl.end
        for c in tl.contacts:
            if c[0] <= t < c[1]:
                return None
            if c[0] > t:
                nxt = c[0]
                break
        until = now + int((nxt - t) * 1000) - 1
        return until if until > now else None

    def _alone(self, t_ms):
        """True while the agent has no job and t_ms comes before its poll task's
        next wake (islhub "Alone in a pass"): only a poll gives it a job, so it
        sends nothing before then, and what reaches it meanwhile only waits in
        its radio until the hub hands it over, before that poll."""
        node = self.node
        ag = node.agent if node is not None else None
        if ag is None or ag.journal.state["job"] is not None:
            return False
        poll = ag.sched.tasks.get("poll")
        wake = poll.entry if poll is not None else None
        return wake is not None and wake[0] > t_ms

    def advance(self, t_ms):
        clock = self.clock
        now = clock.now_ms()
        if self.stopped is not None or t_ms <= now:
            return now
        if t_ms <= self.horizon or t_ms <= self.grant:
            clock.advance_to(t_ms)
            return t_ms
        until = self._quiet_until(now)
        if until is not None:   # no job, no station in view: on alone to the next pass
            self.counts["quiet"] += 1
            self.grant = self._ask(None, b"q %d %d\n" % (now, until))["t"]
            if self.grant > now:
                t = min(t_ms, self.grant)
                clock.advance_to(t)
                return t
            # not a ms further alone (the hub stops it here): ask as any node does
        elif self._alone(t_ms):   # no job, and not its poll's wake: on at once
            self.counts["alone"] += 1
            t = self._ask(None, b"g %d %d\n" % (now, t_ms))["t"]
            if t > now:
                clock.advance_to(t)
                return t
        self.counts["waits"] += 1
        reply = self._ask(None, b"a %d %d\n" % (now, t_ms))
        clock.advance_to(reply["t"])
        self.horizon = reply["h"]
        for src, at, kind, data in reply["m"]:
            if at <= self.ram_from:
                continue        # it came while the computer was down (handed over late: it was quiet)
            self.inbox.append((src, data if kind == "s" else binascii.a2b_base64(data)))
            self.counts["received"] += 1
            self.arrived = True
        if "stop" in reply:
            self.stopped = reply["stop"]
            self.sock.close()
        return clock.now_ms()

    # --- lib/isl.py ----------------------------------------------------------------------

    def send(self, dest, data):
        if not isinstance(dest, str) or dest == self.sat_id:
            raise ValueError("dest must be another satellite's id (str)")
        if isinstance(data, str):
            req = {"op": "send", "t": self.clock.now_ms(), "to": dest, "s": data}
        elif isinstance(data, (bytes, bytearray)):
            req = {"op": "send", "t": self.clock.now_ms(), "to": dest,
                   "b": binascii.b2a_base64(data).decode().strip()}
        else:
            raise ValueError("data must be bytes or str")
        if len(data) > MAX_DATA:
            raise ValueError("an ISL message is at most %d bytes" % MAX_DATA)
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
        # lib/isl.py's SENDING, DELIVERED, LOST (not imported: its Sender would cost the heap)
        got = self.sent.get(msg_id)
        if got is None:
            return "lost"
        if self.clock.now_ms() < got[0]:
            return "sending"
        return "delivered" if got[1] else "lost"

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
