"""The agent's side of the Console protocol over a serial line (PROTOCOL.md
"Serial link"); `umbra bridge` is the ground end. Same interface as
link.HttpLink:

    status, reply = yield from link.call("POST", "/api/agent/telemetry", body)

status None means "link down" (reply is then the reason); the caller retries
at its next opportunity. Nothing here raises on a bad line or bad frames.

Wire (payloads are compact JSON in framing.encode frames):
    hello    {"i": n, "m": "HELLO", "b": {"agent_id", "api_key", "sid", "ua", "max", "pc"}}
             -> {"i": n, "s": 200, "b": {"sid": sid, "bridge": "..."}}
    request  {"i": n, "m": "POST", "p": "/api/...", "b": body}   (b left out when None)
    reply    {"i": n, "s": 200, "b": body}                        (b left out when none)
    down     {"i": n, "s": 0, "e": "reason"[, "h": 1]}   the bridge could not
             reach the Console (h: it has no session: say hello again)
    pieces   a reply longer than pc (PIECE) bytes comes as frames
             `#<n> <k> <count>:<bytes k of the reply's JSON>`, k = 0 .. count-1

No frame is held twice in RAM: a request frame is built in one buffer from
the body's pieces (an event batch is never joined), the port is read into a
small buffer of the link's own, and a reply frame is decoded where it lies
in the deframer's buffer (PIECE bytes, allocated once). A workload of 12 KB
arrives as pieces of PIECE bytes each and is parsed from them (MicroPython:
json.load over a stream of the pieces, no one block the size of it all).

One request is in flight at a time (a half-duplex radio has no better). A
request whose reply does not come within timeout_ms is sent again, the same
frame with the same id, up to `retries` times; the bridge replays its cached
reply for an id it already relayed, so a retry never reaches the Console
twice. Replies with another id (late answers to earlier tries) are dropped
and counted as stale. Waiting polls the port without blocking and yields
`pause` between polls, bounded by the real-time timeout.
"""
import json
import os
import sys

import framing
import serialport

try:
    from io import IOBase
except ImportError:
    IOBase = None

try:
    from time import ticks_diff, ticks_ms
except ImportError:          # CPython
    import time

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

USER_AGENT = "umbra-agent/"
ID_LIMIT = const(0x10000)         # request ids run 1..65535, then wrap to 1
DEFAULT_TIMEOUT_MS = const(1500)  # per try: the bridge's HTTP relay plus the line
DEFAULT_RETRIES = const(3)        # tries after the first
DEFAULT_MAX_REPLY = const(16384)  # bytes of reply payload this agent accepts
READ_CHUNK = const(256)
PIECE = const(2048)               # longest reply piece (bytes of JSON) per frame
_PIECE_HEAD = const(24)           # '#65535 9 9:' and room to spare
_PENDING = object()               # _reply: a piece taken, more to come


class _Pieces(IOBase or object):
    """The reply's pieces as one stream for json.load (MicroPython)."""

    def __init__(self, parts):
        self.parts = parts
        self.i = 0
        self.off = 0

    def readinto(self, buf):
        n = 0
        parts = self.parts
        while n < len(buf) and self.i < len(parts):
            p = parts[self.i]
            k = min(len(buf) - n, len(p) - self.off)
            # a view, not a slice of p: deflate.DeflateIO reads a byte a call,
            # and a copy each time left the inflate no room in a fragmented heap
            buf[n:n + k] = memoryview(p)[self.off:self.off + k]
            n += k
            self.off += k
            if self.off == len(p):
                self.i += 1
                self.off = 0
        return n

    def ioctl(self, req, arg):
        return 0


def _loads(parts, z=False):
    if z:  # raw deflate, a 512-byte window (the bridge's "deflate9"), decoded as it is read
        if sys.implementation.name == "micropython":
            import deflate
            return json.load(deflate.DeflateIO(_Pieces(parts), deflate.RAW, 9))
        import zlib
        return json.loads(zlib.decompress(b"".join(parts), -9))
    if len(parts) == 1:
        return json.loads(parts[0])
    if IOBase is not None and sys.implementation.name == "micropython":
        return json.load(_Pieces(parts))
    return json.loads(b"".join(parts))


def _has_deflate():
    try:
        import deflate  # noqa: F401  (MicroPython's; a board built without it offers none)
        return True
    except ImportError:
        return sys.implementation.name != "micropython"  # CPython: zlib


def _session_id():
    try:
        b = os.urandom(4)
        return ((b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]) & 0x3FFFFFFF) or 1
    except Exception:
        return (ticks_ms() & 0x3FFFFFFF) or 1


