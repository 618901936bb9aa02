"""Serial link figures: bytes on the line per event (framing overhead against
the compact JSON, and against the same batch over HTTP), the bridge's relay
throughput over a real pty to a local HTTP server, and framing speed under
MicroPython."""
import json
import os
import select
import threading
import time
import tty
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import events
import framing
import httpc
from tools.bridge import Bridge
from tools.upy import run_code

BATCH = 50
RELAY_SECONDS = 2.0


def typical_batch(n, first_seq=1):
    return [events.make("step.completed", "2026-03-07T14:23:45Z", "job-7f3a2c",
                        step_id="s%d" % (k % 7),
                        payload={"duration_s": 12.5, "location": {"lat": 12.3456, "lon": -45.6789},
                                 "data_output_mb": 1.25},
                        agent_id="sat-25544", seq=first_seq + k)
            for k in range(n)]


def line_bytes(n):
    """(frame bytes, compact payload bytes, HTTP request bytes) for a batch of n."""
    batch = typical_batch(n)
    path = "/api/deployments/dep-0001/events"
    payload = json.dumps({"i": 17, "m": "POST", "p": path, "b": batch},
                         separators=(",", ":")).encode()
    frame = framing.encode(payload)
    body = json.dumps(batch).encode()          # what HttpLink sends
    head = httpc._head_bytes("POST", "10.0.0.1", 8080, path,
                             {"X-API-Key": "um_" + "k" * 40, "X-Agent-ID": "sat-25544",
                              "User-Agent": "umbra-agent/0.1.0", "Content-Type": "application/json"},
                             len(body))
    return len(frame), len(payload), len(head) + len(body)


class _Console(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        batch = json.loads(self.rfile.read(n))
        seqs = [e["seq"] for e in batch]
        data = json.dumps({"ids": seqs, "acked_seq": seqs[-1]}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def relay_throughput(batch=BATCH, seconds=RELAY_SECONDS):
    """Sequential request/reply through the bridge over a pty, like an agent."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Console)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    stop = threading.Event()
    bridge = Bridge("http://127.0.0.1:%d" % server.server_address[1])
    worker = threading.Thread(target=bridge.serve, args=(os.ttyname(slave),),
                              kwargs={"stop": stop, "stats_interval": 0}, daemon=True)
    worker.start()
    deframer = framing.Deframer(65536)

    def exchange(rid, body):
        frame = framing.encode(json.dumps({"i": rid, "m": "POST", "p": "/api/deployments/d/events",
                                           "b": body}, separators=(",", ":")).encode())
        os.write(master, frame)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                for payload in deframer.feed(os.read(master, 65536)):
                    if json.loads(payload)["i"] == rid:
                        return len(frame)
        raise RuntimeError("bridge did not answer")

    try:
        hello = framing.encode(json.dumps({"i": 1, "m": "HELLO", "b": {
            "agent_id": "sat-bench", "api_key": "um_bench", "sid": 1}}).encode())
        os.write(master, hello)
        time.sleep(0.3)     # the bridge opens the port; its hello reply is drained below
        frames = n_bytes = 0
        rid = 1
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            rid += 1
            n_bytes += exchange(rid, typical_batch(batch, (rid - 2) * batch + 1))
            frames += 1
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        worker.join(2)
        bridge.close()
        server.shutdown()
        server.server_close()
        os.close(master)
        os.close(slave)
    return frames / elapsed, frames * batch / elapsed, n_bytes / elapsed


FRAMING_SPEED = """
import json, time, framing
payload = bytes((i * 37) % 256 for i in range(4096))
n = 20
t = time.ticks_ms()
for _ in range(n):
    frame = framing.encode(payload)
enc = time.ticks_diff(time.ticks_ms(), t)
d = framing.Deframer(8192)
t = time.ticks_ms()
for _ in range(n):
    assert d.feed(frame) == [payload]
dec = time.ticks_diff(time.ticks_ms(), t)
print(json.dumps({"kib": n * 4, "enc_ms": enc, "dec_ms": dec}))
"""


def framing_speed():
    res = run_code(FRAMING_SPEED, impl="micropython", heap="256K", timeout=120).check()
    m = res.last_json
    return m["kib"] / max(m["enc_ms"], 1) * 1000, m["kib"] / max(m["dec_ms"], 1) * 1000


def run():
    figures = []
    for n in (1, 10, BATCH):
        frame, payload, http = line_bytes(n)
        figures.append({"name": "serial frame bytes per event (batch of %d)" % n,
                        "value": round(frame / n, 1), "unit": "B/event"})
        if n == BATCH:
            figures.append({"name": "framing overhead, COBS+CRC+delimiter (batch of %d)" % n,
                            "value": frame - payload, "unit": "B/frame"})
            figures.append({"name": "HTTP request bytes per event, same batch (for comparison)",
                            "value": round(http / n, 1), "unit": "B/event"})
    frames_s, events_s, bytes_s = relay_throughput()
    figures += [
        {"name": "bridge relay, pty -> HTTP, sequential (batch of %d)" % BATCH,
         "value": round(frames_s, 1), "unit": "frames/s"},
        {"name": "bridge relay events/s (batch of %d)" % BATCH, "value": round(events_s), "unit": "events/s"},
        {"name": "line rate that would need (the pty is not baud-limited)",
         "value": round(bytes_s / 1024), "unit": "KiB/s"},
    ]
    frame50 = line_bytes(BATCH)[0]
    figures.append({"name": "events/s a 115200-baud line carries (8N1, batch of %d)" % BATCH,
                    "value": round(11520.0 / frame50 * BATCH), "unit": "events/s"})
    enc, dec = framing_speed()
    figures += [
        {"name": "frame encode speed (MicroPython unix port)", "value": round(enc, 1), "unit": "KiB/s"},
        {"name": "frame decode speed (MicroPython unix port)", "value": round(dec, 1), "unit": "KiB/s"},
    ]
    return figures
