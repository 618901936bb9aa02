"""Clock, time and hardware-adapter basics, under MicroPython and CPython."""
import calendar
import json
import time

import pytest


def test_iso_round_trip_matches_cpython_calendar(portable):
    stamps = [0, 951782400, 1772893425, 4102444799, 1709164800]  # incl. a leap day
    res = portable("""
        import timeutil, json
        out = []
        for s in %r:
            text = timeutil.iso_utc(s)
            out.append([s, text, timeutil.parse_iso(text)])
        print(json.dumps(out))
        """ % stamps).check()
    for s, text, back in res.last_json:
        assert text == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s))
        assert back == s


@pytest.mark.parametrize("bad", ["", "2026-13-01T00:00:00Z", "yesterday", "2026-03-07 14:23", "2026-03-07T14:23:45+0100x"])
def test_parse_iso_rejects_malformed_time_with_value_error(portable, bad):
    res = portable("""
        import timeutil
        try:
            timeutil.parse_iso(%r)
            print("accepted")
        except ValueError as e:
            print("refused")
        """ % bad).check()
    assert res.stdout.strip() == "refused"


def test_parse_iso_honours_offsets_and_fractions_in_integers(portable):
    # an absolute time is never a float on board (single-precision boards
    # round epoch seconds to 128 s): whole seconds, and the fraction in ms
    res = portable("""
        import timeutil
        t = timeutil.parse_iso("2026-03-07T15:23:45.5+01:00")
        s, ms = timeutil.parse_iso_ms("2026-03-07T15:23:45.5+01:00")
        print(type(t).__name__, t, type(s).__name__, s, ms)
        print(timeutil.iso_utc(s, ms), timeutil.iso_utc(s))
        """).check()
    t = calendar.timegm((2026, 3, 7, 14, 23, 45))
    assert res.stdout.split("\n")[0] == "int %d int %d 500" % (t, t)
    assert res.stdout.split("\n")[1] == "2026-03-07T14:23:45.500Z 2026-03-07T14:23:45Z"


def test_sim_clock_jumps_and_never_goes_back(portable):
    res = portable("""
        import clock
        c = clock.SimClock(start_epoch=1000.0)
        c.wait_until(5000)
        c.wait_until(10)
        print(c.now_ms(), c.epoch())
        c.sync(2000.0)
        print(c.epoch())
        """).check()
    lines = res.stdout.split()
    assert lines[0] == "5000" and float(lines[1]) == 1005.0 and float(lines[2]) == 2000.0


def test_real_clock_is_monotonic_and_sleeps(portable):
    res = portable("""
        import clock
        c = clock.RealClock()
        a = c.now_ms()
        c.wait_until(a + 30)
        b = c.now_ms()
        print(b - a)
        """).check()
    assert 30 <= int(res.stdout) < 1000


def test_sensors_report_unknown_for_failing_or_out_of_range_readings(portable):
    res = portable("""
        import hal
        def broken():
            raise OSError(5)
        s = hal.Sensors(read_battery=lambda: 140.0, read_temperature=broken,
                        read_eclipse=lambda: 1, read_link=None)
        print(s.battery_percent(), s.temperature_c(), s.in_eclipse(), s.link_up(), s.bad_readings)
        good = hal.Sensors(read_battery=lambda: 55.5, read_temperature=lambda: 21.0)
        print(good.battery_percent(), good.temperature_c())
        """).check()
    first, second = res.stdout.strip().splitlines()
    assert first.split() == ["None", "None", "True", "None", "2"]
    assert second.split() == ["55.5", "21.0"]


def test_a_sensor_read_that_runs_out_of_heap_is_no_unknown_reading(portable):
    # a simulated satellite extends its windows inside a read: a MemoryError
    # there must crash the reading task, not read as "link unknown: try"
    res = portable("""
        import hal
        def full():
            raise MemoryError("memory allocation failed")
        s = hal.Sensors(read_link=full, read_eclipse=full)
        for read in (s.link_up, s.in_eclipse):
            try:
                print(read())
            except MemoryError:
                print("MemoryError")
        print(s.bad_readings)
        """).check()
    assert res.stdout.split() == ["MemoryError", "MemoryError", "0"]


def test_sim_watchdog_expires_only_after_timeout_without_feed(portable):
    res = portable("""
        import clock, hal
        c = clock.SimClock()
        w = hal.SimWatchdog(timeout_ms=8000, clock=c)
        print(w.expired(100000))
        w.arm()
        c.wait_until(7000); w.feed()
        c.wait_until(15000)
        print(w.expired(c.now_ms()))
        c.wait_until(15001)
        print(w.expired(c.now_ms()))
        """).check()
    assert res.stdout.split() == ["False", "False", "True"]


def test_reset_cause_is_unknown_on_the_unix_port(mpy):
    res = mpy("import boardhal\nprint(boardhal.board_reset_cause())").check()
    assert res.stdout.strip() == "unknown"


def test_the_recovery_and_intake_tunables_live_in_the_config_and_are_checked(portable):
    """Task restarts and the workload's heap tries are tunables of
    firmware/agentdefaults.py like every other, refused when they make no sense."""
    res = portable("""
        import agentconfig, json
        cfg = agentconfig.make()
        keys = ["task_restart_backoff_ms", "task_restart_max_backoff_ms",
                "task_crashes_before_reset", "task_crash_window_ms", "workload_memory_tries"]
        refused = []
        for bad in ({"task_crashes_before_reset": 0}, {"workload_memory_tries": 0},
                    {"task_restart_backoff_ms": 5000, "task_restart_max_backoff_ms": 1000}):
            try:
                agentconfig.make(bad)
            except ValueError:
                refused.append(True)
        print(json.dumps([[cfg[k] for k in keys], refused]))
        """).check()
    values, refused = json.loads(res.stdout)
    assert values == [1000, 30000, 5, 600000, 3] and refused == [True] * 3
