"""firmware/seriallink.py + lib/serialport.py under the real MicroPython unix
port, over real pseudo-terminals, through the real `umbra bridge` process to
the real Console (uvicorn on loopback), or to serial_helpers.FakeConsole, a
recording server answering like the Console's agent endpoints, where a test
must count every request or take "the Console" down."""
import json
import os
import signal
import time

import pytest

import framing

from serial_helpers import (FakeConsole, LossyRelay, agent_process, pty_pair, start_bridge)

DRIVE = """
import json, sys, time
import seriallink

def drive(gen):
    # a stand-in for one scheduler task: resume it every millisecond
    try:
        while True:
            next(gen)
            time.sleep_ms(1)
    except StopIteration as stop:
        return stop.args[0] if stop.args else None

def out(obj):
    print(json.dumps(obj))

def make_link(path, timeout_ms, retries, compact=False):
    return seriallink.SerialLink({"agent_id": "sat-link", "api_key": "um_secret",
                                  "serial_compact": compact}, "0.1.0",
                                 port=path, timeout_ms=timeout_ms, retries=retries)
"""

LOSSY_AGENT = DRIVE + """
path, batches, per_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
link = make_link(path, 250, 10)
seq = 0
resends = 0
for b in range(batches):
    batch = [{"type": "step.completed", "agent_id": "sat-link", "seq": seq + k + 1,
              "timestamp": "2026-01-01T00:00:00Z", "job_id": "job-1", "payload": {"k": k}}
             for k in range(per_batch)]
    while True:   # the report task's rule: keep the batch until it is acknowledged
        status, reply = drive(link.call("POST", "/api/deployments/dep-1/events", batch))
        if status == 201:
            break
        resends += 1
    seq += per_batch
    out({"batch": b, "acked_seq": reply["acked_seq"], "ids": reply["ids"], "want": seq})
    if b % 5 == 0:
        status, reply = drive(link.call("POST", "/api/agent/telemetry",
                                        {"agent_id": "sat-link", "status": "executing", "seq": seq}))
        out({"telemetry": status, "ok": reply.get("ok") if reply else None})
out({"done": True, "resends": resends, "counters": link.counters()})
"""


@pytest.fixture
def console():
    c = FakeConsole().start()
    yield c
    c.stop()


@pytest.fixture
def line():
    """Two pty pairs joined by a relay: (agent path, bridge path, relay factory)."""
    ma, sa, path_a = pty_pair()
    mb, sb, path_b = pty_pair()
    relays = []

    def relay(**rates):
        r = LossyRelay(ma, mb, **rates).start()
        relays.append(r)
        return r

    yield path_a, path_b, relay
    for r in relays:
        r.stop()
    for fd in (ma, sa, mb, sb):
        os.close(fd)


def run_agent(script, tmp_path, *args, timeout=60):
    path = tmp_path / "agent.py"
    path.write_text(script)
    proc = agent_process(str(path), *args)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except Exception:
        proc.kill()
        raise
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert proc.returncode == 0, out[-3000:]
    return lines


