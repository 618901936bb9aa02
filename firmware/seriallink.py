"""The agent's side of the Console protocol over a serial line (PROTOCOL.md
"Serial link"); `umbra bridge` is the ground end. Same interface as
link.HttpLink:

    status, reply = yield from link.call("POST", "/api/agent/telemetry", body)

status None means "link down" (reply is then the reason); the caller retries
at its next opportunity. Nothing here raises on a bad line or bad frames.

Wire (payloads are compact JSON in framing.encode frames):
    hello    {"i": n, "m": "HELLO", "b": {"agent_id", "api_key", "sid", "ua", "max"}}
             -> {"i": n, "s": 200, "b": {"sid": sid, "bridge": "..."}}
    request  {"i": n, "m": "POST", "p": "/api/...", "b": body}   (b left out when None)
    reply    {"i": n, "s": 200, "b": body}                        (b left out when none)
    down     {"i": n, "s": 0, "e": "reason"[, "h": 1]}   the bridge could not
             reach the Console (h: it has no session: say hello again)

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

import framing
import serialport

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
        self.deframer = framing.Deframer(max_reply)
        self.sid = _session_id()
        self.last_id = 0
        self.session = False          # the bridge acknowledged our hello
        self.busy_since = None        # a call holds the line since (ms)
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
            if isinstance(raw, tuple):  # JSON text in pieces (bytes join refuses memoryviews)
                text = bytearray()
                for part in raw:
                    text += part
                raw = text
            body = json.loads(raw)
            raw = text = None
        self.requests += 1
        # One request on the line at a time; a holder that vanished without
        # cleaning up (killed task) is overtaken after the longest call.
        longest = 2 * (self.retries + 1) * self.timeout_ms + 1000
        while self.busy_since is not None and \
                ticks_diff(self.now_ms(), self.busy_since) < longest:
            yield self.pause
        self.busy_since = self.now_ms()
        try:
            request = {"m": method, "p": path}
            if body is not None:
                request["b"] = body
            for _ in range(2):      # a second round only after "no session"
                if not self.session:
                    ok, why = yield from self._hello()
                    if not ok:
                        self.failures += 1
                        return None, why
                status, reply = yield from self._exchange(request)
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

    def _hello(self):
        self.hellos += 1
        status, reply = yield from self._exchange(
            {"m": "HELLO", "b": {"agent_id": self.agent_id, "api_key": self.api_key,
                                 "sid": self.sid, "ua": self.user_agent, "max": self.max_reply}})
        if status is None:
            return False, reply
        if status != 200 or not isinstance(reply, dict) or reply.get("sid") != self.sid:
            return False, "hello refused (%s)" % status
        self.session = True
        return True, None

    def _next_id(self):
        self.last_id = self.last_id % (ID_LIMIT - 1) + 1
        return self.last_id

    def _exchange(self, request):
        """Send one request (with retries); (status, body) or (None, reason)."""
        rid = self._next_id()
        request["i"] = rid
        try:
            frame = framing.encode(json.dumps(request, separators=(",", ":")).encode())
        except (TypeError, ValueError) as exc:
            return None, "body not JSON: %s" % exc
        del request["i"]
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
                sent += port.write(frame[sent:] if sent else frame)
                if sent < len(frame):
                    if self._expired(started):
                        return None
                    yield self.pause
            self.frames_out += 1
            self.bytes_sent += len(frame)
            while True:
                for payload in self.deframer.feed(port.read(READ_CHUNK)):
                    self.frames_in += 1
                    result = self._reply(payload, rid)
                    if result is not None:
                        return result
                if self._expired(started):
                    return None
                yield self.pause
        except OSError as exc:
            self.port_errors += 1
            self._drop_port()
            # A dead line is not worth the retries: link down now.
            return None, "serial port error: %s" % (exc,)

    def _reply(self, payload, rid):
        try:
            msg = json.loads(payload)
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
