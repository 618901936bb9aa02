"""Joining and leaving the fleet's ISL hub (tools/islhub.py): an overlay of
sim/islport.py, loaded for it and dropped after (what a running node does
not need stays out of its heap). Portable.

    join(node, "127.0.0.1:4000")   # sim/nodestart.py: node.isl, its clock's waits through it
    port = connect("127.0.0.1:4000", "99901", clock, beat=None)
        -> an islport.HubPort, joined as that satellite; the clock moved on to
           where the hub says this node carries on (never back)
    bye(port)   -> at the node's end: tell the hub (it need not wait for it), close
"""
try:
    import select
except ImportError:  # pragma: no cover
    import uselect as select
import socket
import sys

from islport import HubPort


def connect(address, sat_id, clock, beat=None):
    if not isinstance(address, str) or ":" not in address:
        raise ValueError("--isl must be HOST:PORT, not %r" % (address,))
    host, _, port = address.rpartition(":")
    ai = socket.getaddrinfo(host, int(port))[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    s.connect(ai[-1])
    try:
        s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY (Linux): one line each way, at once
    except OSError:
        pass
    p = HubPort()
    p.sat_id = sat_id
    p.clock = clock
    p.beat = beat
    p.sock = s
    p.rfile = s.makefile("rb") if hasattr(s, "recv_into") else s
    p.poll = select.poll()
    p.poll.register(s, select.POLLIN)
    p.horizon = 0
    reply = p._ask({"op": "join", "sat": sat_id, "t": clock.now_ms()})
    p.lookahead_ms = reply["L"]
    p.horizon = reply["h"]
    clock.advance_to(reply["t"])
    return p


def join(node, address):
    """A node's start-up with --isl (sim/nodestart.py): node.isl joined as its
    satellite, and its clock's waits (the node loop's wait_until) through the
    port's (HubPort.wait). Then this module leaves the heap (an overlay)."""
    node._last_heartbeat = 0
    port = connect(address, node.cfg["satellite_id"], node.clock, beat=node.heartbeat)
    port.node = node
    node.isl = port
    node.clock.wait_until = port.wait
    _drop()


def _drop():
    if sys.implementation.name == "micropython":
        sys.modules.pop("islstart", None)


def bye(port):
    """At the node's end: tell the hub it has ended, close. Returns what the exit
    summary says of it: the port's counts and "stopped" (None, or "lost" when
    the hub stopped this satellite)."""
    if port.stopped is None:
        try:
            port._ask({"op": "bye", "t": port.clock.now_ms()})
        except (OSError, ValueError):
            pass
    try:
        port.sock.close()
    except OSError:
        pass
    out = dict(port.counts)
    out["stopped"] = port.stopped
    return out