def test_every_request_is_answered_once_and_relayed_once_over_a_lossy_line(console, line, tmp_path):
    path_a, path_b, relay = line
    faults = relay(drop=0.1, dup=0.1, corrupt=0.1, seed=7)
    bridge = start_bridge(path_b, console.url)
    bridge.wait_for("open")
    batches, per_batch = 30, 5
    lines = run_agent(LOSSY_AGENT, tmp_path, path_a, batches, per_batch)
    code, out, counts = bridge.stop()
    assert code == 0, out

    # Each call got its own reply: the acknowledgement is for exactly its batch.
    acks = [x for x in lines if "batch" in x]
    assert [x["acked_seq"] for x in acks] == [x["want"] for x in acks]
    assert all(x["ids"] == list(range(x["want"] - per_batch + 1, x["want"] + 1)) for x in acks)
    assert all(x["telemetry"] == 200 and x["ok"] for x in lines if "telemetry" in x)
    done = lines[-1]
    assert done["done"]

    # The Console saw each event once: no loss, and no duplicate beyond the
    # batches the agent itself sent again after giving up (none expected).
    total = batches * per_batch
    assert sorted(seq for _, seq in console.stored) == list(range(1, total + 1))
    assert done["resends"] == 0
    assert console.received_events == total
    event_posts = console.paths("/api/deployments/")
    assert len(event_posts) == batches
    assert len(console.paths("/api/agent/telemetry")) == len([x for x in lines if "telemetry" in x])

    # The faults really happened, and were absorbed where they should be.
    assert faults.injected["dropped"] and faults.injected["duplicated"] and faults.injected["corrupted"]
    assert counts["bad_frames"] > 0 and counts["replayed"] > 0
    assert done["counters"]["retried"] > 0 and done["counters"]["bad_frames"] > 0
    assert counts["relayed"] == len(console.requests)
    # every relayed request carried the hello's credentials
    assert {(r[2].get("X-Agent-ID"), r[2].get("X-API-Key")) for r in console.requests} == \
        {("sat-link", "um_secret")}


NO_ANSWER_AGENT = DRIVE + """
import clock, scheduler
path = sys.argv[1]
link = make_link(path, 200, 2)
sched = scheduler.Scheduler(clock.RealClock())
state = {"ticks": 0, "result": None}

def ticker():
    while state["result"] is None:
        state["ticks"] += 1
        yield scheduler.sleep_ms(10)

def caller():
    state["result"] = yield from link.call("POST", "/api/agent/telemetry", {"status": "idle"})

sched.spawn("ticker", ticker)
sched.spawn("caller", caller)
sched.run()
out({"result": list(state["result"]), "ticks": state["ticks"], "counters": link.counters()})
"""


def test_waiting_for_a_reply_yields_to_the_scheduler_and_retries_with_the_same_id(tmp_path):
    master, slave, path = pty_pair()
    try:
        lines = run_agent(NO_ANSWER_AGENT, tmp_path, path)
        sent = os.read(master, 65536)
    finally:
        os.close(master)
        os.close(slave)
    out = lines[-1]
    assert out["result"] == [None, "no reply after 3 tries"]
    # 3 tries x 200 ms of waiting, polled without blocking: the 10 ms ticker kept running
    assert out["ticks"] >= 30
    assert out["counters"]["timeouts"] == 3 and out["counters"]["retried"] == 2
    # nobody answered the hello: the same hello frame (same id) went out three times
    frames = [framing.decode(f) for f in sent.split(b"\x00") if f]
    assert len(frames) == 3 and len(set(frames)) == 1
    hello = json.loads(frames[0])
    assert hello["m"] == "HELLO" and hello["i"] == 1
    assert hello["b"]["agent_id"] == "sat-link" and hello["b"]["api_key"] == "um_secret"


STEPPED_AGENT = DRIVE + """
path = sys.argv[1]
link = make_link(path, 300, 4)
for step in range(3):
    sys.stdin.readline()          # the test changes the ground side in between
    started = time.ticks_ms()
    status, reply = drive(link.call("POST", "/api/echo", {"step": step}))
    out({"step": step, "status": status, "reply": reply,
         "ms": time.ticks_diff(time.ticks_ms(), started), "counters": link.counters()})
"""


