"""One clock for the fleet (docs/fleet.md "One clock for the fleet"): the ISL
hub (tools/islhub.py, CPython) and a node's port to it (sim/islport.py) under
the real MicroPython unix port over real loopback sockets; and a FleetRun
whose nodes run their unchanged agents against a real Console, every clock
held by the hub's lockstep.

The transport is checked with small MicroPython programs that drive the
port on a SimClock as a node's loop would (no firmware, no test-only
flag in it): what they see is what an agent sees through `ag.isl`."""
import json
import math
import os
import subprocess
import threading
import time

import pytest

from tools import ROOT, upy
from tools.fleetrun import FleetRun
from tools.islhub import Hub, split_faults
from tools.scenario import Ground
from clock import SimClock
import contactplan
import fleet
import fleetfile
import islnet
import timeutil

FLEETS = os.path.join(ROOT, "examples", "fleets")
TRAIN = ["99901", "99902", "99903", "99904"]

# A node's loop in miniature: acts on the port at its own simulated time.
DRIVER = """
import json, sys, time
from clock import SimClock
import islstart
cfg = json.load(open(sys.argv[1]))
clock = SimClock(start_epoch=cfg["epoch"], start_ms=cfg.get("t0", 0))
p = islstart.connect(cfg["hub"], cfg["sat"], clock)
out = {"joined_at": clock.now_ms(), "L": p.lookahead_ms, "acts": [], "woken": []}
p.on_arrival = lambda: out["woken"].append(clock.now_ms())
ids = []

def show(data):
    return data if isinstance(data, str) else "bytes:" + data.decode()

def notify():                # as the node's loop does after an advance
    if p.arrived:
        p.arrived = False
        if p.on_arrival is not None:
            p.on_arrival()

def take(got):
    m = p.recv()
    while m is not None:
        got.append([clock.now_ms(), m[0], show(m[1])])
        m = p.recv()

for act in cfg["acts"]:
    op = act[0]
    if op == "to":          # on to act[1], taking what arrives on the way
        got = []
        while clock.now_ms() < act[1] and p.stopped is None:
            p.advance(act[1])
            notify()
            take(got)
        out["acts"].append(got)
    elif op == "wait":      # towards act[1], until the first arrival
        got = []
        while clock.now_ms() < act[1] and not got and p.stopped is None:
            p.advance(act[1])
            notify()
            take(got)
        out["acts"].append([clock.now_ms(), got])
    elif op == "pace":      # on to act[1] in steps of act[2] ms, act[3] wall ms apart
        while clock.now_ms() < act[1] and p.stopped is None:
            p.advance(min(act[1], clock.now_ms() + act[2]))
            time.sleep_ms(act[3])
        out["acts"].append(clock.now_ms())
    elif op == "send":
        data = act[2] if isinstance(act[2], str) else act[2][0] * act[2][1]   # [char, count]
        data = data if len(act) < 4 else data.encode()
        mid = p.send(act[1], data)
        ids.append(mid)
        out["acts"].append([clock.now_ms(), mid])
    elif op == "status":
        out["acts"].append([clock.now_ms(), p.status(ids[act[1]])])
    elif op == "link":
        out["acts"].append(p.link(act[1]))
    elif op == "nb":
        out["acts"].append(p.neighbours())
out["end"] = clock.now_ms()
out["stopped"] = p.stopped
islstart.bye(p)
print(json.dumps(out))
"""


def _plan(name, hours):
    with open(os.path.join(FLEETS, name)) as f:
        doc = json.load(f)
    sats = fleetfile.load(doc)
    t0 = timeutil.parse_iso(doc["epoch"])
    return contactplan.compute([(s["satellite_id"], s["orbit"]) for s in sats], t0, t0 + hours * 3600), t0


@pytest.fixture(scope="module")
def train():
    return _plan("train-4.json", 1)


def _driver_file(tmp_path):
    path = tmp_path / "driver.py"
    path.write_text(DRIVER)
    return str(path)


