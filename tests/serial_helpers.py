"""Helpers for the serial-link tests: real pseudo-terminals, a lossy relay
between two of them (the fault injector), a tiny recording HTTP server that
answers like the Console's agent endpoints, and the `umbra bridge` process.

The HTTP server stands in for the Console only until tools/console can be
started in tests; it keeps events once per (agent_id, seq) and answers
batches with {ids, acked_seq} like PROTOCOL.md says.
"""
import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import threading
import time
import tty
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import tools

ROOT = tools.ROOT


def pty_pair():
    """(master fd, slave fd, slave path), both ends raw. Keep the slave fd
    open while the test runs: the master reads EIO whenever no slave is open."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


# ~12 KB of JSON shaped like a workload: many small objects
WORKLOAD_12K = {"deployment_id": "dep-12k", "steps": [
    {"id": "step-%02d" % i, "name": "Step number %d of the mission" % i, "compute_s": 10 + i,
     "output_mb": i / 4, "depends_on": ["step-%02d" % (i - 1)] if i else [],
     "windows": [[i * 100, i * 100 + 60], [i * 200, i * 200 + 30]]} for i in range(84)]}


class FakeConsole:
    """Records every request; answers register / telemetry / workloads /
    events like the Console (no auth)."""

    def __init__(self, port=0):
        self.lock = threading.Lock()
        self.requests = []           # (method, path, headers dict, body or None)
        self.stored = {}             # (agent_id, seq) -> event
        self.received_events = 0     # events in every relayed batch, duplicates included
        self.status_override = None  # e.g. 503: answer every request with it
        self._port = port
        self.server = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self._port

    def start(self):
        console = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, status, obj=None):
                data = b"" if obj is None else json.dumps(obj).encode()
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")   # so stop() really takes it down
                self.close_connection = True
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                body = json.loads(raw) if raw else None
                with console.lock:
                    console.requests.append((self.command, self.path, dict(self.headers), body))
                    status, reply = console.reply(self.command, self.path, self.headers, body)
                self._answer(status, reply)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self.server.daemon_threads = True
        self._port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def reply(self, method, path, headers, body):
        if self.status_override:
            return self.status_override, {"error": "busy"}
        now = {"server_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if path == "/api/agent/register":
            return 201, {"id": body.get("agent_id"), "status": "idle"}
        if path == "/api/agent/telemetry":
            return 200, dict(now, ok=True)
        if path == "/api/agent/workloads":
            return 204, None
        m = re.match(r"^/api/deployments/([^/]+)/events$", path)
        if m and method == "POST":
            batch = body if isinstance(body, list) else [body]
            agent = headers.get("X-Agent-ID")
            ids = []
            for event in batch:
                self.received_events += 1
                self.stored.setdefault((agent, event["seq"]), event)
                ids.append(event["seq"])
            acked = 0
            while (agent, acked + 1) in self.stored:
                acked += 1
            return 201, dict(now, ids=ids, acked_seq=acked)
        if path == "/api/echo":
            return 200, {"echo": body, "agent": headers.get("X-Agent-ID"),
                         "key": headers.get("X-API-Key")}
        if path == "/api/workload":  # a 12 KB reply, the size of the demo's workload
            return 200, WORKLOAD_12K
        if path == "/api/big":
            return 200, {"blob": "x" * 40000}
        return 404, {"error": "not found"}

    def paths(self, prefix=""):
        with self.lock:
            return [r[1] for r in self.requests if r[1].startswith(prefix)]


class LossyRelay:
    """Copies frames between two pty masters, dropping, duplicating and
    corrupting (one flipped bit) whole frames at the given rates, per
    direction, from a seeded generator."""

    def __init__(self, master_a, master_b, drop=0.0, dup=0.0, corrupt=0.0, seed=1):
        self.fds = (master_a, master_b)
        self.rates = (drop, dup, corrupt)
        self.rng = random.Random(seed)
        self.injected = {"dropped": 0, "duplicated": 0, "corrupted": 0, "frames": 0}
        self.bufs = {master_a: bytearray(), master_b: bytearray()}
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        self.thread.join(2)

    def _run(self):
        a, b = self.fds
        poller = select.poll()
        poller.register(a, select.POLLIN)
        poller.register(b, select.POLLIN)
        while not self.stopping:
            for fd, ev in poller.poll(50):
                if not ev & select.POLLIN:
                    continue
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                self._forward(fd, data, b if fd == a else a)

    def _forward(self, src, data, dst):
        buf = self.bufs[src]
        buf.extend(data)
        while True:
            end = buf.find(b"\x00")
            if end < 0:
                return
            frame = bytes(buf[:end + 1])
            del buf[:end + 1]
            self._send(frame, dst)

    def _send(self, frame, dst):
        drop, dup, corrupt = self.rates
        if len(frame) > 1:
            self.injected["frames"] += 1
            r = self.rng.random()
            if r < drop:
                self.injected["dropped"] += 1
                return
            if r < drop + corrupt:
                self.injected["corrupted"] += 1
                body = bytearray(frame)
                k = self.rng.randrange(len(body) - 1)
                body[k] ^= 1 << self.rng.randrange(8)
                frame = bytes(body)
            elif r < drop + corrupt + dup:
                self.injected["duplicated"] += 1
                frame = frame + frame
        os.write(dst, frame)


class BridgeProcess:
    """`umbra bridge` as a child process; its output lines are collected by a
    thread so the test can wait for one without blocking."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.seen = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, needle, timeout=10.0):
        """Wait for a line containing needle, after the last one waited for."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self.seen < len(self.lines):
                line = self.lines[self.seen]
                self.seen += 1
                if needle in line:
                    return line
            time.sleep(0.02)
        raise AssertionError("no %r within %ss; got %r" % (needle, timeout, self.lines))

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal it; (exit code, output, counters from its last counter line)."""
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        out = "".join(self.lines)
        counters = {}
        for line in self.lines:
            if "bridge counters:" in line:
                counters = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
        return self.proc.returncode, out, counters


def start_bridge(port, console_url, *extra):
    return BridgeProcess([sys.executable, "-m", "tools.cli", "bridge", "--port", port,
                          "--console", console_url, "--stats-interval", "0"] + list(extra))


def agent_process(script, *args):
    """The agent side under the real MicroPython unix port, with pipes."""
    from tools import upy
    argv, env = upy.command(script, impl="micropython", heap="256K", args=args)
    return subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