def test_console_down_is_link_down_at_once_and_a_restarted_bridge_gets_a_new_hello(
        console, line, tmp_path):
    path_a, path_b, relay = line
    relay()
    script = tmp_path / "agent.py"
    script.write_text(STEPPED_AGENT)
    agent = agent_process(str(script), path_a)
    bridge = start_bridge(path_b, console.url)
    port = int(console.url.rsplit(":", 1)[1])
    back = None
    try:
        bridge.wait_for("open")

        def step():
            agent.stdin.write("go\n")
            agent.stdin.flush()
            return json.loads(agent.stdout.readline())

        first = step()
        assert first["status"] == 200 and first["reply"]["echo"] == {"step": 0}

        console.stop()
        down = step()
        assert down["status"] is None and down["reply"].startswith("bridge: console unreachable")
        assert down["counters"]["retried"] == first["counters"]["retried"]   # not worth a retry

        back = FakeConsole(port).start()
        code, out, counts = bridge.stop()
        assert code == 0 and counts["http_errors"] == 1 and counts["sessions"] == 1
        bridge = start_bridge(path_b, console.url)
        bridge.wait_for("open")
        again = step()
        assert again["status"] == 200 and again["reply"] == {
            "echo": {"step": 2}, "agent": "sat-link", "key": "um_secret"}
        assert again["counters"]["hellos"] == 2      # "no session" -> hello -> the request
        assert agent.wait(10) == 0
    finally:
        code, out, counts = bridge.stop()
        if agent.poll() is None:
            agent.kill()
        if back:
            back.stop()
    assert counts["no_session"] == 1 and counts["relayed"] == 1
    assert len(back.requests) == 1


REAL_CONSOLE_AGENT = DRIVE + """
path, job_file = sys.argv[1], sys.argv[2]
with open(job_file) as f:
    job = json.load(f)
link = seriallink.SerialLink({"agent_id": job["agent_id"], "api_key": job["key"]}, "0.1.0",
                             port=path, timeout_ms=400, retries=10)
def until_ok(method, path, body=None):
    while True:
        status, reply = drive(link.call(method, path, body))
        if status is not None:
            return status, reply
status, _ = until_ok("POST", "/api/agent/register", {"agent_id": job["agent_id"],
                     "satellite_id": job["satellite_id"], "agent_version": "0.1.0"})
out({"register": status})
status, spec = until_ok("GET", "/api/agent/workloads")
out({"poll": status, "deployment_id": spec.get("deployment_id") if spec else None})
events = job["events"]
for k in range(0, len(events), 4):
    status, reply = until_ok("POST", "/api/deployments/%s/events" % job["dep"], events[k:k + 4])
    out({"status": status, "acked_seq": reply.get("acked_seq"), "want": min(k + 4, len(events))})
out({"done": True, "counters": link.counters()})
"""


def live_deployment(db, name, steps):
    """A satellite, a dispatched-to-be live deployment of a small job, and an
    agent key: (headers, deployment id, predicted events)."""
    from tools.console import auth, catalog, deployments, planning
    catalog.add(db, name, name, elements={"altitude_km": 500, "inclination_deg": 97.4})
    job = {"name": name, "steps": [{"id": "s%d" % i, "compute_s": 60 * (i + 1), "output_mb": 1}
                                   for i in range(steps)]}
    plan = planning.make_plan(catalog.get(db, name), job, None, 1772884800)
    deployments.save_plan(db, plan)
    dep = deployments.create(db, plan, "live", 1)
    key = auth.create_key(db, "agent", "agent-" + name, rate_limited=False,
                          satellite_id=name)["key"]
    return {"X-API-Key": key, "X-Agent-ID": "agent-" + name}, dep, plan["events"]


def test_events_reach_the_real_console_exactly_once_over_a_lossy_line(line, tmp_path):
    from tools.console import deployments
    from tools.console.server import serve_in_thread
    path_a, path_b, relay = line
    faults = relay(drop=0.1, dup=0.1, corrupt=0.1, seed=11)
    console = serve_in_thread(str(tmp_path / "console.db"))
    try:
        headers, dep, predicted = live_deployment(console.db, "serial-sat", steps=3)
        events = [dict(e, seq=i + 1) for i, e in enumerate(predicted)]
        job = tmp_path / "job.json"
        job.write_text(json.dumps({"agent_id": headers["X-Agent-ID"], "key": headers["X-API-Key"],
                                   "satellite_id": "serial-sat", "dep": dep, "events": events}))
        bridge = start_bridge(path_b, console.url)
        bridge.wait_for("open")
        lines = run_agent(REAL_CONSOLE_AGENT, tmp_path, path_a, str(job))
        code, out, counts = bridge.stop()
        assert code == 0, out
        assert lines[0] == {"register": 201}
        assert lines[1] == {"poll": 200, "deployment_id": dep}
        acks = [x for x in lines if "acked_seq" in x]
        assert [x["status"] for x in acks] == [201] * len(acks)
        assert [x["acked_seq"] for x in acks] == [x["want"] for x in acks]
        stored = [e["seq"] for _, e in deployments.list_events(console.db, dep)]
        assert stored == list(range(1, len(events) + 1))
        assert counts["relayed"] == 2 + len(acks)          # register, poll, the batches: once each
        assert counts["replayed"] > 0 and counts["bad_frames"] > 0
        assert faults.injected["dropped"] and faults.injected["corrupted"]
    finally:
        console.stop()


