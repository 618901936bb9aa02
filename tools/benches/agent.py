"""The agent in its scenario: the standard pipeline and the demo mission (pass,
standard, window and eclipse steps) run by the firmware compiled to .mpy under
the unix port against a real Console. Reports the wall time of a run, the
agent's bytes per event on the wire, and the lowest heap cap (-X heapsize) at
which each job still completes -- the heap high-water mark, to a step."""
import os
import tempfile
import time
from pathlib import Path

from tools import ROOT, upy
from tools.scenario import Ground, Node, load_job

# the caps tried, from generous to tight; the lowest that completes is reported
HEAP_CAPS_K = (512, 384, 320, 288, 256, 240, 224, 208, 192, 176, 160, 144, 128)


def _run(tmp, heap_k, mpy_dir, job="standard-pipeline.json"):
    ground = Ground(tmp)
    try:
        dep = ground.deploy(load_job(job))
        node = Node(ground, tmp, heap="%dK" % heap_k if heap_k else None, mpy_dir=mpy_dir)
        t0 = time.monotonic()
        code, summary, _ = node.run(timeout=120)
        wall = time.monotonic() - t0
        ok = code == 0 and ground.status(dep) == "completed"
        return ok, wall, summary
    finally:
        ground.close()


def run():
    mpy_dir = upy.compile_portable(os.path.join(ROOT, "build", "mpy"))
    figures = []
    with tempfile.TemporaryDirectory() as d:
        ok, wall, summary = _run(Path(d), None, mpy_dir)
    if not ok:
        raise RuntimeError("the demo scenario did not complete: %r" % (summary,))
    stats = summary["stats"]
    figures.append({"name": "demo job, 4.6 simulated hours: wall time (.mpy, default heap)",
                    "value": round(wall, 2), "unit": "s"})
    figures.append({"name": "agent bytes per event on the wire (HTTP body, batches)",
                    "value": round(stats["event_bytes"] / max(1, stats["events_sent"]), 1),
                    "unit": "B/event"})
    for job, label in (("standard-pipeline.json", "standard pipeline"),
                       ("demo-mission.json", "primitives job (demo mission)")):
        lowest = None
        for cap in HEAP_CAPS_K:
            with tempfile.TemporaryDirectory() as d:
                ok, _, _ = _run(Path(d), cap, mpy_dir, job)
            if not ok:
                break
            lowest = cap
        figures.append({"name": "lowest heap cap at which the %s completes (x64 unix port)" % label,
                        "value": lowest if lowest is not None else -1, "unit": "KiB"})
    return figures
