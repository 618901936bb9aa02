"""The cooperative scheduler (lib/scheduler.py): time and priority order,
events, supervision (may_feed), crash restart and escalation; and its
helpers (lib/schedutil.py): chunked waits, several schedulers on one
simulated clock. Runs under the MicroPython unix port with a
32 KiB heap and, for the portable logic, under CPython.

On the 32 KiB heap the modules are imported as .mpy (as on a board, where
code is frozen or precompiled): compiling scheduler.py from source needs more
heap than the scheduler itself ever uses.
"""
import os
import textwrap

import pytest

from tools import ROOT, upy

HEAP = "32K"

PRELUDE = """
import gc, json
try:
    gc.threshold(8192)  # FACTS.md: keeps allocation fast on any heap
except AttributeError:
    pass
from clock import SimClock, RealClock
from scheduler import Scheduler, Event, sleep_ms, until_ms, wait_for, nap_ms, RestartPolicy
"""


@pytest.fixture(scope="module")
def mpy_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("mpy")
    for name in ("scheduler", "schedutil", "clock"):
        upy.compile_one(os.path.join(ROOT, "lib", name + ".py"), str(out / (name + ".mpy")))
    return str(out)


@pytest.fixture
def run(portable, mpy_dir):
    """Run a snippet (after PRELUDE) under MicroPython (32 KiB heap) and CPython."""
    def go(code, timeout=60):
        return portable(PRELUDE + textwrap.dedent(code), heap=HEAP, timeout=timeout,
                        extra_path=(mpy_dir,)).check()
    return go


@pytest.fixture
def run_mpy(mpy, mpy_dir):
    def go(code, timeout=60):
        return mpy(PRELUDE + textwrap.dedent(code), heap=HEAP, timeout=timeout,
                   extra_path=(mpy_dir,)).check()
    return go


def test_tasks_resume_in_time_order_and_sim_clock_jumps_to_each_wakeup(run):
    res = run("""
        c = SimClock()
        s = Scheduler(c)
        log = []
        def periodic(name, period):
            def task():
                while True:
                    log.append((c.now_ms(), name))
                    yield sleep_ms(period)
            return task
        s.spawn("a", periodic("a", 300))
        s.spawn("b", periodic("b", 500))
        def once():
            yield until_ms(1234)
            log.append((c.now_ms(), "once"))
        s.spawn("once", once)
        s.run(until_ms=1600)
        print(json.dumps({"log": log, "now": c.now_ms(), "tasks": sorted(s.tasks)}))
        """)
    out = res.last_json
    times = [t for t, _ in out["log"]]
    assert times == sorted(times)
    assert [t for t, n in out["log"] if n == "a"] == [0, 300, 600, 900, 1200, 1500]
    assert [t for t, n in out["log"] if n == "b"] == [0, 500, 1000, 1500]
    assert [t for t, n in out["log"] if n == "once"] == [1234]
    assert out["now"] == 1600          # run(until_ms) leaves the clock there
    assert out["tasks"] == ["a", "b"]  # a finished task leaves the table


def test_at_the_same_time_higher_priority_runs_first_then_spawn_order(run):
    res = run("""
        c = SimClock()
        s = Scheduler(c)
        log = []
        def task(name):
            def gen():
                for _ in range(3):
                    log.append(name)
                    yield until_ms(c.now_ms() + 100)
            return gen
        s.spawn("low1", task("low1"), priority=0)
        s.spawn("high", task("high"), priority=5)
        s.spawn("low2", task("low2"), priority=0)
        s.spawn("mid", task("mid"), priority=2)
        s.run()
        print(json.dumps(log))
        """)
    assert res.last_json == ["high", "mid", "low1", "low2"] * 3


