"""Routing over the contact plan (docs/fleet.md "Routing"): the router's earliest
arrival equals that of a time-expanded graph search written here with networkx;
the train of four routes end to end through its middle satellites; a waiting
route beats the route of the moment; one query runs on the board."""
import json
import os
import random

import networkx as nx
import numpy as np
import pytest

from tools import ROOT
import contactplan
import fleetfile
import islroute
import orbit
import orbitio
import timeutil

FLEETS = os.path.join(ROOT, "examples", "fleets")


def _fleet(name, hours):
    with open(os.path.join(FLEETS, name)) as f:
        doc = json.load(f)
    sats = fleetfile.load(doc)
    t0 = timeutil.parse_iso(doc["epoch"])
    plan = contactplan.compute([(s["satellite_id"], s["orbit"]) for s in sats], t0, t0 + hours * 3600)
    return plan, t0


def _random_fleet(rnd, n):
    """n satellites in a loose cluster of planes: links open and close often."""
    inc = rnd.uniform(45, 98)
    raan = rnd.uniform(0, 360)
    sats = []
    for k in range(n):
        el = orbitio.keplerian_elements({
            "altitude_km": rnd.uniform(450, 750), "inclination_deg": inc + rnd.uniform(-8, 8),
            "eccentricity": rnd.uniform(0, 0.01), "raan_deg": raan + rnd.uniform(-15, 15),
            "arg_perigee_deg": rnd.uniform(0, 360), "mean_anomaly_deg": rnd.uniform(0, 60),
            "epoch": 1772928000})
        sats.append(("s%d" % k, orbit.Orbit(el)))
    return sats


# --- an independent computation: the time-expanded graph ----------------------------

def _send(w, ready, data_mb):
    """Arrival over window w for data ready at `ready` (None: the window cannot carry
    it), from the window's cumulative capacity rather than segment by segment."""
    if ready >= w["end"] and data_mb > 0:
        return None
    ts = np.array(w["t"])
    if len(ts) < 2:
        return None if data_mb > 0 else max(ready, w["start"]) + w["latency_ms"][0] / 1000.0
    bw = np.array(w["bandwidth_mbps"])
    cum = np.concatenate([[0.0], np.cumsum(bw * np.diff(ts))])   # Mb sent from the window's start
    depart = max(ready, w["start"])
    m = min(int(np.searchsorted(ts, depart, side="right")) - 1, len(bw) - 1)
    need = cum[m] + bw[m] * (depart - ts[m]) + data_mb * 8.0
    if need > cum[-1] + 1e-9:
        return None
    k = min(int(np.searchsorted(cum, need, side="left")), len(cum) - 1)   # sending ends in segment k-1
    k = max(k, m + 1)
    sent = ts[k - 1] + (need - cum[k - 1]) / bw[k - 1]
    sent = max(sent, depart)
    return sent + float(np.interp(sent, ts, w["latency_ms"])) / 1000.0


def _earliest_by_time_expanded_graph(plan, src, dst, t0, data_mb):
    """Nodes (satellite, time): every window start, the query, and every arrival;
    edges: a transmission in a window open at the node's time, and waiting at a
    satellite to its next node. A chain of transmissions with no wait between them
    visits each satellite once at most in an optimal route, so chains stop at
    n - 1 hops (a wait at a window start begins a new chain)."""
    by_sat = {s: [] for s in plan["satellites"]}
    for w in plan["windows"]:
        by_sat[w["a"]].append((w, w["b"]))
        by_sat[w["b"]].append((w, w["a"]))
    g = nx.DiGraph()
    level = {(src, t0)}
    for w in plan["windows"]:
        for s in (w["a"], w["b"]):
            if w["start"] >= t0:
                level.add((s, w["start"]))
    seen = set(level)
    for _ in range(len(plan["satellites"]) - 1):
        nxt = set()
        for (u, t) in level:
            g.add_node((u, t))
            for w, v in by_sat[u]:
                if w["start"] <= t < w["end"]:
                    arr = _send(w, t, data_mb)
                    if arr is not None:
                        g.add_edge((u, t), (v, arr), weight=arr - t)
                        if (v, arr) not in seen:
                            seen.add((v, arr))
                            nxt.add((v, arr))
        level = nxt
    for s in plan["satellites"]:
        times = sorted(t for (x, t) in g.nodes if x == s)
        for a, b in zip(times, times[1:]):
            g.add_edge((s, a), (s, b), weight=b - a)
    g.add_node((src, t0))
    dist = nx.single_source_dijkstra_path_length(g, (src, t0), weight="weight")
    arrivals = [t0 + d for (s, _), d in dist.items() if s == dst]
    return min(arrivals) if arrivals else None


