"""The ISL adapter (lib/isl.py) over the simulated network (sim/islnet.py):
delivery with the modelled latency and bandwidth, only while a route exists; a
message whose route breaks in flight is lost and the sender retries. Run under
MicroPython and CPython."""
import json
import os

import pytest

from tools import ROOT
import contactplan
import fleetfile
import timeutil

FLEETS = os.path.join(ROOT, "examples", "fleets")


def _plan(name, hours):
    with open(os.path.join(FLEETS, name)) as f:
        doc = json.load(f)
    sats = fleetfile.load(doc)
    t0 = timeutil.parse_iso(doc["epoch"])
    return contactplan.compute([(s["satellite_id"], s["orbit"]) for s in sats], t0, t0 + hours * 3600), t0


def test_a_message_arrives_after_the_modelled_time_through_the_middle_satellites(portable, tmp_path):
    plan, t0 = _plan("train-4.json", 1)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    res = portable("""
        import json
        from clock import SimClock
        import islnet
        plan = json.load(open(%r))
        clock = SimClock(start_epoch=%d)
        net = islnet.Network(plan, clock, %d)
        a, d = net.port("99901"), net.port("99904")
        out = {"link": a.link("99904"), "neighbours": a.neighbours()}
        data = "x" * 1000000                       # 1 MB: 8 Mb over three ~53 Mbps hops
        mid = a.send("99904", data)
        ms = net.next_delivery_ms()
        out["due_ms"] = ms
        clock.advance_to(ms - 1)
        out["early"] = [d.recv() is None, a.status(mid)]
        clock.advance_to(ms)
        got = d.recv()
        out["got"] = [got[0], len(got[1]), a.status(mid)]
        out["stats"] = net.stats()
        print(json.dumps(out))
    """ % (str(path), t0, t0))
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.json_lines[-1]
    link = out["link"]
    assert link["hops"] == 3 and 0.5 < link["quality"] < 0.6
    assert out["neighbours"] == ["99902"]
    # three hops, each 8 Mb at the link's bandwidth plus its latency (~14 ms)
    expect_ms = 3 * (8 / link["bandwidth_mbps"]) * 1000 + link["latency_ms"]
    assert out["due_ms"] == pytest.approx(expect_ms, abs=5)
    assert out["early"] == [True, "sending"]
    assert out["got"] == ["99901", 1000000, "delivered"]
    assert out["stats"]["delivered"] == 1 and out["stats"]["lost"] == 0


def test_a_message_whose_link_closes_in_flight_is_lost_and_the_sender_retries(portable, tmp_path):
    plan, t0 = _plan("shell-20.json", 6)
    wins = contactplan.pair_windows(plan, "99801", "99819")   # across the planes: they come and go
    two = {"satellites": ["99801", "99819"], "windows": wins}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(two))
    first, second = wins[0], wins[1]
    start = int(first["end"]) - 1
    send_ms = int((first["end"] - 0.05 - start) * 1000)   # 50 ms before the link closes
    res = portable("""
        import json
        from clock import SimClock
        import isl, islnet
        plan = json.load(open(%r))
        clock = SimClock(start_epoch=%d)
        net = islnet.Network(plan, clock, %d)
        a, b = net.port("99801"), net.port("99819")
        sender = isl.Sender(a, clock, retry_ms=30000)
        clock.advance_to(%d)
        sender.send("99819", "y" * 500000)      # 4 Mb: ~0.1 s at the window's end
        got = []
        t = clock.now_ms()
        while t < %d and sender.pending():
            t += 1000
            clock.advance_to(t)
            sender.tick()
            m = b.recv()
            if m is not None:
                got.append([m[0], len(m[1]), clock.now_ms()])
        print(json.dumps({"got": got, "stats": net.stats(), "retries": sender.retries,
                          "delivered": sender.delivered, "pending": sender.pending()}))
    """ % (str(path), start, start, send_ms, int((second["end"] - start) * 1000)), timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.json_lines[-1]
    st = out["stats"]
    assert st["lost"] == 1                  # the first try: the link closed under it
    assert st["no_route"] >= 1              # tries while the two were out of sight
    assert out["delivered"] == 1 and out["pending"] == 0 and out["retries"] >= 2
    assert len(out["got"]) == 1 and out["got"][0][:2] == ["99801", 500000]
    arrived = start + out["got"][0][2] / 1000
    assert second["start"] < arrived < second["end"]   # in the next window, not before


def test_no_route_means_not_sent():
    import islnet
    from clock import SimClock
    plan, t0 = _plan("train-4.json", 1)
    plan = {"satellites": plan["satellites"], "windows": [w for w in plan["windows"] if w["a"] != "99902"]}
    net = islnet.Network(plan, SimClock(start_epoch=int(t0)), t0)
    a = net.port("99901")
    assert a.send("99904", b"hello") is None
    assert a.link("99904") is None
    assert net.stats()["no_route"] == 1
    with pytest.raises(ValueError, match="unknown satellite"):
        net.port("nope")