def test_bare_yield_gives_the_others_a_turn_without_moving_time(run):
    res = run("""
        c = SimClock()
        s = Scheduler(c)
        log = []
        def spinner(name):
            def gen():
                for i in range(3):
                    log.append(name + str(i))
                    yield
            return gen
        s.spawn("a", spinner("a"))
        s.spawn("b", spinner("b"))
        rounds = []
        while s.tasks:
            rounds.append(s.run_due())
        print(json.dumps({"log": log, "rounds": rounds, "now": c.now_ms()}))
        """)
    out = res.last_json
    assert out["log"] == ["a0", "b0", "a1", "b1", "a2", "b2"]
    assert out["rounds"] == [2, 2, 2, 2]  # the last round lets both finish
    assert out["now"] == 0


def test_event_wakes_its_waiters_in_priority_order_with_its_value(run):
    res = run("""
        c = SimClock()
        s = Scheduler(c)
        ev = Event()
        log = []
        def waiter(name):
            def gen():
                v = yield ev
                log.append((c.now_ms(), name, v))
            return gen
        def setter():
            yield sleep_ms(250)
            ev.set("go")
        s.spawn("w_low", waiter("w_low"), priority=1)
        s.spawn("w_high", waiter("w_high"), priority=3)
        s.spawn("setter", setter)
        s.run()
        late = []
        def late_waiter():
            v = yield ev        # already set: resumes at once
            late.append(v)
        s.spawn("late", late_waiter)
        s.run()
        print(json.dumps({"log": log, "late": late, "is_set": ev.is_set}))
        """)
    out = res.last_json
    assert out["log"] == [[250, "w_high", "go"], [250, "w_low", "go"]]
    assert out["late"] == ["go"] and out["is_set"] is True


def test_wait_for_returns_at_the_timeout_when_the_event_never_comes(run):
    res = run("""
        c = SimClock()
        s = Scheduler(c)
        ev, ev2 = Event(), Event()
        log = []
        def waiter():
            v = yield wait_for(ev, 400)
            log.append((c.now_ms(), ev.is_set, v))
            v = yield wait_for(ev2, 1000)
            log.append((c.now_ms(), ev2.is_set, v))
        def setter():
            yield until_ms(700)
            ev2.set(7)
        s.spawn("waiter", waiter)
        s.spawn("setter", setter)
        s.run()
        print(json.dumps({"log": log, "now": c.now_ms()}))
        """)
    out = res.last_json
    assert out["log"] == [[400, False, None], [700, True, 7]]
    assert out["now"] == 700  # the stale 1400 ms timeout did not hold the run open


def test_24_simulated_hours_of_a_1s_task_take_under_2s_wall(run_mpy):
    res = run_mpy("""
        import time
        c = SimClock()
        s = Scheduler(c)
        count = [0]
        def tick():
            while True:
                count[0] += 1
                yield sleep_ms(1000)
        s.spawn("tick", tick, deadline_ms=2000)
        t0 = time.ticks_ms()
        s.run(until_ms=24 * 3600 * 1000)
        wall = time.ticks_diff(time.ticks_ms(), t0)
        print(json.dumps({"wall_ms": wall, "count": count[0], "now": c.now_ms(),
                          "may_feed": s.may_feed()}))
        """)
    out = res.last_json
    print("24 h of a 1 s task: %d ms wall" % out["wall_ms"])
    assert out["count"] == 86401 and out["now"] == 86400000 and out["may_feed"] is True
    assert out["wall_ms"] < 2000


