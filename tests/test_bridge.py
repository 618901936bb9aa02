"""tools/bridge.py: the relay rules (hello, reply cache, failures, bad input)
against an HTTP server on loopback, and the `umbra bridge` process over real
pseudo-terminals (reconnects, clean shutdown)."""
import json
import os
import select
import signal
import time

import pytest

import framing
from serial_helpers import FakeConsole, pty_pair, start_bridge
from tools.bridge import Bridge

HELLO = {"agent_id": "sat-7", "api_key": "um_key7", "sid": 4242, "ua": "umbra-agent/0.1.0",
         "max": 16384}


def wire(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


@pytest.fixture
def console():
    c = FakeConsole().start()
    yield c
    c.stop()


@pytest.fixture
def relay(console):
    b = Bridge(console.url, cache_size=4, http_timeout=2.0)
    yield b
    b.close()


def ask(bridge, obj):
    """One request through the bridge's frame interface -> the decoded reply."""
    frames = bridge.feed(framing.encode(wire(obj)))
    assert len(frames) == 1
    return json.loads(framing.decode(frames[0][:-1]))


def hello(bridge, rid=1, **over):
    return ask(bridge, {"i": rid, "m": "HELLO", "b": dict(HELLO, **over)})


def test_requests_before_hello_are_answered_no_session_and_not_relayed(relay, console):
    reply = ask(relay, {"i": 1, "m": "GET", "p": "/api/agent/workloads"})
    assert reply == {"i": 1, "s": 0, "e": "no session: send HELLO first", "h": 1}
    assert console.requests == []
    assert relay.counters()["no_session"] == 1


def test_hello_credentials_go_with_every_relayed_request(relay, console):
    assert hello(relay) == {"i": 1, "s": 200, "b": {"sid": 4242, "bridge": "umbra-bridge/0.1.0"}}
    reply = ask(relay, {"i": 2, "m": "POST", "p": "/api/echo", "b": {"n": 1}})
    assert reply["s"] == 200
    assert reply["b"] == {"echo": {"n": 1}, "agent": "sat-7", "key": "um_key7"}
    assert ask(relay, {"i": 3, "m": "GET", "p": "/api/agent/workloads"}) == {"i": 3, "s": 204}
    _, _, headers, _ = console.requests[0]
    assert headers["User-Agent"].startswith("umbra-agent/0.1.0 via umbra-bridge/")
    assert headers["Content-Type"] == "application/json"
    # compact workloads, as HttpLink asks: a full one would not fit a board's reply limit
    assert headers["X-Umbra-Compact"] == "1"


def test_a_repeated_request_id_is_answered_from_the_cache_not_relayed_twice(relay, console):
    hello(relay)
    batch = [{"type": "step.completed", "agent_id": "sat-7", "seq": 1}]
    req = {"i": 2, "m": "POST", "p": "/api/deployments/d1/events", "b": batch}
    first = ask(relay, req)
    again = ask(relay, req)
    assert first == again and first["b"]["acked_seq"] == 1
    assert len(console.paths("/api/deployments/")) == 1
    assert relay.counters()["replayed"] == 1 and relay.counters()["relayed"] == 1
    # a retried hello (same sid) keeps the cache; the same id with another body is new
    hello(relay, rid=3)
    assert ask(relay, req) == first
    other = ask(relay, dict(req, b=[dict(batch[0], seq=2)]))
    assert other["b"]["ids"] == [2]
    assert len(console.paths("/api/deployments/")) == 2


def test_the_cache_is_bounded_and_a_new_session_starts_empty(relay, console):
    hello(relay)
    for rid in range(2, 8):     # cache_size 4: ids 2 and 3 fall out
        ask(relay, {"i": rid, "m": "POST", "p": "/api/echo", "b": {"n": rid}})
    assert sorted(relay.session.cache) == [4, 5, 6, 7]
    ask(relay, {"i": 7, "m": "POST", "p": "/api/echo", "b": {"n": 7}})
    assert len(console.requests) == 6
    hello(relay, rid=1, sid=99)     # the agent rebooted: new sid, ids start over
    ask(relay, {"i": 7, "m": "POST", "p": "/api/echo", "b": {"n": 7}})
    assert len(console.requests) == 7
    assert relay.counters()["sessions"] == 2


def test_console_down_is_status_0_and_the_retry_is_relayed_once_it_is_back(console):
    port = int(console.url.rsplit(":", 1)[1])
    relay = Bridge(console.url, http_timeout=2.0)
    try:
        hello(relay)
        console.stop()
        req = {"i": 2, "m": "POST", "p": "/api/agent/telemetry", "b": {"status": "idle"}}
        down = ask(relay, req)
        assert down["s"] == 0 and down["e"].startswith("console unreachable")
        assert "h" not in down
        back = FakeConsole(port).start()
        try:
            assert ask(relay, req)["s"] == 200          # same id: relayed, not a cached failure
            assert ask(relay, req)["s"] == 200          # now cached
            assert len(back.requests) == 1
        finally:
            back.stop()
        assert relay.counters()["http_errors"] == 1
    finally:
        relay.close()


def test_server_errors_are_passed_on_but_not_cached(relay, console):
    hello(relay)
    console.status_override = 503
    req = {"i": 2, "m": "GET", "p": "/api/agent/workloads"}
    assert ask(relay, req) == {"i": 2, "s": 503, "b": {"error": "busy"}}
    console.status_override = None
    assert ask(relay, req) == {"i": 2, "s": 204}
    assert len(console.requests) == 2


def test_bad_frames_and_bad_requests_are_dropped_or_refused_and_never_relayed(relay, console):
    hello(relay)
    good = framing.encode(wire({"i": 5, "m": "POST", "p": "/api/echo", "b": {}}))
    flipped = bytearray(good)
    flipped[3] ^= 0x04
    junk = [bytes(flipped), b"\x01\x02\x03\x00", framing.encode(b"not json"),
            framing.encode(wire([1, 2])), framing.encode(wire({"i": "x", "m": "GET"})),
            b"\xff" * 70000 + b"\x00"]
    out = []
    for chunk in junk:
        out += relay.feed(chunk)
    assert out == []
    refused = [ask(relay, {"i": 6, "m": "GET", "p": "/etc/passwd"}),
               ask(relay, {"i": 7, "m": "BREW", "p": "/api/agent/workloads"}),
               ask(relay, {"i": 8, "m": "GET", "p": "/api/../admin"}),
               ask(relay, {"i": 9, "m": "GET", "p": "/api/agent/workloads\r\nX-Evil: 1"})]
    assert [r["s"] for r in refused] == [400, 400, 400, 400]
    assert console.requests == []
    c = relay.counters()
    assert c["bad_frames"] == 3 and c["bad_requests"] == 7


def test_a_bad_hello_is_refused_and_opens_no_session(relay, console):
    for bad in ({"agent_id": ""}, {"api_key": "key\r\nX-Evil: 1"}, {"sid": "one"}, {"max": 10}):
        reply = hello(relay, **bad)
        assert reply["s"] == 400 and "error" in reply["b"]
    assert ask(relay, {"i": 9, "m": "HELLO"})["s"] == 400
    assert relay.session is None
    assert ask(relay, {"i": 2, "m": "GET", "p": "/api/agent/workloads"})["h"] == 1
    assert console.requests == []


def test_a_reply_too_large_for_the_agent_is_link_down_and_not_cached(relay, console):
    hello(relay, max=1024)
    req = {"i": 2, "m": "GET", "p": "/api/big"}
    reply = ask(relay, req)
    assert reply["s"] == 0 and "exceeds" in reply["e"]
    ask(relay, req)
    assert len(console.requests) == 2
    assert relay.counters()["oversize"] == 2


# ---- the process, over real ptys ------------------------------------------------

def exchange(master, obj, timeout=5.0):
    """Act as the agent on a pty master: send one request frame, read its reply."""
    os.write(master, framing.encode(wire(obj)))
    d = framing.Deframer()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            for payload in d.feed(os.read(master, 4096)):
                reply = json.loads(payload)
                if reply["i"] == obj["i"]:
                    return reply
    raise AssertionError("no reply to %r" % (obj,))


def test_bridge_reconnects_when_the_port_disappears_and_reappears(console, tmp_path):
    link = str(tmp_path / "ttyUMBRA")     # like a udev /dev/serial/by-id link
    master, slave, path = pty_pair()
    os.symlink(path, link)
    bridge = start_bridge(link, console.url)
    try:
        bridge.wait_for("open")
        assert exchange(master, {"i": 1, "m": "HELLO", "b": HELLO})["s"] == 200
        assert exchange(master, {"i": 2, "m": "GET", "p": "/api/agent/workloads"})["s"] == 204
        os.close(master)                  # the board is unplugged
        os.close(slave)
        bridge.wait_for("lost")
        os.unlink(link)
        time.sleep(0.3)
        master, slave, path = pty_pair()  # ... and plugged in again
        os.symlink(path, link + ".new")
        os.replace(link + ".new", link)
        bridge.wait_for("open")
        # the session survives a reconnect: no second hello needed
        reply = exchange(master, {"i": 3, "m": "POST", "p": "/api/echo", "b": {"after": 1}})
        assert reply["b"]["agent"] == "sat-7"
    finally:
        code, out, counts = bridge.stop()
        os.close(master)
        os.close(slave)
    assert code == 0, out
    assert counts["reconnects"] == 1 and counts["relayed"] == 2 and counts["sessions"] == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_bridge_stops_cleanly_on_a_signal_and_prints_its_counters(console, sig):
    master, slave, path = pty_pair()
    bridge = start_bridge(path, console.url)
    try:
        bridge.wait_for("open")
        os.write(master, b"\x01garbage\x00")
        assert exchange(master, {"i": 1, "m": "HELLO", "b": HELLO})["s"] == 200
        started = time.monotonic()
        code, out, counts = bridge.stop(sig)
        assert time.monotonic() - started < 5
    finally:
        os.close(master)
        os.close(slave)
    assert code == 0, out
    assert "Traceback" not in out
    assert counts["frames_in"] == 1 and counts["frames_out"] == 1 and counts["bad_frames"] == 1
    assert "um_key7" not in out          # the key is never printed


def test_bridge_takes_a_pyserial_url_such_as_socket(console):
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    bridge = start_bridge("socket://127.0.0.1:%d" % listener.getsockname()[1], console.url)
    try:
        conn, _ = listener.accept()        # a radio modem exposed over TCP
        conn.settimeout(5)
        bridge.wait_for("open")            # pyserial flushes input while opening
        conn.sendall(framing.encode(wire({"i": 1, "m": "HELLO", "b": HELLO})) +
                     framing.encode(wire({"i": 2, "m": "POST", "p": "/api/echo", "b": {"tcp": 1}})))
        d, replies = framing.Deframer(), []
        while len(replies) < 2:
            replies += [json.loads(p) for p in d.feed(conn.recv(4096))]
        conn.close()
    finally:
        code, out, counts = bridge.stop()
        listener.close()
    assert [r["s"] for r in replies] == [200, 200]
    assert replies[1]["b"]["echo"] == {"tcp": 1}
    assert code == 0, out


def test_a_reply_longer_than_the_agents_piece_size_goes_down_in_pieces(relay, console):
    hello(relay, pc=1024)
    req = framing.encode(wire({"i": 2, "m": "GET", "p": "/api/workload"}))
    frames = relay.feed(req)
    payloads = [framing.decode(f[:-1]) for f in frames]
    heads = [p[:p.index(b":")] for p in payloads]
    assert len(payloads) >= 12 and heads == [b"#2 %d %d" % (k, len(payloads))
                                             for k in range(len(payloads))]
    assert all(len(p) - len(h) - 1 <= 1024 for p, h in zip(payloads, heads))
    whole = json.loads(b"".join(p[len(h) + 1:] for p, h in zip(payloads, heads)))
    assert whole["i"] == 2 and whole["s"] == 200 and len(whole["b"]["steps"]) == 84
    # a retry is answered from the cache, in the same pieces
    again = relay.feed(req)
    assert again == frames and relay.counters()["replayed"] == 1
    # an agent that names no piece size gets the reply whole
    hello(relay, rid=3, sid=777)
    assert len(relay.feed(framing.encode(wire({"i": 4, "m": "GET", "p": "/api/workload"})))) == 1


def test_long_replies_go_deflated_only_to_an_agent_that_offered_it(relay, console):
    """Negotiated, never forced: a hello with `"z": ["deflate9"]` gets long
    replies (over 512 B) as raw deflate pieces, headed `z`, that inflate to
    the reply; an agent that speaks compact but has no deflate (its hello
    says no `z`) gets them plain, as does one that offers neither."""
    import zlib
    import compact
    got = {}
    for sid, extra in ((11, {"enc": [compact.VERSION], "z": ["deflate9"]}),
                       (12, {"enc": [compact.VERSION]}), (13, {})):
        answer = hello(relay, rid=1, sid=sid, pc=2048, **extra)
        assert answer["b"].get("z") == extra.get("z", [None])[0]
        assert answer["b"].get("enc") == (compact.VERSION if extra else None)
        frames = relay.feed(framing.encode(wire({"i": 2, "m": "GET", "p": "/api/workload"})))
        payloads = [framing.decode(f[:-1]) for f in frames]
        heads = [p[:p.index(b":")].split() for p in payloads]
        body = b"".join(p[p.index(b":") + 1:] for p in payloads)
        if all(len(h) == 4 and h[3] == b"z" for h in heads):
            got[sid] = ("deflated", len(body), json.loads(zlib.decompress(body, -9)))
        else:
            assert all(len(h) == 3 for h in heads)
            got[sid] = ("plain", len(body), json.loads(body))
    assert [got[s][0] for s in (11, 12, 13)] == ["deflated", "plain", "plain"]
    assert got[11][2] == got[12][2] == got[13][2] and len(got[11][2]["b"]["steps"]) == 84
    assert got[11][1] < got[12][1] / 3
    assert relay.counters()["deflated"] == 1


def test_a_hello_with_a_bad_piece_size_is_refused(relay, console):
    for bad in (16, "2048", True):
        assert hello(relay, pc=bad)["s"] == 400


def test_with_a_rate_the_bridge_paces_the_line_like_a_radio(console):
    """`umbra bridge --rate 9600`: a request of ~1.2 KB and its echo of the
    same size each take the air's time, 10 bits a byte: at least 2 s for the
    pair, where the unpaced line answers in a fraction of that."""
    master, slave, path = pty_pair()
    bridge = start_bridge(path, console.url, "--rate", "9600")
    try:
        bridge.wait_for("open")
        assert exchange(master, {"i": 1, "m": "HELLO", "b": HELLO})["s"] == 200
        body = {"blob": "x" * 1200}
        started = time.monotonic()
        reply = exchange(master, {"i": 2, "m": "POST", "p": "/api/echo", "b": body}, timeout=20)
        took = time.monotonic() - started
    finally:
        code, out, counts = bridge.stop()
        os.close(master)
        os.close(slave)
    assert reply["s"] == 200 and reply["b"]["echo"] == body
    assert took >= 2 * 1200 * 10 / 9600, took
    assert code == 0, out