def test_earliest_arrival_equals_a_time_expanded_graph_search_on_random_fleets():
    rnd = random.Random(17)
    routed = multi_hop = waited = 0
    for trial in range(10):
        sats = _random_fleet(rnd, 5)
        t0 = 1772928000
        plan = contactplan.compute(sats, t0, t0 + 4 * 3600)
        router = islroute.Router(plan)
        for _ in range(10):
            a, b = rnd.sample(plan["satellites"], 2)
            t = t0 + rnd.uniform(0, 3 * 3600)
            data_mb = rnd.choice((0.5, 50.0, 800.0, 3000.0))
            got = router.route(a, b, t, data_mb)
            want = _earliest_by_time_expanded_graph(plan, a, b, t, data_mb)
            if want is None:
                assert got is None, (trial, a, b, t, data_mb)
                continue
            assert got is not None, (trial, a, b, t, data_mb)
            assert got["arrival"] == pytest.approx(want, abs=1e-6), (trial, a, b, t, data_mb)
            routed += 1
            multi_hop += len(got["hops"]) > 1
            waited += any(h["wait_s"] > 1 for h in got["hops"])
    # the cases cover what the router is for: several hops, and waits for a window
    assert routed >= 20 and multi_hop >= 5 and waited >= 5, (routed, multi_hop, waited)


def test_route_hops_follow_the_rule_wait_plus_transmission_plus_latency():
    plan, t0 = _fleet("shell-20.json", 6)
    router = islroute.Router(plan)
    r = router.route("99801", "99815", t0 + 3000, 1000)
    assert r is not None and len(r["hops"]) >= 2
    ready = r["start"]
    for h in r["hops"]:
        assert h["ready"] == ready and h["depart"] >= ready
        assert h["wait_s"] == pytest.approx(h["depart"] - ready)
        assert h["arrival"] == pytest.approx(h["sent"] + h["latency_ms"] / 1000)
        assert h["tx_s"] == pytest.approx(1000 * 8 / h["bandwidth_mbps"])
        ready = h["arrival"]
    assert r["arrival"] == pytest.approx(ready)


def test_a_hop_that_does_not_fit_before_its_window_closes_waits_for_the_next():
    plan, t0 = _fleet("shell-20.json", 6)
    wins = contactplan.pair_windows(plan, "99801", "99819")    # across the planes: recurring windows
    assert len(wins) >= 3
    two = {"satellites": ["99801", "99819"], "windows": wins}
    router = islroute.Router(two)
    first, second = wins[0], wins[1]
    r = router.route("99801", "99819", first["end"] - 10, 1000)   # 8000 Mb need well over 10 s
    assert r["hops"][0]["depart"] == second["start"]
    assert r["hops"][0]["sent"] <= second["end"]
    small = router.route("99801", "99819", first["end"] - 10, 1)  # 8 Mb fit
    assert small["hops"][0]["depart"] == first["end"] - 10


def test_train_of_four_routes_end_to_end_through_its_middle_satellites():
    plan, t0 = _fleet("train-4.json", 24)
    pairs = {(w["a"], w["b"]) for w in plan["windows"]}
    # neighbours ~3600 km apart are linked all day; the ends (~10000 km) never are
    assert pairs == {("99901", "99902"), ("99902", "99903"), ("99903", "99904")}
    for w in plan["windows"]:
        assert w["start"] == t0 and w["end"] == t0 + 86400
        assert 3500 < min(w["distance_km"]) and max(w["distance_km"]) < 3700
    router = islroute.Router(plan)
    for start in (t0, t0 + 5 * 3600, t0 + 20 * 3600):
        r = router.route("99901", "99904", start, 400)
        assert r["path"] == ["99901", "99902", "99903", "99904"]
        assert [h["wait_s"] for h in r["hops"]] == [0, 0, 0]
        # 400 MB at ~0.5-0.57 quality: ~60 s a hop
        assert 3 * 50 < r["duration_s"] < 3 * 75
        back = router.route("99904", "99901", start, 400)
        assert back["path"] == ["99904", "99903", "99902", "99901"]
        snap = router.snapshot("99901", "99904", start, 400)
        assert snap["path"] == r["path"]


