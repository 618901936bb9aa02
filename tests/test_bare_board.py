"""The firmware on a bare board: a port without a network stack, without
os.urandom and without time.gmtime (the stock qemu port, a board with a
serial radio only), and whose real-time clock was never set. The unix port
plays it: a folder first on its module path holds `socket`, `os` and `time`
as such a board has them (MicroPython lets a .py extend a built-in module of
the same name). Absolute times are integers everywhere: in a single-precision
float (stock rp2, stm32 and esp32 builds) epoch seconds round to 128 s."""
import calendar
import json
import time

import pytest

BARE = {
    # no network stack at all
    "socket.py": 'raise ImportError("no module named \'socket\'")\n',
    # os without urandom
    "os.py": "from uos import *\ndel urandom\n",
    # time without gmtime/mktime/localtime; the RTC never set: it counts from
    # the port's epoch (2000-01-01 here) at power-on
    "time.py": ("from utime import ticks_ms, ticks_diff, ticks_add, ticks_us, sleep_ms, sleep\n"
                "_t0 = ticks_ms()\n"
                "def time():\n"
                "    return ticks_diff(ticks_ms(), _t0) // 1000\n"),
}


@pytest.fixture
def bare(tmp_path):
    folder = tmp_path / "bare"
    folder.mkdir()
    for name, text in BARE.items():
        (folder / name).write_text(text)
    return str(folder)


def test_the_firmware_imports_and_calls_home_as_link_down_on_a_board_without_a_network_stack(
        mpy, bare):
    res = mpy("""
        import json, os, time
        print(hasattr(os, "urandom"), hasattr(time, "gmtime"))
        import clock, httpc, link, seriallink, h_crypt, agent, contact, accept, handlers
        import agentconfig, scheduler
        cfg = agentconfig.make({"api_url": "http://127.0.0.1:9"})
        gen = link.HttpLink(cfg, "0").call("GET", "/api/agent/workloads")
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            print(json.dumps(list(stop.value)))
        """, extra_path=(bare,)).check()
    lines = res.stdout.splitlines()
    assert lines[0] == "False False"
    assert json.loads(lines[1]) == [None, "no network stack on this board"]


def test_encrypt_makes_its_own_iv_on_a_board_without_os_urandom(mpy, bare, tmp_path):
    data = tmp_path / "in.bin"
    data.write_bytes(bytes(range(256)) * 8)
    res = mpy("""
        import json, handlers
        step = {"id": "x", "handler": "encrypt", "input": "in.bin"}
        ctx = {"workdir": %r, "data_root": %r, "key": "2b7e151628aed2a6abf7158809cf4f3c"}
        ivs = []
        for run in ("a", "b"):
            ctx["workdir"] = %r + run
            res, n = handlers.drive(handlers.get("encrypt"), step, {}, ctx, None, None)
            with open(res["path"], "rb") as f:
                ivs.append(f.read(16))
        print(json.dumps([len(ivs[0]), ivs[0] != ivs[1]]))
        """ % (str(tmp_path / "w"), str(tmp_path), str(tmp_path / "w")), extra_path=(bare,)).check()
    assert json.loads(res.stdout.splitlines()[-1]) == [16, True]


def test_the_clock_imports_without_gmtime_and_every_absolute_time_is_an_integer(mpy, bare):
    res = mpy("""
        import json, time, clock, timeutil
        c = clock.RealClock()
        s = clock.SimClock(start_epoch=1.2e9 + 0.25)
        s.advance_to(1750)
        out = [type(c.epoch()).__name__, type(c.epoch_at(0)).__name__, c.set(),
               type(s.epoch()).__name__, s.epoch() - 1200000000,
               type(timeutil.parse_iso("2026-12-01T21:45:57.900Z")).__name__]
        c.sync(*timeutil.parse_iso_ms("2026-12-01T21:45:57.900Z"))
        t0 = c.now_ms()
        out += [type(c.epoch()).__name__, c.set(), c.epoch() - 1796161557]
        while c.now_ms() - t0 < 150:
            time.sleep_ms(10)
        out.append(c.epoch() - 1796161557)   # 57.900 + 0.150 s: the next second
        print(json.dumps(out))
        """, extra_path=(bare,)).check()
    assert json.loads(res.stdout) == ["int", "int", False, "int", 2, "int",
                                      "int", True, 0, 1]


def test_an_unset_clock_stamps_the_unsynced_marker_and_events_go_out_with_their_real_time(
        mpy, bare):
    """agent.booted and whatever else is emitted before the first time sync
    carries '1970-01-01 + ms since boot'; the report gives the events of this
    boot their real time once the Console's server_time has set the clock."""
    res = mpy("""
        import json, clock, contact
        c = clock.RealClock()
        before = c.stamp()
        ev = json.dumps({"type": "agent.booted", "timestamp": before, "seq": 1}, separators=(",", ":"))

        class Journal:   # the two fields _restamp reads
            state = {"shift": 0}

        class Ag:
            clock = c
            journal = Journal()
            boot_seq = 1
            cfg = {"time_sync": True}
            ground_time = None
        ag = Ag()
        contact.sync_time(ag, {"server_time": "2026-12-01T21:45:57.250Z"})
        after = json.loads(contact._restamp(ag, 1, ev.encode()))["timestamp"]
        older = json.loads(contact._restamp(ag, 0, ev.encode()))["timestamp"]  # an earlier boot's
        print(json.dumps([before, after, older, c.stamp()]))
        """, extra_path=(bare,)).check()
    before, after, older, now = json.loads(res.stdout)
    assert before.startswith("1970-01-01T00:00:0") and before.endswith("Z")
    assert after == "2026-12-01T21:45:57Z"   # stamped a few ms before the sync
    assert older == before
    assert now == "2026-12-01T21:45:57Z"


def test_a_set_real_time_clock_stamps_real_time_from_the_start(mpy):
    res = mpy("""
        import clock
        print(clock.RealClock().stamp())
        """).check()
    stamped = calendar.timegm(time.strptime(res.stdout.strip(), "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(stamped - time.time()) < 3
