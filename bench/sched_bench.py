"""Scheduler figures under MicroPython; prints one JSON line.
Run by tools/benches/scheduler.py (with lib/ on the module path)."""
import gc
import json
import time

gc.threshold(8192)  # FACTS.md: small threshold keeps allocation fast

from clock import RealClock, SimClock
from scheduler import Scheduler, sleep_ms

out = {}

# Heap held by one scheduler with three periodic tasks.
gc.collect()
before = gc.mem_alloc()
c = SimClock()
s = Scheduler(c)


def periodic(period):
    def task():
        while True:
            yield sleep_ms(period)
    return task


for p in (1000, 10000, 30000):
    s.spawn("p%d" % p, periodic(p), deadline_ms=2 * p)
gc.collect()
out["heap_bytes_3_tasks"] = gc.mem_alloc() - before

# Simulated time: 24 h of the 1 s, 10 s and 30 s tasks.
t0 = time.ticks_ms()
s.run(until_ms=24 * 3600 * 1000)
wall = time.ticks_diff(time.ticks_ms(), t0)
out["sim_24h_wall_ms"] = wall
out["sim_24h_switches"] = 86401 + 8641 + 2881

# Real clock: four tasks giving each other turns (bare yield).
N = 50000
c = RealClock()
s = Scheduler(c)


def spinner():
    for _ in range(N):
        yield


for i in range(4):
    s.spawn("spin%d" % i, spinner)
t0 = time.ticks_ms()
s.run()
out["real_switch_ms"] = time.ticks_diff(time.ticks_ms(), t0)
out["real_switches"] = 4 * (N + 1)
print(json.dumps(out))
