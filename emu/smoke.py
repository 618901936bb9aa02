# Board-side smoke scenario, run on a (virtual or emulated) board after
# `umbra deploy` with:  mpremote connect PORT resume run emu/smoke.py
#
# Prints one JSON line per check and a last line {"smoke": "pass"|"fail", ...}.
# Runs on the simulated clock, so it needs no `time` module (the qemu port has
# none), and keeps the agent's store in a folder of the working directory
# (a RAM disk on the qemu port, see lib/ramfs.py).
import gc
import json

RESULTS = {"passed": 0, "failed": 0}


def report(check, ok, **detail):
    RESULTS["passed" if ok else "failed"] += 1
    detail["check"] = check
    detail["ok"] = ok
    gc.collect()
    try:
        detail["mem_free"] = gc.mem_free()
    except AttributeError:
        pass
    print(json.dumps(detail))


def error_text(exc):
    return "%s: %s" % (type(exc).__name__, exc)


def deployed_modules():
    with open("manifest.json") as f:
        files = json.load(f)["files"]
    names = []
    for path in files:
        if path.startswith("lib/") and path.endswith(".mpy"):
            names.append(path[4:-4])
    names.sort()
    return names


def check_imports():
    try:
        names = deployed_modules()
    except Exception as exc:
        report("manifest", False, error=error_text(exc))
        return
    report("manifest", True, modules=len(names))
    import sys
    for name in names:
        try:
            __import__(name)
            report("import", True, module=name)
        except Exception as exc:
            report("import", False, module=name, error=error_text(exc))
        # Forget it again: the smoke must fit a ~140 KB heap, one module at a time.
        sys.modules.pop(name, None)


def check_integrity():
    try:
        import manifest
        problems = manifest.verify("")
        report("integrity", not problems, problems=[list(p) for p in problems])
    except Exception as exc:
        report("integrity", False, error=error_text(exc))


def check_scheduler():
    try:
        from clock import SimClock
        from scheduler import Scheduler, sleep_ms
        clock = SimClock()
        sched = Scheduler(clock)
        ticks = {"fast": 0, "slow": 0}

        def ticker(name, period_ms, count):
            def task():
                for _ in range(count):
                    yield sleep_ms(period_ms)
                    ticks[name] += 1
            return task

        sched.spawn("fast", ticker("fast", 100, 20), priority=2)
        sched.spawn("slow", ticker("slow", 500, 4), priority=1)
        sched.run(until_ms=5000)
        ok = ticks == {"fast": 20, "slow": 4}
        report("scheduler", ok, ticks=ticks, now_ms=clock.now_ms())
    except Exception as exc:
        report("scheduler", False, error=error_text(exc))


class NullLink:
    """No Console in the emulator: every request finds the link down."""

    def call(self, method, path, body=None):
        return None, "no link in the emulator"
        yield  # a generator, as the agent's tasks expect


def _ensure_dir(path):
    import os
    try:
        os.mkdir(path)
    except OSError:
        pass


def check_agent_boot(sim_ms=60000):
    try:
        import agentconfig
        import hal
        from agent import Agent
        from clock import SimClock
        root = "smoke_store"
        _ensure_dir(root)
        cfg = agentconfig.make({"agent_id": "sat-emu", "storage_root": root})
        clock = SimClock()
        agent = Agent(cfg, clock, hal.Sensors(), NullLink(), root)
        agent.boot()
        agent.sched.run(until_ms=sim_ms)
        state = agent.state
        report("agent", state.get("boot_count", 0) >= 1, boot_count=state.get("boot_count"),
               tasks=len(agent.sched.tasks), now_ms=clock.now_ms())
    except Exception as exc:
        report("agent", False, error=error_text(exc))


def main():
    check_integrity()
    check_imports()
    check_scheduler()
    check_agent_boot()
    print(json.dumps({"smoke": "pass" if RESULTS["failed"] == 0 else "fail",
                      "passed": RESULTS["passed"], "failed": RESULTS["failed"]}))


main()
