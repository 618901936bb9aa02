"""`umbra bridge --port DEV --console URL`: the ground-station end of the
serial link (PROTOCOL.md "Serial link", docs/serial.md).

Reads frames from a serial port (pyserial: a device path, a pty path, or a
URL such as socket://host:port), relays each request to the Console's HTTP
API with the agent id and key from the session's hello, and writes the reply
back as a frame. One session at a time (one port = one agent).

Exactly-once relay over a lossy line: the agent resends a request whose reply
it did not get with the same id; the bridge keeps the last `cache_size`
replies of the session by id and replays the cached reply for a repeated
request instead of relaying it again. Failed relays (Console unreachable,
5xx) are not cached, so the retry goes to the Console again; the agent sees
a Console it cannot reach as link down (status 0 on the wire).

Bad frames (COBS, CRC, over-long) are dropped and counted, never relayed.

A reply longer than the piece size the agent's hello names (`pc`) goes down
in pieces, one frame each: `#<id> <k> <count>:` then bytes k of the reply's
JSON text, so the agent never holds a frame bigger than a few KiB.
"""
import collections
import json
import re
import signal
import sys
import threading
import time
import zlib

import click

import tools  # noqa: F401  (portable folders on sys.path)
import compact
import framing
import timeutil

VERSION = "umbra-bridge/0.1.0"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_PAYLOAD = 65536          # bytes of request payload accepted from the line
DEFAULT_AGENT_MAX = 16384    # reply payload limit when the hello names none
MIN_PIECE = 64               # the smallest piece size a hello may ask for
Z_MIN = 512                  # replies longer than this go deflated to an agent that offered it
_SAFE_PATH = re.compile(r"^/api/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")
_SAFE_HEADER = re.compile(r"^[\x21-\x7e]{1,256}$")

COUNTERS = ("frames_in", "frames_out", "bad_frames", "bad_requests", "hellos", "sessions",
            "no_session", "relayed", "replayed", "http_errors", "oversize", "reconnects",
            "compact_sessions", "deflated", "workloads")


class Session:
    def __init__(self, sid, agent_id, api_key, user_agent, max_reply, cache_size, piece=None):
        self.sid = sid
        self.piece = piece       # replies longer than this go down in pieces (None: whole)
        self.agent_id = agent_id
        self.api_key = api_key
        self.user_agent = user_agent
        self.max_reply = max_reply
        self.cache_size = cache_size
        self.z = False           # long replies go deflated (raw, 512-byte window: "deflate9")
        self.cache = collections.OrderedDict()   # id -> (request payload, reply dict, monotonic s)

    def remember(self, rid, request, reply):
        self.cache.pop(rid, None)
        self.cache[rid] = (request, reply, time.monotonic())
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)


