"""Simulated time changes how often the firmware wakes, never what it does:
the same short job, run by the real agent under the real MicroPython unix
port against a real Console, once on the real clock and once on the
simulated clock, gives the same event stream (docs/sim.md "Speed")."""
import json
import subprocess
import time

import pytest

from tools import upy
from tools.console import auth
from tools.scenario import Ground, Node, load_job
from tools.timefmt import iso, parse

RUN = """
import json, sys, time
import agentconfig, hal, scheduler, clock as clocks
from agent import Agent
from link import HttpLink
with open(sys.argv[1]) as f:
    cfg = agentconfig.make(json.load(f))
mode = sys.argv[2]
start = float(sys.argv[3])
if mode == "real":
    clock = clocks.RealClock()
    clock.sync(int(start))  # a board's clock, set to the run's start
else:
    clock = clocks.SimClock(start_epoch=start)
if mode == "stepped":
    clock.simulated = False  # a simulated clock the agent takes for a board's: every tick, every piece
# the hardware is faked (a sunlit, charged, always-connected bus): only hardware
sensors = hal.Sensors(lambda: 80.0, lambda: 20.0, lambda: False, lambda: True)
watchdog = hal.SimWatchdog(cfg["watchdog_timeout_ms"], clock=clock)
watchdog.arm()
link = HttpLink(cfg, agentconfig.FIRMWARE_VERSION)
agent = Agent(cfg, clock, sensors, link, cfg["storage_root"], watchdog=watchdog,
              reset_cause="power_on")
if clock.simulated:  # as sim/node.py runs it
    import lazywatch
    lazywatch.install(agent)
agent.boot()
sched = agent.sched
if len(sys.argv) > 4:  # this step stops checking in at its first slice (a blocked handler)
    orig = agent._run_step
    def run_step(job, step):
        gen = orig(job, step)
        if step["id"] != sys.argv[4]:
            return (yield from gen)
        yield next(gen)
        while True:
            yield scheduler.sleep_ms(3600 * 1000)
    agent._run_step = run_step
end = clock.now_ms() + 120000
expired = None
while clock.now_ms() < end:
    sched.run_due()
    if watchdog.expired(clock.now_ms()):
        expired = {"expired_ms": clock.now_ms(), "last_feed_ms": watchdog.last_feed_ms,
                   "stats": agent.stats, "overdue": sched.overdue()}
        break
    st = agent.state
    if st["job"] is None and st["done"] and not agent.journal.pending():
        break
    nxt = sched.next_wake_ms()
    clock.wait_until(nxt if nxt is not None else clock.now_ms() + 1000)
print(json.dumps(expired or {"ms": clock.now_ms(), "stats": agent.stats, "feeds": watchdog.feeds}))
"""

JOB = {"name": "short", "steps": [
    {"id": "a", "compute_s": 4, "output_mb": 0.01, "checkpoint_interval_s": 1},
    {"id": "b", "compute_s": 2, "output_mb": 0.01, "depends_on": ["a"]}]}


@pytest.fixture
def ground(tmp_path):
    g = Ground(tmp_path)
    yield g
    g.close()


def run(ground, tmp_path, mode, start, hang=None):
    agent_id = "sat-%s%s" % (mode, "-hang" if hang else "")
    key = auth.create_key(ground.db, "agent", agent_id, rate_limited=False,
                          satellite_id="25544")["key"]
    root = tmp_path / agent_id
    root.mkdir()
    cfg = {"agent_id": agent_id, "api_url": ground.url, "api_key": key, "satellite_id": "25544",
           "storage_root": str(root), "time_sync": False}
    t0 = time.monotonic()
    script = tmp_path / "run.py"
    script.write_text(RUN)
    # the config as a file: an argument of 256 characters or more kills this
    # unix port at start ("FATAL: uncaught NLR")
    cfg_path = tmp_path / (agent_id + ".json")
    cfg_path.write_text(json.dumps(cfg))
    args = [str(cfg_path), mode, str(start)] + ([hang] if hang else [])
    res = upy.run_script(str(script), args=args, timeout=120, stdin="")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert "error" not in out, res.stdout[-3000:]
    return out, time.monotonic() - t0


def stream(ground, dep, start):
    evs = ground.events(dep)
    return [(e["type"], e.get("step_id"), e["payload"].get("percent"), e["payload"].get("reason"),
             parse(e["timestamp"]) - start) for e in evs], [e["seq"] for e in evs]