def _spawn(tmp_path, hub, t0, sat, acts, start_ms=0):
    cfg = {"hub": hub.address, "sat": sat, "epoch": t0, "acts": acts, "t0": start_ms}
    path = tmp_path / ("cfg-%s-%d.json" % (sat, time.monotonic_ns()))
    path.write_text(json.dumps(cfg))
    argv, env = upy.command(_driver_file(tmp_path), heap="4M", args=[str(path)])
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run_all(tmp_path, hub, t0, scripts, timeout=60):
    procs = dict((sat, _spawn(tmp_path, hub, t0, sat, acts)) for sat, acts in scripts.items())
    out = {}
    for sat, p in procs.items():
        text, _ = p.communicate(timeout=timeout)
        assert p.returncode == 0, (sat, text)
        out[sat] = json.loads(text.strip().splitlines()[-1])
    return out


def _delay_ms(plan, t0, src, dst, size, at_ms):
    """The independent expectation: the network's own model of one message sent at at_ms."""
    net = islnet.Network(plan, SimClock(start_epoch=t0), t0)
    ready, outcome = net.transmit(src, dst, size, t0 + at_ms / 1000.0)
    return int(math.ceil((ready - t0) * 1000.0 - 1e-6)), outcome


def test_a_message_sent_at_t_arrives_at_t_plus_its_delay_on_the_receivers_clock(train, tmp_path):
    plan, t0 = train
    hub = Hub(plan, t0, TRAIN[:3], grace_s=5, log_path=str(tmp_path / "hub.log")).start()
    big = "x" * 200000          # 200 kB over two hops: its transmission counts too
    big_act = ["x", 200000]
    try:
        out = _run_all(tmp_path, hub, t0, {
            # 99901 sends at 1 s to its neighbour and waits for the answer; then through
            # 99902 to 99903 (two hops)
            "99901": [["to", 1000], ["send", "99902", "hello"], ["status", 0], ["wait", 60000],
                      ["status", 0], ["send", "99903", big_act], ["status", 1], ["to", 3000], ["status", 1]],
            # 99902 naps for a minute: the arrival wakes it; it answers (bytes) at once
            "99902": [["wait", 60000], ["send", "99901", "back", "bytes"], ["to", 3000]],
            # 99903 naps too, woken by the big message
            "99903": [["wait", 60000], ["to", 3000]],
        })
    finally:
        hub.stop()
    a, b, c = out["99901"]["acts"], out["99902"], out["99903"]
    hello_at, ok = _delay_ms(plan, t0, "99901", "99902", 5, 1000)
    assert ok == "delivered" and 1000 + 13 <= hello_at <= 1000 + 16      # ~3586 km: ~14 ms
    assert a[1] == [1000, 1] and a[2] == [1000, "sending"]
    # the receiver, napping for a minute, was woken at exactly t + delay and got it then
    assert b["acts"][0] == [hello_at, [[hello_at, "99901", "hello"]]]
    assert b["woken"][0] == hello_at
    # its answer, sent at that moment, reached the sender at its own t + delay
    back_at, _ = _delay_ms(plan, t0, "99902", "99901", 4, hello_at)
    assert a[3] == [back_at, [[back_at, "99902", "bytes:back"]]]
    assert a[4] == [back_at, "delivered"]
    big_at, ok = _delay_ms(plan, t0, "99901", "99903", len(big), back_at)
    assert ok == "delivered" and big_at - back_at > 2 * 13 + 20        # two hops, each 1.6 Mb at ~50 Mbps
    assert a[5][0] == back_at and a[5][1] is not None and a[6] == [back_at, "sending"] and a[8] == [3000, "delivered"]
    assert c["acts"][0][0] == big_at and c["acts"][0][1][0][:2] == [big_at, "99901"]
    assert len(c["acts"][0][1][0][2]) == len(big)
    assert c["woken"] == [big_at]

    # the lockstep as the hub's log shows it, checked on its own: nobody was let past
    # the earliest moment a message could still reach it
    _check_lockstep(str(tmp_path / "hub.log"), hub.L)


