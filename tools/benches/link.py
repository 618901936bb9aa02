"""Serial link figures: bytes on the line per event (framing overhead against
the compact JSON, and against the same batch over HTTP), the compact encoding
(firmware/compact.py) over the demo mission's real stream, the bridge's relay
throughput over a real pty to a local HTTP server, and framing and compact
encoding speed under MicroPython."""
import json
import os
import select
import threading
import time
import tty
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import compact
import events
import framing
import httpc
import timeutil
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


def demo_stream():
    """The demo mission's predicted events as the agent reports them."""
    from tools import planner
    from tools.benches.planner import SAT
    from tools.scenario import START, load_job
    plan = planner.make_plan(SAT, load_job("demo-mission.json"), timeutil.parse_iso(START), 12)
    return [dict(e, seq=i + 2, agent_id="sat-25544", deployment_id="dep-0123456789abcdef")
            for i, e in enumerate(plan["events"])]


def workload_bytes():
    """The demo mission's WorkloadSpec as the bridge sends it down: (JSON,
    deflated) bytes of the poll reply."""
    import zlib
    from tools import planner
    from tools.benches.planner import SAT
    from tools.scenario import START, load_job
    plan = planner.make_plan(SAT, load_job("demo-mission.json"), timeutil.parse_iso(START), 12)
    spec = planner.workload_spec(plan, plan["id"], "dep-0123456789abcdef", "25544")
    reply = json.dumps({"i": 9, "s": 200, "b": spec}, separators=(",", ":")).encode()
    c = zlib.compressobj(9, zlib.DEFLATED, -9)
    return len(reply), len(c.compress(reply) + c.flush())


def compact_bytes(evs, n):
    """(framed compact bytes, framed JSON bytes) per event, in batches of n."""
    path = "/api/deployments/dep-0123456789abcdef/events"
    c = j = 0
    for i in range(0, len(evs), n):
        batch = evs[i:i + n]
        c += len(framing.encode(bytes(compact.request(17, "POST", path, compact.EVENTS, batch))))
        j += len(framing.encode(json.dumps({"i": 17, "m": "POST", "p": path, "b": batch},
                                           separators=(",", ":")).encode()))
    return c / len(evs), j / len(evs)


def agent_batches(evs):
    """The stream cut as the agent's report task cuts it (journal.outbox:
    at most report_batch events, their spooled JSON within report_batch_bytes,
    the first one always)."""
    import agentdefaults
    limit_n = agentdefaults.DEFAULTS["report_batch"]
    limit_b = agentdefaults.DEFAULTS["report_batch_bytes"]
    batches, cur, size = [], [], 0
    for ev in evs:
        text = len(json.dumps({k: v for k, v in ev.items() if k != "seq"}, separators=(",", ":")))
        if cur and (len(cur) >= limit_n or size + text > limit_b):
            batches.append(cur)
            cur, size = [], 0
        cur.append(ev)
        size += text
    return batches + [cur]


def pass_air_bytes(evs, compact_frames):
    """Bytes on the air each way per event for the agent's batches: the
    request frame (compact or JSON) and the Console's acknowledgement frame
    ({ids, acked_seq, server_time}, JSON as the bridge sends it down). One
    request is in flight at a time, so a pass spends the sum of both."""
    path = "/api/deployments/dep-0123456789abcdef/events"
    up = down = 0
    for rid, batch in enumerate(agent_batches(evs), 1):
        if compact_frames:
            up += len(framing.encode(bytes(compact.request(rid, "POST", path, compact.EVENTS,
                                                           batch))))
        else:
            up += len(framing.encode(json.dumps({"i": rid, "m": "POST", "p": path, "b": batch},
                                                separators=(",", ":")).encode()))
        seqs = [e["seq"] for e in batch]
        down += len(framing.encode(json.dumps(
            {"i": rid, "s": 201, "b": {"ids": seqs, "acked_seq": seqs[-1],
                                       "server_time": "2008-09-20T13:21:36.123Z"}},
            separators=(",", ":")).encode()))
    return up / len(evs), down / len(evs)