def test_a_waiting_route_beats_the_route_of_the_moment():
    # Built for it (shell-20, 2h26m after its epoch): 99807 and 99815, in the two
    # planes, come into range 10 s later and stay in range long enough to carry
    # 4000 MB in one hop; at that moment the best path is two hops through 99816,
    # each as slow as the direct one.
    plan, t0 = _fleet("shell-20.json", 6)
    router = islroute.Router(plan)
    t = t0 + 8760
    direct = [w for w in contactplan.pair_windows(plan, "99807", "99815") if w["end"] > t]
    assert direct and t < direct[0]["start"] < t + 60
    snap = router.snapshot("99807", "99815", t, 4000)
    assert snap["path"] == ["99807", "99816", "99815"]
    best = router.route("99807", "99815", t, 4000)
    assert best["path"] == ["99807", "99815"]
    assert best["hops"][0]["wait_s"] > 0
    assert best["arrival"] < snap["arrival"] - 300           # five minutes earlier at least
    assert best["duration_s"] < snap["predicted_s"]          # and earlier than the snapshot promised
    # never worse, anywhere
    rnd = random.Random(3)
    for _ in range(200):
        a, b = rnd.sample(plan["satellites"], 2)
        q = t0 + rnd.uniform(0, 5 * 3600)
        s = router.snapshot(a, b, q, 500)
        r = router.route(a, b, q, 500)
        if s is not None and s["arrival"] is not None:
            assert r["arrival"] <= s["arrival"] + 1e-9


def test_the_graph_of_a_moment_is_the_same_whichever_moments_came_before():
    # the router keeps the links up at a moment by a sweep as the moments go
    # forward; asked out of order (a hub answers each sender at its own time),
    # it must answer as a router asked that moment first
    plan, t0 = _fleet("shell-20.json", 6)
    shared = islroute.Router(plan)
    rnd = random.Random(7)
    times = [t0 + rnd.uniform(0, 6 * 3600) for _ in range(60)]
    times += [times[5], times[5] - 1e-3, t0, t0 + 6 * 3600]   # again, just before, the ends
    ends = [w["end"] for w in plan["windows"][:20]]
    times += ends + [e - 1e-6 for e in ends]                   # a window's last instant, and its end
    for t in times:
        up = shared._links_up(t)
        for u in plan["satellites"]:
            expect = dict((v, w) for v in shared.adj[u] for w in [shared.window_at(u, v, t)] if w)
            assert up[u] == expect, (u, t)
        a, b = rnd.sample(plan["satellites"], 2)
        assert shared.snapshot(a, b, t, 50) == islroute.Router(plan).snapshot(a, b, t, 50)


def test_a_search_taken_on_for_another_destination_answers_as_one_from_scratch():
    # the router keeps an earliest-arrival search from a source at a time and
    # takes it on for the next destination asked (a planner tries every
    # satellite for a step): each answer must be a fresh router's
    plan, t0 = _fleet("shell-20.json", 6)
    shared = islroute.Router(plan)
    rnd = random.Random(11)
    for _ in range(12):
        src = rnd.choice(plan["satellites"])
        t = t0 + rnd.uniform(0, 3 * 3600)
        mb = rnd.choice((1.0, 200.0, 4000.0))
        dsts = [d for d in plan["satellites"] if d != src]
        rnd.shuffle(dsts)
        for dst in dsts[:8] + dsts[:2]:      # and again, once done
            assert shared.route(src, dst, t, mb) == islroute.Router(plan).route(src, dst, t, mb)


def test_no_route_is_none_and_bad_queries_are_refused():
    plan, t0 = _fleet("train-4.json", 2)
    router = islroute.Router(plan)
    # more than the links can carry before the plan ends
    assert router.route("99901", "99904", t0, 10 ** 6) is None
    with pytest.raises(ValueError, match="unknown satellite"):
        router.route("99901", "nope", t0, 1)
    with pytest.raises(ValueError, match="data_mb"):
        router.route("99901", "99904", t0, -1)


def test_one_query_runs_on_the_board_with_the_same_answer(mpy, tmp_path):
    # an hour's plan of the train (18 KB of JSON) in a board-sized heap
    plan, t0 = _fleet("train-4.json", 1)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    want = islroute.Router(plan).route("99901", "99904", t0 + 600, 400)
    res = mpy("""
        import json, islroute
        plan = json.load(open(%r))
        r = islroute.Router(plan).route("99901", "99904", %r, 400)
        print(json.dumps({"path": r["path"], "arrival": r["arrival"]}))
    """ % (str(path), t0 + 600), heap="128K")
    assert res.returncode == 0, res.stdout + res.stderr
    got = res.json_lines[-1]
    assert got["path"] == want["path"]
    assert got["arrival"] == pytest.approx(want["arrival"], abs=1e-6)