def _check_lockstep(path, L):
    """Replay the hub's log: at every release of a node to r, every other node still
    in the run was known to be at (or to wake no sooner than, or to send nothing
    before: a quiet node's word) r - L, and every message was handed over at its
    arrival time, never later on the receiver's clock, unless the receiver was
    quiet then (it goes on alone, and gets what came at its next advance).
    Returns the events and the number of messages handed over."""
    events = [json.loads(line) for line in open(path)]
    at = {}        # sat -> its lower bound: last time it reported, the wake it asked for, its word
    waiting = set()
    gone = set()
    inflight = {}  # dst -> [arrival ms]
    quiet = {}     # sat -> [(from, to)]: where it went on alone
    handed = 0
    for e in events:
        ev = e["ev"]
        if ev == "join":
            at[e["sat"]] = max(e["floor"], at.get(e["sat"], 0)) if e["sat"] in at else e["floor"]
            gone.discard(e["sat"])
        elif ev == "quiet":
            assert e["t"] <= e["to"] <= e["until"], e
            at[e["sat"]] = e["until"]
            quiet.setdefault(e["sat"], []).append((e["t"], e["to"]))
        elif ev == "adv":
            at[e["sat"]] = min([e["to"]] + [x for x in inflight.get(e["sat"], []) if x >= e["t"]])
            waiting.add(e["sat"])
        elif ev == "send":
            at[e["src"]] = e["t"]
            if e["id"] is not None and e["ok"]:
                inflight.setdefault(e["dst"], []).append(e["at"])
                if e["dst"] in waiting:
                    at[e["dst"]] = min(at[e["dst"]], e["at"])
        elif ev == "recv":
            late = [q for q in quiet.get(e["dst"], ()) if e["at"] <= q[1]]
            assert e["clock"] == e["at"] or (late and e["clock"] > e["at"]), e   # at its arrival
            inflight[e["dst"]].remove(e["at"])
            handed += 1
        elif ev == "rel":
            r = e["t"]
            for k, lb in at.items():
                if k != e["sat"] and k not in gone:
                    assert r <= lb + L, (e, k, lb)
            assert not [x for x in inflight.get(e["sat"], []) if x < r], e   # nothing left behind it
            at[e["sat"]] = r
            waiting.discard(e["sat"])
        elif ev == "gone":
            gone.add(e["sat"])
            waiting.discard(e["sat"])
    return events, handed


def test_a_partition_or_a_lost_link_makes_sends_return_none_and_a_message_in_flight_lost(train, tmp_path):
    plan, t0 = train
    faults = {"99902": [{"kind": "partition", "at_s": 10, "for_s": 60}],
              "99903": [{"kind": "isl_down", "peer": "99904", "at_s": 100, "for_s": 50}]}
    hub = Hub(plan, t0, TRAIN, faults=faults, grace_s=5).start()
    big = "y" * 1000000         # 1 MB through 99902: ~0.3 s to pass, cut at 10 s
    big_act = ["y", 1000000]
    try:
        out = _run_all(tmp_path, hub, t0, {
            "99901": [["to", 9900], ["send", "99903", big_act], ["to", 20000],
                      ["send", "99902", "x"], ["send", "99903", "x"], ["link", "99902"], ["nb"],
                      ["to", 71000], ["send", "99902", "x"], ["link", "99904"], ["status", 0],
                      ["to", 120000], ["send", "99904", "x"], ["send", "99903", "x"],
                      ["to", 151000], ["send", "99904", "x"]],
            "99902": [["to", 20000], ["nb"], ["send", "99901", "x"], ["to", 151000]],
            "99903": [["to", 151000]],
            "99904": [["to", 151000]],
        })
    finally:
        hub.stop()
    a = out["99901"]["acts"]
    lost_at, outcome = _delay_ms(plan, t0, "99901", "99903", len(big), 9900)
    assert outcome == "delivered"              # without the partition it would have arrived
    assert a[1][0] == 9900 and a[1][1] is not None
    # in the partition: no route to it or through it, no link, no neighbour
    assert a[3] == [20000, None] and a[4] == [20000, None] and a[5] is None and a[6] == []
    assert out["99902"]["acts"][1] == [] and out["99902"]["acts"][2] == [20000, None]
    # after it: the links are back, and the message cut in flight was lost, never delivered
    assert a[8][1] is not None and a[9]["hops"] == 3
    assert a[10] == [71000, "lost"]
    assert all(msg[2] != big for msg in out["99903"]["acts"][0])
    # the pair 99903-99904 down over [100 s, 150 s]: no route to 99904; 99903 still reachable
    assert a[12] == [120000, None] and a[13][1] is not None
    assert a[15][1] is not None
    assert hub.stats()["lost"] == 1 and hub.stats()["no_route"] == 4