class SerialLink:
    """cfg: agent_id, api_key; optional serial_port, serial_baud,
    serial_timeout_ms, serial_retries. `port` (an open port or a spec for
    serialport.open_port) overrides cfg; a port spec is reopened after the
    line fails."""

    def __init__(self, cfg, version, port=None, now_ms=None, pause=None,
                 timeout_ms=None, retries=None, max_reply=DEFAULT_MAX_REPLY):
        self.agent_id = cfg["agent_id"]
        self.api_key = cfg["api_key"]
        self.user_agent = USER_AGENT + version
        get = cfg.get
        self.timeout_ms = timeout_ms or get("serial_timeout_ms") or DEFAULT_TIMEOUT_MS
        self.retries = retries if retries is not None else get("serial_retries", DEFAULT_RETRIES)
        self.baud = get("serial_baud") or 115200
        spec = port if port is not None else get("serial_port")
        if spec is not None and hasattr(spec, "read") and hasattr(spec, "write") \
                and not hasattr(spec, "any"):
            self.port, self.spec = spec, None        # an open port object
        else:
            self.port, self.spec = None, spec
        self.now_ms = now_ms or ticks_ms
        self.pause = pause
        self.max_reply = max_reply
        self.deframer = framing.Deframer(PIECE + _PIECE_HEAD)
        self.rx = bytearray(READ_CHUNK)
        self.pieces = None            # the reply being received in pieces
        self.pieces_z = False         # ... deflated
        self.sid = _session_id()
        self.last_id = 0
        self.session = False          # the bridge acknowledged our hello
        self.offer_compact = bool(get("serial_compact"))  # offer compact requests at hello
        self.compact = False          # ... and the bridge took the offer (firmware/compact.py)
        self.busy_since = None        # a call holds the line since (ms)
        self.waiters = 0              # calls waiting for the line
        self.handoff = False          # the line was freed with calls waiting: theirs first
        # counters (requests/failures/bytes_sent as in HttpLink)
        self.requests = 0
        self.failures = 0
        self.bytes_sent = 0
        self.frames_out = 0
        self.frames_in = 0
        self.retried = 0
        self.timeouts = 0
        self.stale = 0
        self.hellos = 0
        self.port_errors = 0

    @property
    def bad_frames(self):
        return self.deframer.bad + self.deframer.overflow

    def counters(self):
        return {"requests": self.requests, "failures": self.failures,
                "bytes_sent": self.bytes_sent, "frames_out": self.frames_out,
                "frames_in": self.frames_in, "retried": self.retried,
                "timeouts": self.timeouts, "stale": self.stale,
                "bad_frames": self.bad_frames, "hellos": self.hellos,
                "port_errors": self.port_errors}

    def idle(self):
        """The link is down (HttpLink drops its HTTP client then): the serial
        driver is small and stays for the next contact."""

    def call(self, method, path, body=None, raw=None):
        """As HttpLink.call; raw: a JSON text already encoded (an event batch)."""
        if raw is not None:
            parts = raw if isinstance(raw, tuple) else (raw,)  # JSON text, in pieces
        elif body is not None:
            parts = (json.dumps(body, separators=(",", ":")),)
        else:
            parts = None
        raw = body = None
        self.requests += 1
        # One request on the line at a time; a holder that vanished without
        # cleaning up (killed task) is overtaken after the longest call.
        longest = 2 * (self.retries + 1) * self.timeout_ms + 1000
        # Turns: when a call ends while others wait, the next of them goes
        # first, not a new call of the task that just had the line (the
        # report task draining a backlog would keep telemetry off a pass).
        waited = False
        while self.busy_since is not None and \
                ticks_diff(self.now_ms(), self.busy_since) < longest or \
                self.handoff and not waited:
            if not waited:
                waited = True
                self.waiters += 1
            yield self.pause
        if waited:
            self.waiters -= 1
        self.handoff = False
        self.busy_since = self.now_ms()
        try:
            for _ in range(2):      # a second round only after "no session"
                if not self.session:
                    ok, why = yield from self._hello()
                    if not ok:
                        self.failures += 1
                        return None, why
                status, reply = yield from self._exchange(method, path, parts)
                if status is None and reply == "no session":
                    self.session = False
                    continue
                if status is None:
                    self.failures += 1
                return status, reply
            self.failures += 1
            return None, "bridge has no session"
        finally:
            self.busy_since = None
            self.handoff = self.waiters > 0

    def _hello(self):
        self.hellos += 1
        hello = {"agent_id": self.agent_id, "api_key": self.api_key, "sid": self.sid,
                 "ua": self.user_agent, "max": self.max_reply, "pc": PIECE}
        if self.offer_compact:
            hello["enc"] = ["c2"]  # firmware/compact.py VERSION
            if _has_deflate():
                hello["z"] = ["deflate9"]  # long replies may come deflated
        self.compact = False
        status, reply = yield from self._exchange("HELLO", None, (json.dumps(hello),))
        hello = None
        if status is None:
            return False, reply
        if status != 200 or not isinstance(reply, dict) or reply.get("sid") != self.sid:
            return False, "hello refused (%s)" % status
        self.session = True
        self.compact = self.offer_compact and reply.get("enc") == "c2"
        return True, None

    # (a reply's pieces say whether they are deflated: bridge.pieces)

    def _next_id(self):
        self.last_id = self.last_id % (ID_LIMIT - 1) + 1
        return self.last_id

    def _exchange(self, method, path, parts):
        """Send one request (with retries); (status, body) or (None, reason).
        parts: the body's JSON text in pieces, or None."""
        rid = self._next_id()
        if self.compact and method != "HELLO":
            import compact  # the body as the catalog-driven encoding: a radio's bytes count
            body = _loads(parts) if parts is not None else None
            parts = None
            frame = framing.encode_parts((compact.request(
                rid, method, path, compact.body_kind(path, body) if body is not None else 0,
                body),))
            body = None
        else:
            head = '{"i":%d,"m":"%s"' % (rid, method)
            if path is not None:
                head += ',"p":' + json.dumps(path)
            if parts is None:
                frame = framing.encode_parts((head + "}",))
            else:
                frame = framing.encode_parts((head + ',"b":',) + parts + ("}",))
            head = None
        parts = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
            result = yield from self._try(frame, rid, self.now_ms())
            if result is not None:
                return result
            self.timeouts += 1
        return None, "no reply after %d tries" % (self.retries + 1)

    def _expired(self, started):
        return ticks_diff(self.now_ms(), started) >= self.timeout_ms

    def _try(self, frame, rid, started):
        """One send and wait; the result, or None on timeout."""
        try:
            port = self._port()
            sent = 0
            while sent < len(frame):
                k = port.write(frame[sent:])
                sent += k
                if sent < len(frame):
                    if k:
                        started = self.now_ms()  # the line takes it (a radio modem, slowly)
                    elif self._expired(started):
                        return None
                    yield self.pause
            started = self.now_ms()  # the reply's wait starts once the request is out
            self.frames_out += 1
            self.bytes_sent += len(frame)
            d = self.deframer
            rx = self.rx
            self.pieces = None
            while True:
                n = port.readinto(rx)
                i = 0
                while i < n:
                    i = d.push(rx, i, n)
                    if d.payload is not None:
                        self.frames_in += 1
                        result = self._reply(d.payload, rid)
                        if result is _PENDING:
                            started = self.now_ms()  # a piece came: the reply is under way
                        elif result is not None:
                            return result
                if self._expired(started):
                    return None
                yield self.pause
        except OSError as exc:
            self.port_errors += 1
            self._drop_port()
            # A dead line is not worth the retries: link down now.
            return None, "serial port error: %s" % (exc,)

    def _piece(self, payload, rid):
        """A piece of a long reply: _PENDING, the pieces when it is whole, or
        None (another id's, out of order, malformed: dropped)."""
        colon = -1
        for k in range(1, min(len(payload), _PIECE_HEAD)):
            if payload[k] == 0x3A:  # ':'
                colon = k
                break
        if colon < 0:
            return None
        head = bytes(payload[1:colon]).split()
        z = len(head) == 4 and head[3] == b"z"  # deflated pieces (the hello offered it)
        try:
            i, k, count = [int(x) for x in head[:3]]
        except (ValueError, TypeError):
            return None
        if len(head) not in (3, 4) or len(head) == 4 and not (z and self.offer_compact):
            return None
        if i != rid or count * PIECE > self.max_reply + PIECE:
            return None
        if k == 0:
            self.pieces = []
            self.pieces_z = z
        if self.pieces is None or k != len(self.pieces) or z != self.pieces_z:
            return None  # one went missing: the retry brings them all again
        self.pieces.append(bytes(payload[colon + 1:]))
        if len(self.pieces) < count:
            return _PENDING
        parts = self.pieces
        self.pieces = None
        return parts

    def _reply(self, payload, rid):
        try:
            if payload[0] == 0x23:  # '#': a piece
                parts = self._piece(payload, rid)
                if parts is None or parts is _PENDING:
                    if parts is None:
                        self.stale += 1
                    return parts
                msg = _loads(parts, self.pieces_z)
                parts = None
            else:
                msg = _loads((payload if sys.implementation.name == "micropython"
                              else bytes(payload),))
            i = msg["i"]
            status = msg["s"]
        except Exception:
            self.stale += 1      # good CRC but not a reply we can use
            return None
        if i != rid or not isinstance(status, int):
            self.stale += 1
            return None
        if status == 0:
            if msg.get("h"):
                return None, "no session"
            return None, "bridge: %s" % (msg.get("e") or "console unreachable")
        return status, msg.get("b")

    def _port(self):
        if self.port is None:
            if self.spec is None:
                raise OSError(19, "no serial port configured")   # ENODEV
            self.port = serialport.open_port(self.spec, self.baud)
            self.deframer.reset()
            self.port.write(b"\x00")   # ends any half frame the bridge holds
        return self.port

    def _drop_port(self):
        """Close a tty we opened by path; the next try opens it again (a UART
        object stays as it is). The bridge keeps our session across that; if
        it lost it, it says so."""
        if self.port is not None and isinstance(self.spec, str):   # a path we opened
            try:
                self.port.close()
            except Exception:
                pass
            self.port = None
