"""Store figures under MicroPython; prints one JSON line.
Run by tools/benches/store.py: `store_bench.py ROOT` (a directory, or `lfs`
for littlefs on a RAM block device), with store.mpy on the module path."""
import gc
import json
import sys
import time

gc.threshold(8192)  # FACTS.md: small threshold keeps allocation fast

gc.collect()
before_import = gc.mem_alloc()
from store import Store
gc.collect()
out = {"heap_module_bytes": gc.mem_alloc() - before_import}

root = sys.argv[1]
if root == "lfs":
    from faultfs import mount_ram_littlefs
    mount_ram_littlefs("/lfs", 512, 256)
    root = "/lfs/bench"

APPENDS = 300
record = {"seq": 0, "type": "step.progress", "deployment_id": "d-0001", "percent": 25}

gc.collect()
before = gc.mem_alloc()
st = Store(root, max_log_bytes=65536).open()
gc.collect()
out["heap_store_bytes"] = gc.mem_alloc() - before

t0 = time.ticks_us()
for i in range(APPENDS):
    record["seq"] = i
    st.append(record)
out["append_us"] = time.ticks_diff(time.ticks_us(), t0) / APPENDS
out["log_bytes"] = st.log_bytes()

# recovery: scan and verify the whole journal
t0 = time.ticks_us()
st = Store(root, max_log_bytes=65536).open()
n = 0
for _ in st.records():
    n += 1
out["open_and_replay_ms"] = time.ticks_diff(time.ticks_us(), t0) / 1000
out["replayed"] = n

# snapshots of a ~1 KiB state
state = {"seq": 300, "outbox": [{"seq": i, "type": "step.progress"} for i in range(24)]}
SNAPS = 20
t0 = time.ticks_us()
for i in range(SNAPS):
    state["seq"] = i
    st.snapshot(state)
out["snapshot_ms"] = time.ticks_diff(time.ticks_us(), t0) / 1000 / SNAPS
out["snapshot_bytes"] = len(json.dumps(state))
print(json.dumps(out))