class Bridge:
    """The relay logic, independent of the port: feed() bytes from the line,
    get back the frames to write."""

    def __init__(self, console_url, cache_size=64, http_timeout=10.0, client=None, log=None):
        import httpx
        self.console = console_url.rstrip("/")
        self.cache_size = cache_size
        self.http = client or httpx.Client(timeout=http_timeout, trust_env=False)
        self.http_error_types = (httpx.HTTPError,)
        self.log = log or (lambda msg: None)
        self.deframer = framing.Deframer(MAX_PAYLOAD)
        self.session = None
        self.counts = dict.fromkeys(COUNTERS, 0)

    def counters(self):
        c = dict(self.counts)
        c["bad_frames"] = self.deframer.bad + self.deframer.overflow
        return c

    def feed(self, data):
        out = []
        for payload in self.deframer.feed(data):
            self.counts["frames_in"] += 1
            reply = self.handle(payload)
            if reply is not None:
                for part in self.pieces(reply):
                    out.append(framing.encode(part))
                    self.counts["frames_out"] += 1
        return out

    def pieces(self, reply):
        """The reply as the frames' payloads: itself, or pieces of the size
        the session's hello asked for."""
        session = self.session
        size = session.piece if session is not None else None
        z = b""
        if session is not None and session.z and len(reply) > Z_MIN:
            rid = json.loads(reply)["i"]
            c = zlib.compressobj(9, zlib.DEFLATED, -9)
            reply = c.compress(reply) + c.flush()
            z = b" z"
            self.counts["deflated"] += 1
            size = size or len(reply)
        elif not size or len(reply) <= size:
            return [reply]
        else:
            rid = json.loads(reply)["i"]
        count = (len(reply) + size - 1) // size
        return [b"#%d %d %d%s:" % (rid, k, count, z) + reply[k * size:(k + 1) * size]
                for k in range(count)]

    def handle(self, payload):
        """One good frame's payload -> the reply payload, or None (dropped)."""
        try:
            if payload[:1] == bytes((compact.MARK,)):  # a compact request (firmware/compact.py)
                msg = compact.parse_request(payload)
            else:
                msg = json.loads(payload)
            rid = msg["i"]
            method = msg["m"]
        except (ValueError, TypeError, KeyError, UnicodeDecodeError, IndexError):
            self.counts["bad_requests"] += 1
            return None
        if not isinstance(rid, int) or isinstance(rid, bool) or rid < 0:
            self.counts["bad_requests"] += 1
            return None
        if method == "HELLO":
            return _dump(self._hello(rid, msg.get("b")))
        session = self.session
        if session is None:
            self.counts["no_session"] += 1
            return _dump({"i": rid, "s": 0, "e": "no session: send HELLO first", "h": 1})
        cached = session.cache.get(rid)
        if cached is not None and cached[0] == payload:
            self.counts["replayed"] += 1
            return _dump(_refreshed(cached[1], time.monotonic() - cached[2]))
        reply, cacheable = self._relay(session, rid, msg)
        data = _dump(reply)
        if len(data) > session.max_reply:
            self.counts["oversize"] += 1
            return _dump({"i": rid, "s": 0, "e": "reply of %d bytes exceeds the agent's %d"
                          % (len(data), session.max_reply)})
        if cacheable:
            session.remember(rid, payload, reply)
        return data

    def _hello(self, rid, body):
        self.counts["hellos"] += 1
        if not isinstance(body, dict):
            return _refused(rid, "hello needs a body")
        agent_id, api_key, sid = body.get("agent_id"), body.get("api_key"), body.get("sid")
        user_agent = body.get("ua") or "umbra-agent"
        max_reply = body.get("max") or DEFAULT_AGENT_MAX
        piece = body.get("pc")
        for name, value in (("agent_id", agent_id), ("api_key", api_key), ("ua", user_agent)):
            if not isinstance(value, str) or not _SAFE_HEADER.match(value):
                return _refused(rid, "hello: bad %s" % name)
        if not isinstance(sid, int) or not isinstance(max_reply, int) or max_reply < 64:
            return _refused(rid, "hello: bad sid or max")
        if piece is not None and (not isinstance(piece, int) or isinstance(piece, bool)
                                  or piece < MIN_PIECE):
            return _refused(rid, "hello: bad pc")
        old = self.session
        if old is None or old.sid != sid or old.agent_id != agent_id:
            self.session = Session(sid, agent_id, api_key, user_agent, max_reply, self.cache_size,
                                   piece)
            self.counts["sessions"] += 1
            self.log("session %d of agent %s" % (sid, agent_id))
        else:   # a retried hello: keep the reply cache
            old.api_key, old.user_agent, old.max_reply = api_key, user_agent, max_reply
            old.piece = piece
        reply = {"sid": sid, "bridge": VERSION}
        enc = body.get("enc")
        if isinstance(enc, list) and compact.VERSION in enc:
            reply["enc"] = compact.VERSION  # the agent may send compact requests
            self.counts["compact_sessions"] += 1
        z = body.get("z")
        self.session.z = isinstance(z, list) and "deflate9" in z
        if self.session.z:
            reply["z"] = "deflate9"
        return {"i": rid, "s": 200, "b": reply}

    def _relay(self, session, rid, msg):
        """(reply dict, cacheable)."""
        method, path = msg.get("m"), msg.get("p")
        if method not in METHODS or not isinstance(path, str) or len(path) > 512 \
                or not _SAFE_PATH.match(path) or ".." in path:
            self.counts["bad_requests"] += 1
            return {"i": rid, "s": 400, "b": {"error": "bridge: bad method or path"}}, True
        # X-Umbra-Compact as HttpLink sends it: the agent at the end of a serial
        # line is a microcontroller, and a full workload would not fit its reply
        # limit (the standard pipeline's is ~24 KB, compact ~2.5 KB).
        headers = {"X-Agent-ID": session.agent_id, "X-API-Key": session.api_key,
                   "User-Agent": session.user_agent + " via " + VERSION,
                   "X-Umbra-Compact": "1"}
        content = None
        if "b" in msg and msg["b"] is not None:
            content = json.dumps(msg["b"], separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        try:
            resp = self.http.request(method, self.console + path, content=content, headers=headers)
        except self.http_error_types as exc:
            self.counts["http_errors"] += 1
            return {"i": rid, "s": 0, "e": "console unreachable: %s" % type(exc).__name__}, False
        self.counts["relayed"] += 1
        reply = {"i": rid, "s": resp.status_code}
        if resp.content:
            try:
                reply["b"] = resp.json()
            except ValueError:
                pass
        if resp.status_code >= 500:
            self.counts["http_errors"] += 1
            return reply, False
        if resp.status_code == 200 and method == "GET" and path.startswith("/api/agent/workloads") \
                and isinstance(reply.get("b"), dict) and "deployment_id" in reply["b"]:
            self.counts["workloads"] += 1   # a workload handed down (the link's biggest reply)
        return reply, True

    def close(self):
        self.http.close()

    # ---- the port side -------------------------------------------------

    def serve(self, port_url, baud=115200, stop=None, stats_interval=60.0, reopen_s=0.5,
              echo=None, rate=None):
        """Relay until `stop` (a threading.Event) is set; reopen the port
        whenever it fails or is missing. rate (bits/s): pace the line like a
        radio of that rate (8N1), each way: what the agent sends is taken no
        faster, replies go down no faster."""
        import serial
        stop = stop or threading.Event()
        echo = echo or self.log
        waiting_said = False
        next_stats = time.monotonic() + stats_interval if stats_interval else None
        while not stop.is_set():
            try:
                ser = serial.serial_for_url(port_url, baudrate=baud, timeout=0.05)
            except (serial.SerialException, OSError, ValueError) as exc:
                if not waiting_said:
                    echo("waiting for %s (%s)" % (port_url, exc))
                    waiting_said = True
                stop.wait(reopen_s)
                continue
            waiting_said = False
            echo("port %s open" % port_url)
            self.deframer.reset()
            try:
                while not stop.is_set():
                    data = ser.read(max(1, ser.in_waiting) if not rate else
                                    max(1, min(ser.in_waiting, int(rate) // 100)))
                    if data:
                        if rate:
                            stop.wait(len(data) * 10.0 / rate)  # the air's time for them
                        for frame in self.feed(data):
                            if rate:
                                for k in range(0, len(frame), 64):
                                    ser.write(frame[k:k + 64])
                                    stop.wait(len(frame[k:k + 64]) * 10.0 / rate)
                            else:
                                ser.write(frame)
                    if next_stats and time.monotonic() >= next_stats:
                        echo(format_counters(self.counters()))
                        next_stats = time.monotonic() + stats_interval
            except (serial.SerialException, OSError) as exc:
                self.counts["reconnects"] += 1
                echo("port %s lost (%s); reopening" % (port_url, exc))
            finally:
                try:
                    ser.close()
                except Exception:
                    pass
            if not stop.is_set():
                stop.wait(reopen_s)


def _dump(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def _refused(rid, why):
    return {"i": rid, "s": 400, "b": {"error": why}}


def _refreshed(reply, age_s):
    """A cached reply as it would read now: its server_time moved on by the
    time it sat in the cache (the agent disciplines its clock from it)."""
    body = reply.get("b")
    if isinstance(body, dict) and isinstance(body.get("server_time"), str) and age_s >= 1:
        try:
            t = timeutil.parse_iso(body["server_time"])
        except ValueError:
            return reply
        reply = dict(reply)
        reply["b"] = dict(body)
        reply["b"]["server_time"] = timeutil.iso_utc(t + age_s)
    return reply


def format_counters(counts):
    return "bridge counters: " + " ".join("%s=%d" % (k, counts[k]) for k in COUNTERS)


@click.command()
@click.option("--port", "port_url", required=True,
              help="Serial device or pty path (/dev/ttyACM0, /dev/pts/3) or pyserial URL (socket://host:port).")
@click.option("--console", "console_url", default="http://127.0.0.1:8080", show_default=True,
              help="Base URL of the Console's HTTP API.")
@click.option("--baud", default=115200, show_default=True, help="Line speed (ignored by ptys).")
@click.option("--stats-interval", default=60.0, show_default=True,
              help="Seconds between counter lines (0: only at exit).")
@click.option("--cache-size", default=64, show_default=True, help="Replies kept per session for retries.")
@click.option("--http-timeout", default=10.0, show_default=True, help="Seconds per Console request.")
@click.option("--rate", type=click.IntRange(min=50), default=None, metavar="BITS_PER_S",
              help="Pace the line like a radio of this rate, each way (8N1), e.g. 9600.")
def bridge(port_url, console_url, baud, stats_interval, cache_size, http_timeout, rate):
    """Relay an agent's serial link to the Console (stop with Ctrl-C or SIGTERM)."""
    def say(msg):
        click.echo("umbra bridge: %s" % msg)

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    relay = Bridge(console_url, cache_size=cache_size, http_timeout=http_timeout, log=say)
    say("relaying %s <-> %s" % (port_url, console_url))
    try:
        relay.serve(port_url, baud=baud, stop=stop, stats_interval=stats_interval, echo=say,
                    rate=rate)
    finally:
        relay.close()
        say(format_counters(relay.counters()))
    sys.exit(0)