def test_crashing_task_is_restarted_with_backoff_and_others_keep_running(run):
    res = run("""
        c = SimClock()
        crashes = []
        s = Scheduler(c, policy=RestartPolicy(backoff_ms=1000, max_backoff_ms=4000,
                                              max_crashes=10, window_ms=600000),
                      on_crash=lambda name, exc, n: crashes.append((c.now_ms(), name, str(exc), n)))
        starts = []
        def flaky():
            starts.append(c.now_ms())
            yield sleep_ms(100)
            raise ValueError("boom")
        ticks = []
        def steady():
            while True:
                ticks.append(c.now_ms())
                yield sleep_ms(1000)
        s.spawn("flaky", flaky)
        s.spawn("steady", steady)
        s.run(until_ms=20000)
        print(json.dumps({"starts": starts, "crashes": crashes, "ticks": len(ticks)}))
        """)
    out = res.last_json
    # crash at 100, restart 1 s later; then 2 s, then 4 s, 4 s (capped) ...
    assert out["starts"] == [0, 1100, 3200, 7300, 11400, 15500, 19600]
    assert out["crashes"][:2] == [[100, "flaky", "boom", 1], [1200, "flaky", "boom", 2]]
    assert len(out["crashes"]) == 7  # the last at 19700
    assert out["ticks"] == 21  # 0..20000 s every second: never interrupted


def test_repeated_crashes_escalate_once_and_the_task_stays_down(run):
    res = run("""
        c = SimClock()
        escalations = []
        policy = RestartPolicy(backoff_ms=500, max_backoff_ms=60000, max_crashes=3,
                               window_ms=60000,
                               on_escalate=lambda name, n: escalations.append((c.now_ms(), name, n)))
        s = Scheduler(c, policy=policy)
        starts = []
        def bad():
            starts.append(c.now_ms())
            yield
            1 / 0
        def steady():
            while True:
                yield sleep_ms(1000)
        s.spawn("bad", bad, deadline_ms=5000)
        s.spawn("steady", steady, deadline_ms=5000)
        s.run(until_ms=3000)
        feed_soon = s.may_feed()
        s.run(until_ms=30000)
        print(json.dumps({"starts": starts, "esc": escalations, "state": s.tasks["bad"].state,
                          "feed_soon": feed_soon, "feed_later": s.may_feed(),
                          "overdue": s.overdue()}))
        """)
    out = res.last_json
    assert out["starts"] == [0, 500, 1500]           # 500 ms, then 1000 ms backoff
    assert out["esc"] == [[1500, "bad", 3]]
    assert out["state"] == "failed"
    # nobody reset the node: once its deadline runs out the watchdog is starved
    assert out["feed_soon"] is True and out["feed_later"] is False
    assert out["overdue"] == ["bad"]


def test_crashes_spread_wider_than_the_window_never_escalate(run):
    res = run("""
        c = SimClock()
        esc = []
        s = Scheduler(c, policy=RestartPolicy(backoff_ms=1000, max_crashes=3, window_ms=10000,
                                              on_escalate=lambda *a: esc.append(a)))
        runs = [0]
        def rare():
            runs[0] += 1
            yield sleep_ms(20000)
            raise RuntimeError("rare")
        s.spawn("rare", rare)
        s.run(until_ms=200000)
        print(json.dumps({"esc": len(esc), "runs": runs[0], "state": s.tasks["rare"].state}))
        """)
    out = res.last_json
    assert out["esc"] == 0 and out["runs"] >= 9 and out["state"] in ("ready", "backoff")


def test_missed_checkin_deadline_refuses_feeding_until_the_task_checks_in(run):
    res = run("""
        c = SimClock()
        s = Scheduler(c)
        ev = Event()
        def blocked():
            while True:
                yield ev
                ev.clear()
        def sleepy():
            while True:
                yield sleep_ms(10000)   # longer than its own deadline
        def free():
            while True:
                yield sleep_ms(60000)   # no deadline: exempt
        s.spawn("blocked", blocked, deadline_ms=1000)
        s.spawn("sleepy", sleepy, deadline_ms=3000)
        s.spawn("free", free)
        seen = []
        def probe(t):
            s.run(until_ms=t)
            seen.append((c.now_ms(), s.may_feed(), s.overdue()))
        probe(900)
        probe(1500)
        ev.set()
        probe(1500)       # the event resumed it: that resume is its check-in
        probe(3500)
        s.checkin("blocked"); s.checkin("sleepy")
        seen.append((c.now_ms(), s.may_feed(), s.overdue()))
        print(json.dumps(seen))
        """)
    assert res.last_json == [
        [900, True, []],
        [1500, False, ["blocked"]],
        [1500, True, []],
        [3500, False, ["blocked", "sleepy"]],
        [3500, True, []],
    ]