def test_a_killed_node_does_not_stall_the_others_and_one_that_comes_back_carries_on(train, tmp_path):
    plan, t0 = train
    hub = Hub(plan, t0, TRAIN[:3], grace_s=1.0, log_path=str(tmp_path / "hub.log")).start()
    try:
        victim = _spawn(tmp_path, hub, t0, "99903", [["pace", 3600000, 1000, 20]])   # slow: killed midway
        others = dict((sat, _spawn(tmp_path, hub, t0, sat, [["pace", 600000, 1000, 0]])) for sat in TRAIN[:2])
        time.sleep(1.0)
        victim.kill()
        victim.wait()
        t_kill = time.monotonic()
        for sat, p in others.items():
            text, _ = p.communicate(timeout=60)
            assert p.returncode == 0, text
            assert json.loads(text.strip().splitlines()[-1])["end"] == 600000
        took = time.monotonic() - t_kill
        # a comeback: its clock restarts at 0 (its store said so), the others went on
        back = _spawn(tmp_path, hub, t0, "99903", [["to", 700000]])
        text, _ = back.communicate(timeout=60)
        assert back.returncode == 0, text
        came = json.loads(text.strip().splitlines()[-1])
    finally:
        hub.stop()
    assert took < 30
    events, _ = _check_lockstep(str(tmp_path / "hub.log"), hub.L)
    gone = [e for e in events if e["ev"] == "gone" and e["sat"] == "99903"]
    assert gone and gone[0]["why"] == "away"
    last = max(e["t"] for e in events if e["ev"] == "rel" and e["sat"] != "99903")
    assert last == 600000     # the others ran on to their end without it
    # it came back where its messages still reach everyone in time: no earlier
    # than the latest horizon handed out less the lookahead
    assert came["joined_at"] >= 600000 - hub.L and came["end"] == 700000


def test_bad_fleet_faults_are_refused_naming_the_satellite():
    with pytest.raises(ValueError, match="99902"):
        split_faults({"99902": [{"kind": "partition", "at_s": -1, "for_s": 5}]}, TRAIN)
    with pytest.raises(ValueError, match="99901"):
        split_faults({"99901": [{"kind": "isl_down", "peer": "99901", "at_s": 1, "for_s": 5}]}, TRAIN)
    with pytest.raises(ValueError, match="99999"):
        split_faults({"99999": [{"kind": "lost", "at_s": 1}]}, TRAIN)
    fleet_f, node_f = split_faults({"99901": [{"kind": "lost", "at_s": 5}, {"kind": "reset", "at_s": 1}]}, TRAIN)
    assert fleet_f == {"99901": [{"kind": "lost", "at_s": 5}]} and node_f == {"99901": [{"kind": "reset", "at_s": 1}]}