def _node_over_bridge(node, path_b, url):
    """Run the node to its end with a bridge on the line's other end: the
    node's (exit code, summary, output) and the bridge's counts."""
    bridge = start_bridge(path_b, url)
    bridge.wait_for("open")
    try:
        code, summary, out = node.run(timeout=150)
    finally:
        _, _, counts = bridge.stop()
    return code, summary, out, counts


@pytest.mark.parametrize("compact", [False, True], ids=["json", "compact"])
def test_the_simulated_node_runs_the_standard_pipeline_over_the_serial_bridge(
        line, tmp_path, compact):
    """sim/node.py with `transport: serial` (its link by config, as boot.py
    picks it): the standard pipeline through the real bridge to the real
    Console, every event once; the exit summary has no HTTP-only field. With
    `serial_compact` the agent offers the compact encoding (firmware/compact.py)
    and deflated replies at hello, the bridge takes both, expands every
    request to the JSON the Console validates and deflates long replies: the
    same job, every event once, fewer bytes both ways."""
    from tools.scenario import Ground, Node, load_job
    path_a, path_b, relay = line
    wire = relay()  # a clean line
    ground = Ground(tmp_path)
    try:
        dep = ground.deploy(load_job("standard-pipeline.json"))
        node = Node(ground, tmp_path, cfg={"transport": "serial", "serial_port": path_a,
                                           "serial_compact": compact})
        code, summary, out, counts = _node_over_bridge(node, path_b, ground.url)
        assert code == 0, out[-3000:]
        assert ground.status(dep) == "completed"
        assert summary["link_error"] is None and summary["reboots"] == 0
        seqs = ground.all_seqs(node.agent_id)
        assert seqs == list(range(1, len(seqs) + 1)) and seqs[-1] == summary["seq"]
        assert counts["hellos"] == 1 and counts["bad_frames"] == 0, counts
        assert counts["bad_requests"] == 0 and counts["compact_sessions"] == int(compact), counts
        # the workload (and every reply over 512 B) came down deflated to the compact agent
        assert (counts["deflated"] > 0) == compact, counts
        kinds = [e["type"] for e in ground.events(dep)]
        assert kinds[0] == "job.accepted" and kinds[-1] == "job.completed"
        print("\nserial %s: %d events in %d frames" % ("compact" if compact else "json",
                                                     len(seqs), wire.injected["frames"]))
    finally:
        ground.close()


def contacts(tle_path, start, hours=12):
    """The ground contacts the node's world has (sim/orbitscan.py, the
    stations and elevation mask sim/node.py uses): [(start, end)] epoch s."""
    import models
    import orbit
    import orbitio
    import orbitscan
    import stations
    import timeutil
    with open(tle_path) as f:
        el = orbitio.read_tle_text(f.read())
    t0 = timeutil.parse_iso(start)
    wins = orbitscan.find_windows(orbit.Orbit(el), t0, t0 + hours * 3600,
                                  stations.default_stations(), models.MIN_ELEVATION_DEG)
    return [(w["start"], w["end"]) for w in wins if w["kind"] == "contact"]