def test_a_nap_is_one_wake_up_and_counts_as_checked_in(run):
    """nap_ms: one wake-up, checked in meanwhile; a plain sleep past the
    deadline is late (sim/lazywatch.py builds on both: tests/test_simtime.py)."""
    res = run("""
        c = SimClock()
        s = Scheduler(c)
        wakes = []
        def napper():
            while True:
                yield nap_ms(60000)          # far past its deadline, yet never late
                wakes.append(c.now_ms())
        def sleeper():
            while True:
                yield sleep_ms(60000)        # a plain sleep: late after its deadline
        s.spawn("napper", napper, deadline_ms=4000)
        s.run(until_ms=30000)
        seen = [s.may_feed(), s.overdue()]
        s.spawn("sleeper", sleeper, deadline_ms=4000)
        s.run(until_ms=130000)
        print(json.dumps([seen, wakes, s.may_feed(), s.overdue()]))
        """)
    assert res.last_json == [[True, []], [60000, 120000], False, ["sleeper"]]


def test_a_task_checks_in_explicitly_while_running(run):
    res = run("""
        c = SimClock()
        s = Scheduler(c)
        names = []
        def worker():
            yield sleep_ms(5000)
            names.append(s.current)
            s.checkin()            # e.g. between two slow steps
            yield sleep_ms(5000)
        s.spawn("worker", worker, deadline_ms=6000)
        s.run(until_ms=5000)
        a = s.may_feed()
        c.wait_until(9000)         # time passes without a resume
        print(json.dumps({"names": names, "a": a, "b": s.may_feed(), "current": s.current}))
        """)
    out = res.last_json
    assert out == {"names": ["worker"], "a": True, "b": True, "current": None}


def test_chunked_sleep_and_wait_keep_long_waiters_checked_in(run):
    res = run("""
        from schedutil import sleep_chunked, wait_chunked
        c = SimClock()
        s = Scheduler(c)
        ev = Event()
        done = []
        def eclipse():
            yield from sleep_chunked(s, 3600 * 1000)     # pieces of half its deadline
            done.append(("slept", c.now_ms()))
            v = yield from wait_chunked(s, ev)
            done.append(("event", c.now_ms(), v))
        s.spawn("eclipse", eclipse, deadline_ms=8000)
        fed = [0, 0]
        def watchdog():
            while True:
                fed[0 if s.may_feed() else 1] += 1
                yield sleep_ms(1000)
        s.spawn("watchdog", watchdog, priority=-1)
        def late_event():
            yield until_ms(5000 * 1000)
            ev.set("sun")
        s.spawn("late", late_event)
        s.run(until_ms=6000 * 1000)
        print(json.dumps({"done": done, "fed": fed}))
        """)
    out = res.last_json
    assert out["done"] == [["slept", 3600000], ["event", 5000000, "sun"]]
    assert out["fed"] == [6001, 0]


def test_several_schedulers_on_one_sim_clock_interleave_in_time_order(run):
    res = run("""
        from schedutil import run_many
        c = SimClock()
        log = []
        nodes = []
        for i, period in enumerate((300, 500, 700)):
            s = Scheduler(c)
            def make(i=i, period=period):
                while True:
                    log.append((c.now_ms(), i))
                    yield sleep_ms(period)
            s.spawn("beacon", make)
            nodes.append(s)
        run_many(c, nodes, until_ms=2100)
        print(json.dumps({"log": log, "now": c.now_ms()}))
        """)
    out = res.last_json
    times = [t for t, _ in out["log"]]
    assert times == sorted(times)
    for i, period in enumerate((300, 500, 700)):
        assert [t for t, n in out["log"] if n == i] == list(range(0, 2101, period))
    assert out["now"] == 2100
    # at the same instant the nodes run in list order
    assert [n for t, n in out["log"] if t == 2100] == [0, 2]