def test_the_simulated_and_the_real_clock_run_of_a_short_job_give_the_same_event_stream(
        ground, tmp_path):
    start = time.time() // 1 + 2
    plan_start = iso(start)
    dep_sim = ground.deploy(JOB, start=plan_start)
    sim, sim_wall = run(ground, tmp_path, "sim", start)
    assert ground.status(dep_sim) == "completed"
    start = time.time() // 1 + 2
    dep_real = ground.deploy(JOB, start=iso(start))
    real, real_wall = run(ground, tmp_path, "real", start)
    assert ground.status(dep_real) == "completed"
    s_sim, seq_sim = stream(ground, dep_sim, parse(plan_start))
    s_real, seq_real = stream(ground, dep_real, start)
    assert [e[:4] for e in s_sim] == [e[:4] for e in s_real]
    assert seq_sim == seq_real
    # the same moments, to within the real clock's own jitter (exchanges take wall time)
    for a, b in zip(s_sim, s_real):
        assert abs(a[4] - b[4]) <= 1.5, (a, b)
    # the real clock fed the watchdog every second; the simulated one counts the
    # same ticks as fed while waking far less often
    assert sim["stats"]["feeds_refused"] == real["stats"]["feeds_refused"] == 0
    # (the ticks skipped since the simulated supervisor last woke are counted
    # at its next wake-up, at most a watchdog period later)
    assert 0 <= real["stats"]["feeds"] - sim["stats"]["feeds"] <= 8
    assert sim["feeds"] < real["feeds"]
    assert sim_wall < real_wall / 3


def test_a_task_that_stops_checking_in_starves_the_watchdog_at_the_same_moment_as_on_a_board(
        ground, tmp_path):
    """The simulated supervisor skips the ticks at which no task can be late;
    a step that stops checking in still gets the watchdog refused at the
    first tick after its deadline, with the same last feed and the same
    expiry as the agent that wakes at every tick."""
    out = {}
    for mode in ("sim", "stepped"):
        # each run its own start, 2 s ahead of the wall clock: the first run may take
        # longer than that on a loaded machine, and the second must not start late
        start = time.time() // 1 + 2
        dep = ground.deploy(JOB, start=iso(start))
        out[mode], _ = run(ground, tmp_path, mode, start, hang="a")
        assert ground.status(dep) in ("running", "accepted", "pending", "deployed"), ground.status(dep)
    sim, stepped = out["sim"], out["stepped"]
    assert sim["overdue"] == stepped["overdue"] == ["execute"]
    assert sim["expired_ms"] == stepped["expired_ms"]
    assert sim["last_feed_ms"] == stepped["last_feed_ms"]
    assert sim["stats"]["feeds"] == stepped["stats"]["feeds"]
    assert sim["stats"]["feeds_refused"] == stepped["stats"]["feeds_refused"] > 0


def _demo_stream(tmp_path, faults):
    g = Ground(tmp_path)
    try:
        dep = g.deploy(load_job("demo-mission.json"))
        node = Node(g, tmp_path)
        argv, env = node.argv()
        if faults:  # a node with a fault injector (no fault in it) takes no link-down hint
            path = tmp_path / "no-faults.json"
            path.write_text("[]")
            argv += ["--faults", str(path)]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert g.status(dep) == "completed"
        evs = g.events(dep)
        # the battery and the temperature to 1e-9: the physics is integrated up to each
        # reading, and fewer readings round differently in the last digits
        return [(e["seq"], e["type"], e.get("step_id"), e["timestamp"],
                 json.dumps({k: round(v, 9) if isinstance(v, float) else v
                             for k, v in e["payload"].items() if k != "deployment_id"},
                            sort_keys=True)) for e in evs]
    finally:
        g.close()


def test_a_node_that_naps_while_the_link_is_down_reports_what_one_that_looks_every_time_does(
        tmp_path):
    """The demo's 4.6 h hold long stretches without a station in view, which
    a node naps through (agent._look, the satellite's link_down_ms); with the
    hint off (any --faults script turns it off) every look happens. The
    Console receives the same events, at the same simulated times, with the
    same payloads (to the last digits of a float)."""
    (tmp_path / "napping").mkdir()
    (tmp_path / "looking").mkdir()
    napping = _demo_stream(tmp_path / "napping", faults=False)
    looking = _demo_stream(tmp_path / "looking", faults=True)
    assert len(napping) > 40
    assert napping == looking