COMPACT_SPEED = """
import gc, json, time
evs = json.load(open(%r))
batch = evs[:50]
gc.collect()
a = gc.mem_alloc()
import compact
gc.collect()
module = gc.mem_alloc() - a
t = time.ticks_ms()
for _ in range(10):
    data = compact.encode_body(compact.EVENTS, batch)
enc = time.ticks_diff(time.ticks_ms(), t)
t = time.ticks_ms()
for _ in range(10):
    compact.decode_body(data)
dec = time.ticks_diff(time.ticks_ms(), t)
# the heap one request costs as the agent builds it (seriallink: the batch's
# JSON parsed, then compact.request): bytes allocated, the collector held off
agent = json.load(open(%r))
texts = [json.dumps(b) for b in agent]
heap = 0
for text in texts:
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    frame = compact.request(9, "POST", "/api/deployments/dep-0123456789abcdef/events",
                            compact.EVENTS, json.loads(text))
    heap = max(heap, gc.mem_alloc() - a)
    gc.enable()
    frame = None
print(json.dumps({"events": 500, "enc_ms": enc, "dec_ms": dec, "module": module, "heap": heap,
                  "batch_n": max(len(b) for b in agent)}))
"""


def compact_speed(evs):
    import tempfile
    paths = []
    for doc in (evs, agent_batches(evs)):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(doc, f)
            paths.append(f.name)
    try:
        m = run_code(COMPACT_SPEED % tuple(paths), impl="micropython", heap="512K",
                     timeout=120).check().last_json
    finally:
        for p in paths:
            os.unlink(p)
    return m["events"] / max(m["enc_ms"], 1) * 1000, m["events"] / max(m["dec_ms"], 1) * 1000, \
        m["module"], m["heap"], m["batch_n"]


def run():
    figures = []
    evs = demo_stream()
    for n in (1, 10, BATCH):
        c, j = compact_bytes(evs, n)
        figures.append({"name": "compact: serial bytes per event, demo mission stream "
                                "(batch of %d; JSON frames: %.0f)" % (n, j),
                        "value": round(c, 1), "unit": "B/event"})
    up_c, down = pass_air_bytes(evs, True)
    up_j, _ = pass_air_bytes(evs, False)
    n_batches = len(agent_batches(evs))
    for bits in (9600, 1200):
        per_s = bits / 10.0
        figures.append({"name": "events a 10-minute pass carries at %d bit/s (the agent's %d "
                                "batches, acks included): compact (JSON: %d)"
                                % (bits, n_batches, 600 * per_s / (up_j + down)),
                        "value": round(600 * per_s / (up_c + down)), "unit": "events"})
    figures.append({"name": "air bytes per event, the agent's batches: compact up / ack down "
                            "(JSON up: %.0f)" % up_j,
                    "value": "%.1f / %.1f" % (up_c, down), "unit": "B/event"})
    plain, deflated = workload_bytes()
    figures.append({"name": "uplink: the demo mission's workload reply, JSON (before)",
                    "value": plain, "unit": "B"})
    figures.append({"name": "uplink: the same, deflated (after: an agent that offers deflate9)",
                    "value": deflated, "unit": "B"})
    enc, dec, module, heap, batch_n = compact_speed(evs)
    figures += [
        {"name": "compact encode speed (MicroPython unix port)", "value": round(enc), "unit": "events/s"},
        {"name": "compact decode speed (MicroPython unix port)", "value": round(dec), "unit": "events/s"},
        {"name": "compact module in the heap (MicroPython unix port, .py)", "value": module,
         "unit": "B"},
        {"name": "heap one compact request allocates (the agent's batch of <= %d: JSON parsed "
                 "+ encoded, MicroPython)" % batch_n, "value": heap, "unit": "B"},
    ]
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