def test_kill_cancels_a_task_by_name_and_stop_ends_run(run):
    res = run("""
        c = SimClock()
        s = Scheduler(c)
        log = []
        ev = Event()
        def victim():
            try:
                while True:
                    yield sleep_ms(100)
            finally:
                log.append(("closed", c.now_ms()))
        def waiter():
            yield ev
            log.append("never")
        def killer():
            yield until_ms(550)
            log.append(("killed", s.kill("victim"), s.kill("waiter"), s.kill("nobody")))
            yield until_ms(800)
            s.stop()
            yield sleep_ms(1)
            log.append("not after stop")
        s.spawn("victim", victim)
        s.spawn("waiter", waiter)
        s.spawn("killer", killer)
        s.run()
        ev.set()
        print(json.dumps({"log": log, "now": c.now_ms(), "tasks": sorted(s.tasks),
                          "waiters": len(ev._waiters)}))
        """)
    out = res.last_json
    assert out["log"] == [["closed", 550], ["killed", True, True, False]]
    assert out["now"] == 800 and out["tasks"] == ["killer"] and out["waiters"] == 0


def test_a_task_that_yields_garbage_is_treated_as_a_crash(run):
    res = run("""
        c = SimClock()
        got = []
        s = Scheduler(c, on_crash=lambda name, exc, n: got.append((name, type(exc).__name__, n)))
        def wrong(what):
            def gen():
                yield what
            return gen
        s.spawn("int", wrong(1000))                    # not sleep_ms(1000)
        s.spawn("until", wrong(until_ms("noon")))
        s.spawn("sleep", wrong(sleep_ms(None)))
        s.spawn("wait", wrong(wait_for("flag", 10)))
        ticks = [0]
        def steady():
            while True:
                ticks[0] += 1
                yield sleep_ms(100)
        s.spawn("steady", steady)
        s.run(until_ms=500)
        print(json.dumps({"got": sorted(got), "ticks": ticks[0],
                          "states": sorted(t.state for t in s.tasks.values())}))
        """)
    assert res.last_json == {
        "got": [["int", "TypeError", 1], ["sleep", "TypeError", 1],
                ["until", "TypeError", 1], ["wait", "TypeError", 1]],
        "ticks": 6,
        "states": ["backoff"] * 4 + ["ready"],
    }


def test_schedulers_keep_no_shared_state(run):
    res = run("""
        c1, c2 = SimClock(), SimClock(start_ms=5000)
        s1, s2 = Scheduler(c1), Scheduler(c2)
        def idle():
            while True:
                yield sleep_ms(1000)
        s1.spawn("same", idle, deadline_ms=10)
        s2.spawn("same", idle, deadline_ms=10)   # same name, other scheduler: fine
        s1.run(until_ms=3500)
        print(json.dumps({"c1": c1.now_ms(), "c2": c2.now_ms(), "f1": s1.may_feed(),
                          "f2": s2.may_feed(), "n1": s1.next_wake_ms(), "n2": s2.next_wake_ms()}))
        """)
    assert res.last_json == {"c1": 3500, "c2": 5000, "f1": False, "f2": True,
                             "n1": 4000, "n2": 5000}


def test_real_clock_sleeps_in_time_order(run_mpy):
    res = run_mpy("""
        c = RealClock()
        s = Scheduler(c)
        log = []
        def sleeper(name, ms):
            def gen():
                yield sleep_ms(ms)
                log.append(name)
            return gen
        s.spawn("slow", sleeper("slow", 30))
        s.spawn("fast", sleeper("fast", 10))
        s.run()
        print(json.dumps({"log": log, "elapsed_at_least": c.now_ms() >= 30}))
        """)
    assert res.last_json == {"log": ["fast", "slow"], "elapsed_at_least": True}