def landed_per_contact(ground, agent_id, windows, end):
    """{contact number (1 = the first after the start): events the Console
    acknowledged in it}, as the agent's telemetry in the Console tells it: a
    report made at t says seq (events made) and outbox_depth (not yet
    acknowledged); acknowledgements come only in contact, so the reports made
    before the next contact starts say what the contacts so far carried. The
    contact the run ended in (`end`, the node's last simulated time) carried
    the rest."""
    import timeutil
    rows = ground.db.query("SELECT data FROM telemetry WHERE agent_id = ?", (agent_id,))
    reports = [json.loads(r["data"]) for r in rows]
    acked_at = [(timeutil.parse_iso(d["timestamp"]), d["seq"] - d["outbox_depth"]) for d in reports]
    total = len(ground.all_seqs(agent_id))
    landed, before = {}, 0
    for k, (a, b) in enumerate(windows):
        nxt = windows[k + 1][0] if k + 1 < len(windows) else float("inf")
        last = a <= end < nxt
        acked = total if last else max([n for t, n in acked_at if t < nxt] or [0])
        if acked > before:
            landed[k + 1] = acked - before
        before = acked
        if last:
            break
    return landed, [timeutil.parse_iso(d["timestamp"]) for d in reports]


# A long survey: a checkpoint every 10 s for hours, after the first contact
# and before the second, so ~900 events wait on board for contact 2 (their
# JSON ~230 KB: a bigger outbox than the default's 96 KiB, which would pause
# the step, docs/recovery.md "A full outbox").
SURVEY = {"name": "Long survey", "steps": [
    {"id": "survey", "name": "Survey with checkpoints", "location": "onboard",
     "compute_s": 9000, "checkpoint_interval_s": 10, "power_w": 2, "output_mb": 1,
     "depends_on": []}], "policy": {"objective": "balanced", "deadline_orbits": 8}}


def fly_over_radio(line_paths, tmp_path, job, bps, cfg=None):
    """One job over the node's radio (bus radio_bps, sim/radio.py) in
    simulated time, the agent speaking the compact encoding, through the real
    bridge to the real Console: the events per contact, the reports' times,
    the job's events, the bridge's counters."""
    from tools.scenario import START, Ground, Node
    from tools.timefmt import parse
    path_a, path_b = line_paths
    ground = Ground(tmp_path)
    try:
        dep = ground.deploy(job)
        node = Node(ground, tmp_path, bus={"radio_bps": bps},
                    cfg=dict({"transport": "serial", "serial_port": path_a,
                              "serial_compact": True, "serial_timeout_ms": 20000}, **(cfg or {})))
        code, summary, out, counts = _node_over_bridge(node, path_b, ground.url)
        assert code == 0, out[-3000:]
        assert ground.status(dep) == "completed", out[-3000:]
        assert summary["reboots"] == 0 and summary["outbox"] == 0, out[-3000:]
        seqs = ground.all_seqs(node.agent_id)   # every event once
        assert seqs == list(range(1, len(seqs) + 1)) and seqs[-1] == summary["seq"]
        assert counts["compact_sessions"] >= 1 and counts["deflated"] >= 1, counts
        assert counts["bad_requests"] == 0, counts
        # the workload came down once: a poll while the job's events still drain
        # says it holds the job (?holding=), and the Console sends it no more
        assert counts["workloads"] == 1, counts
        landed, reported = landed_per_contact(ground, node.agent_id,
                                              contacts(ground.tle_path, START),
                                              parse(summary["sim_time"]))
        assert sum(landed.values()) == len(seqs)
        return landed, reported, ground.events(dep)
    finally:
        ground.close()