def test_a_fleet_of_unchanged_agents_runs_on_one_clock_and_a_lost_satellite_stops_there(tmp_path):
    with open(os.path.join(FLEETS, "train-4.json")) as f:
        world = fleet.FleetWorld(json.load(f), hours=1.0)
    ground = Ground(tmp_path)
    run = FleetRun(world, ground, tmp_path / "fleet", hub_log=True,
                   faults={"99904": [{"kind": "lost", "at_s": 1800}]})
    out = {}
    th = threading.Thread(target=lambda: out.update(run.run()))
    th.start()
    try:
        # 99902's process killed once it runs: its supervisor starts it again, it joins again
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not getattr(run.procs.get("99902"), "fed", False):
            time.sleep(0.05)
        victim = run.procs["99902"].proc
        assert victim.poll() is None, "99902 ended before it could be killed"
        victim.kill()
        th.join(timeout=300)
        assert not th.is_alive()
    finally:
        ground.close()
    report = out
    rows = dict((r["satellite_id"], r) for r in report["satellites"])
    end = timeutil.iso_utc(world.start + 3600)
    for sid in TRAIN[:3]:
        assert rows[sid]["exit"] == 4 and rows[sid]["sim_time"] == end, rows[sid]
    lost = rows["99904"]
    assert lost["exit"] == 4 and lost["lost"] and lost["restarts"] == 0
    assert lost["sim_time"] == timeutil.iso_utc(world.start + 1800)
    assert report["hub"]["error"] is None
    events, _ = _check_lockstep(report["hub_log"], report["hub"]["lookahead_ms"])
    rels = [e for e in events if e["ev"] == "rel"]
    # every node woke at its own times, held by the others (their clocks within the
    # lookahead whenever one went on), and none was woken at every other's wake
    for sid in TRAIN:
        mine = [e["t"] for e in rels if e["sat"] == sid]
        assert mine == sorted(mine) and len(mine) < len(rels) / 2
    assert max(e["t"] for e in rels if e["sat"] == "99904") == 1800000
    # the restarted node came back within the hub's grace and carried on at its own clock
    # (its world store's time and the reboot) or, if later, where the fleet last let it
    # go (the last time it told the hub: a release, a join, an ask to go on, its word,
    # a send), or where the others went on to less the lookahead (time does not go back)
    assert rows["99902"]["restarts"] == 1 and rows["99902"]["exit"] == 4
    joins = [i for i, e in enumerate(events) if e["ev"] == "join" and e["sat"] == "99902"]
    assert len(joins) == 2
    before = events[:joins[1]]
    # (alone in a pass, logged as quiet with alone: it went on to `until` at once)
    last = max(e["floor"] if e["ev"] == "join" else e["until"] if e.get("alone") else e["t"]
               for e in before
               if (e.get("sat") == "99902" and e["ev"] in ("rel", "join", "adv", "quiet"))
               or (e["ev"] == "send" and e["src"] == "99902"))
    front = max(e["h"] for e in before if e.get("sat") != "99902" and e["ev"] in ("rel", "join"))
    again = events[joins[1]]
    floor = max(again["t"], last)
    word = [e["until"] for e in before if e.get("sat") == "99902" and e["ev"] == "quiet"
            and not e.get("alone")]
    if not word or word[-1] <= floor:     # a quiet node's word holds over its reset: no skip
        floor = max(floor, front - report["hub"]["lookahead_ms"])
    assert again["t"] > 0 and again["floor"] == floor
    assert not [e for e in events if e["ev"] == "gone" and e["sat"] == "99902" and e["why"] == "away"]


class _Raw:
    """A client speaking the hub's protocol itself (tools/islhub.py's docstring), to
    check the hub's side of a quiet node's word on its own."""
    def __init__(self, hub, sat, t=0):
        import socket
        host, port = hub.address.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)))
        self.f = self.s.makefile("rb")
        self.join = self.ask({"op": "join", "sat": sat, "t": t})

    def ask(self, req):
        self.s.sendall(req.encode() if isinstance(req, str) else (json.dumps(req) + "\n").encode())
        line = self.f.readline()
        if line.startswith(b"r "):
            _, t, h = line.split()
            return {"t": int(t), "h": int(h), "m": []}
        return json.loads(line)

    def close(self):
        self.f.close()
        self.s.close()


def test_a_quiet_node_goes_on_alone_and_gets_what_came_meanwhile_in_arrival_order(train, tmp_path):
    plan, t0 = train
    hub = Hub(plan, t0, TRAIN[:2], grace_s=5, log_path=str(tmp_path / "hub.log")).start()
    try:
        a, b = _Raw(hub, "99901"), _Raw(hub, "99902")
        L = a.join["L"]
        # 99901 has no job and no station in view until 600 s: on alone, at once
        assert a.ask("q 0 600000\n") == {"t": 600000, "h": a.join["h"], "m": []}
        # its word is 99902's bound: 99902 goes on past 99901's clock (0) to 600 s + L
        assert b.ask("a 0 500000\n")["t"] == 500000
        got = b.ask({"op": "send", "t": 500000, "to": "99901", "s": "first"})
        second = b.ask({"op": "send", "t": 500000, "to": "99901", "s": "second"})
        assert got["ok"] and second["ok"] and got["at"] <= second["at"] < 600000
        # 99901 sends nothing before its word runs out
        assert "quiet satellite sends nothing" in a.ask({"op": "send", "t": 1000, "to": "99902", "s": "x"})["err"]
        # 99902 may not go further than 99901's word and the lookahead allow: it waits
        b.s.sendall(b"a 500000 700000\n")
        # at its pass 99901 asks to go on: it gets what came while it was quiet, in order
        back = a.ask({"op": "adv", "t": 600000, "to": 600000})
        assert back["t"] == 600000 and [m[3] for m in back["m"]] == ["first", "second"]
        assert [m[1] for m in back["m"]] == [got["at"], second["at"]]
        a.ask({"op": "bye", "t": 600000})
        line = b.f.readline()
        assert line.startswith(b"r 700000")
        b.ask({"op": "bye", "t": 700000})
    finally:
        hub.stop()
    events, handed = _check_lockstep(str(tmp_path / "hub.log"), hub.L)
    assert handed == 2 and L > 0