def test_the_demo_mission_completes_over_a_slow_radio_in_simulated_time(line, tmp_path):
    """The spacecraft's radio carries so many bits a second each way, in
    simulated time; the agent speaks the compact encoding over it, the bridge
    expands it for the real Console. The demo mission completes, every event
    once, at 9,600 and at 1,200 bit/s. Its stream is small (49 events, ~2.4 KB
    compact): at 1,200 too each contact carries all that waits, so its events
    land in the same contacts at both rates (what spreads is shown by the
    survey below); at 1,200 the workload (over 1 KB deflated) takes the air
    at least 7 s longer to come down, so the job starts later."""
    from tools.scenario import load_job, types
    from tools.timefmt import parse
    path_a, path_b, relay = line
    relay()
    accepted, landed = {}, {}
    for bps in (9600, 1200):
        landed[bps], _, evs = fly_over_radio((path_a, path_b), tmp_path / str(bps),
                                             load_job("demo-mission.json"), bps)
        kinds = types(evs)
        assert kinds.count("job.accepted") == 1 and kinds.count("job.completed") == 1
        accepted[bps] = parse([e for e in evs if e["type"] == "job.accepted"][0]["timestamp"])
    assert sorted(landed[1200]) == sorted(landed[9600]) == [1, 2], landed
    assert accepted[1200] - accepted[9600] >= 1000 * 10 * (1 / 1200 - 1 / 9600), accepted


def test_at_1200_bit_s_a_long_backlog_spreads_over_more_contacts(line, tmp_path):
    """~900 events made between the first and the second contact: at 9,600
    bit/s the second contact carries them all; at 1,200 it cannot and the
    rest come down in the contacts after, every event once,
    the job completed. Telemetry shares the line: a report is made and sent
    in every contact the drain fills, the backlog does not keep it off the
    air for a pass."""
    path_a, path_b, relay = line
    relay()
    landed, reported = {}, {}
    for bps in (9600, 1200):
        landed[bps], reported[bps], _ = fly_over_radio(
            (path_a, path_b), tmp_path / str(bps), SURVEY, bps, cfg={"outbox_bytes": 524288})
    backlog = sum(landed[9600].values()) - landed[9600][1]
    assert backlog > 800, landed
    assert sorted(landed[9600]) == [1, 2], landed
    # contact 2 is 370 s: 1,200 bit/s carries ~44 KB in it (~800 compact events and their
    # acks alone; ~700 beside the telemetry and the polls). The polls say they hold the
    # ended job while its events drain: were the workload sent again at every poll
    # (714 B each 10 s, ~60 % of the line), ~450 would land.
    assert len(landed[1200]) >= 3 and 600 < landed[1200][2] < backlog, landed
    from tools.scenario import START
    windows = contacts(str(tmp_path / "1200" / "iss.tle"), START)
    for k in sorted(landed[1200])[1:-1]:   # the contacts the drain filled from start to end
        a, b = windows[k - 1]
        assert any(a <= t <= b for t in reported[1200]), (k, landed)
    print("\nevents per contact: 9,600 bit/s %s, 1,200 bit/s %s" % (landed[9600], landed[1200]))


FRAGMENTED_AGENT = DRIVE + """
import gc, hashlib
path, hole = sys.argv[1], int(sys.argv[3])
link = make_link(path, 1000, 6, sys.argv[2] == "compact")

def largest():
    # the largest block the heap can give now, to 64 bytes (a probe that fails
    # allocates nothing; one that succeeds is freed at once)
    lo, hi = 0, 1 << 18
    while hi - lo > 64:
        mid = (lo + hi) // 2
        try:
            b = bytearray(mid)
            b = None
            lo = mid
        except MemoryError:
            hi = mid
    return lo

def fragment(hole, pin=96):
    # A heap hours old: free holes of `hole` bytes, each after a live pin. The
    # heap filled with blocks of hole + pin, every gap left with small blocks;
    # then each block freed in turn and its room taken again by a hole and a
    # pin (the only room free then: first fit puts both there); at last the
    # holes freed. Locals, not globals: a new global could grow the module's dict.
    gc.collect()
    n = gc.mem_free() // (hole + pin) + 4
    blocks, pins = [None] * n, [None] * (2 * n + 256)
    k = j = 0
    try:
        while k < n:
            blocks[k] = bytearray(hole + pin)
            k += 1
    except MemoryError:
        pass
    for size in (1024, 256, 64, 16, 0, 1024, 256, 64, 16):
        if not size:
            gc.collect()   # the halves of the tries that failed: fill those too
            continue
        try:
            while j < len(pins) - n:
                pins[j] = bytearray(size)
                j += 1
        except MemoryError:
            pass
    for i in range(k):
        blocks[i] = None
        blocks[i] = bytearray(hole)
        pins[j] = bytearray(pin - 32)   # its header and its bytes: 96 B
        j += 1
    blocks = None
    gc.collect()
    return pins

pins = fragment(hole)
gc.threshold(16384)   # as boot.py sets it on a board (collect before the heap is spent)
room, free = largest(), gc.mem_free()
status, reply = drive(link.call("GET", "/api/workload"))
pins = None
gc.collect()
digest = None
if status == 200:   # step by step: the reply's objects lie all over the heap now
    h = hashlib.sha256(reply["deployment_id"].encode())
    for step in reply["steps"]:
        for key in sorted(step):   # a dict's order is the port's own
            h.update((key + json.dumps(step[key])).encode())
    digest = "".join("%02x" % b for b in h.digest())
out({"status": status, "digest": digest, "counters": link.counters(),
     "frame_buffer": len(link.deframer.buf), "largest_free": room, "free": free})
"""


HOLE = 3072   # bytes: the largest free block the fragmented heap has


@pytest.mark.parametrize("enc", ["json", "compact"])
def test_a_12k_workload_arrives_in_pieces_of_2k_and_is_parsed_in_a_fragmented_heap(
        console, line, tmp_path, enc):
    """No frame is held whole: the bridge sends a reply longer than the
    agent's piece size (2 KiB) as pieces, the agent decodes each where it
    arrived and parses the workload from the pieces, so it needs no block
    the size of the workload: the heap's largest free block is 3 KB (in a
    heap hours old there is none larger), the ~13.8 KB workload joined
    whole before parsing fails there. A lost or corrupted piece costs one
    retry, which the bridge answers from its cache. An agent that offered
    compact and deflate at hello (the unix port has `deflate`) gets the
    workload deflated, fewer pieces, and inflates it as it parses it, in the
    same heap. The agent collects garbage as boot.py has it on a board
    (gc.threshold 16 KiB): with no threshold (a collection only once the
    heap is spent) the parse's garbage lies in every hole and the plain
    path's list growth (1 KB) finds none whole; the deflated path's fewer
    pieces leave it room even then."""
    import hashlib
    from serial_helpers import WORKLOAD_12K
    path_a, path_b, relay = line
    faults = relay(drop=0.05, corrupt=0.05, seed=3)
    bridge = start_bridge(path_b, console.url)
    bridge.wait_for("open")
    lines = run_agent(FRAGMENTED_AGENT, tmp_path, path_a, enc, HOLE)
    code, out, counts = bridge.stop()
    assert code == 0, out
    got = lines[-1]
    print("\n%s: largest free block %d B, %d B free" % (enc, got["largest_free"], got["free"]))
    size = len(json.dumps(WORKLOAD_12K, separators=(",", ":")))
    assert size > 12000 and got["largest_free"] <= HOLE < size / 4, got   # no room for it whole
    assert counts["compact_sessions"] == (enc == "compact"), counts
    assert (counts["deflated"] > 0) == (enc == "compact"), counts
    want = hashlib.sha256(WORKLOAD_12K["deployment_id"].encode())
    for step in WORKLOAD_12K["steps"]:   # CPython's dumps spells it as MicroPython's does
        for key in sorted(step):
            want.update((key + json.dumps(step[key])).encode())
    assert got["status"] == 200, got
    assert got["digest"] == want.hexdigest()
    assert got["frame_buffer"] <= 2200                 # the agent's one frame buffer
    if enc == "json":
        assert got["counters"]["frames_in"] >= size // 2048 + 1
    assert counts["relayed"] == 1                      # retries were answered from the cache