def test_a_quiet_node_that_comes_back_carries_on_at_its_own_clock(train, tmp_path):
    plan, t0 = train
    hub = Hub(plan, t0, TRAIN[:2], grace_s=5).start()
    try:
        a, b = _Raw(hub, "99901"), _Raw(hub, "99902")
        a.ask("q 0 900000\n")
        assert b.ask("a 0 800000\n")["t"] == 800000      # past 99901's clock, within its word
        a.close()                                       # its computer resets at 0 s
        time.sleep(0.3)
        again = _Raw(hub, "99901", t=0)
        # its journal still holds no job: it sends nothing before its pass, so it need not
        # skip to where the others went (a node that may send would: see the killed-node test)
        assert again.join.get("t") == 0, again.join
        again.ask({"op": "bye", "t": 0})
        b.ask({"op": "bye", "t": 800000})
    finally:
        hub.stop()


def test_a_node_alone_in_its_pass_goes_on_at_once_gets_what_came_before_its_poll_and_rejoins_as_any(train, tmp_path):
    """islhub "Alone in a pass": a node with no job asks to go to a wake before its
    poll's; it goes there without the others catching up, what was sent to it meanwhile
    comes at its next ask in arrival order, and its word ends at its clock: a reset of
    it rejoins past where the others went, less the lookahead (its reboot may poll at once)."""
    plan, t0 = train
    hub = Hub(plan, t0, TRAIN[:2], grace_s=5, log_path=str(tmp_path / "hub.log")).start()
    try:
        a, b = _Raw(hub, "99901"), _Raw(hub, "99902")
        L = a.join["L"]
        # 99901 alone to 300 s: at once, though 99902 is still at 0 s (an "a" would wait)
        assert a.ask("g 0 300000\n")["t"] == 300000
        # its base is its clock now: 99902 may go to 300 s + L, no further
        assert b.ask("a 0 1000\n")["t"] == 1000
        got = b.ask({"op": "send", "t": 1000, "to": "99901", "s": "first"})
        second = b.ask({"op": "send", "t": 1000, "to": "99901", "s": "second"})
        assert got["ok"] and second["ok"] and got["at"] < 300000
        assert b.ask("a 1000 %d\n" % (300000 + L))["t"] == 300000 + L
        b.s.sendall(b"a %d 400000\n" % (300000 + L))       # held: 99901 is at 300 s
        time.sleep(0.2)
        # its poll's wake: it asks as any node does, and first gets what came, in order
        back = a.ask("a 300000 310000\n")
        assert back["t"] == 300000 and [m[3] for m in back["m"]] == ["first", "second"]
        assert [m[1] for m in back["m"]] == [got["at"], second["at"]]
        a.close()                                     # its computer resets; its world store says 0 s
        time.sleep(0.3)
        again = _Raw(hub, "99901", t=0)
        # no word beyond its clock (a quiet node's would bring it back at 0 s): it comes
        # back where it was let go, which the others were told they may go to, less L
        assert again.join["t"] == 300000, again.join
        again.ask({"op": "bye", "t": 300000})
        assert b.f.readline().startswith(b"r 400000")  # 99902, held by it until then
        b.ask({"op": "bye", "t": 400000})
    finally:
        hub.stop()
    events, handed = _check_lockstep(str(tmp_path / "hub.log"), hub.L)
    assert handed == 2 and hub.stats()["alone"] == 1 and L > 0
