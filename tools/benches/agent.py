"""The agent in its scenario: the standard pipeline and the demo mission (pass,
standard, window and eclipse steps) run by the firmware compiled to .mpy under
the unix port against a real Console. Reports the wall time of a run, the
agent's bytes per event on the wire, and the lowest heap cap (-X heapsize) at
which each job still completes, and the primitives job's heap high-water
mark: the most heap still live after any scheduler round (--heap-watch), and
how many of REPEAT_N runs of the demo mission at the demo test's cap
(tests/test_agent_e2e.py) complete with no reset, and with no task crashed on
the way."""
import os
import tempfile
import time
from pathlib import Path

from tools import ROOT, upy
from tools.scenario import Ground, Node, load_job

# the caps tried, from generous to tight; the lowest that completes is reported
# (2 KiB steps around the demo's edge, 160K: near it a run's fate can turn on a step)
HEAP_CAPS_K = (512, 384, 320, 288, 256, 240, 224, 208, 192, 184, 176, 168, 164, 162, 160,
               158, 156, 152, 144, 136, 128)
# the demo test's cap, run this many times: near the edge a run's fate can turn on
# how its tasks interleave with the Console's answers
REPEAT_K = 160
REPEAT_N = 10


def _run(tmp, heap_k, mpy_dir, job="standard-pipeline.json", heap_watch=False):
    ground = Ground(tmp)
    try:
        dep = ground.deploy(load_job(job))
        node = Node(ground, tmp, heap="%dK" % heap_k if heap_k else None, mpy_dir=mpy_dir)
        t0 = time.monotonic()
        code, summary, _ = node.run(timeout=120, heap_watch=heap_watch)
        wall = time.monotonic() - t0
        ok = code == 0 and ground.status(dep) == "completed"
        if summary is not None:  # for the repeated runs: the kinds of event the job's stream holds
            summary["kinds"] = [e["type"] for e in ground.events(dep)] if ok else []
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
    with tempfile.TemporaryDirectory() as d:
        ok, _, summary = _run(Path(d), 512, mpy_dir, "demo-mission.json", heap_watch=True)
    if not ok or not summary.get("heap_peak"):
        raise RuntimeError("the primitives job did not complete: %r" % (summary,))
    figures.append({"name": "primitives job (demo mission): heap high-water mark, live after any "
                            "scheduler round (x64 unix port)",
                    "value": round(summary["heap_peak"] / 1024, 1), "unit": "KiB"})
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
    clean = calm = 0
    for _ in range(REPEAT_N):
        with tempfile.TemporaryDirectory() as d:
            ok, _, summary = _run(Path(d), REPEAT_K, mpy_dir, "demo-mission.json")
        if ok and summary["reboots"] == 0:
            clean += 1
            calm += "fault.detected" not in summary["kinds"]
    figures.append({"name": "demo mission at %dK, %d runs: completed with no reset / of them with no "
                            "task crashed (x64 unix port)" % (REPEAT_K, REPEAT_N),
                    "value": "%d / %d" % (clean, calm), "unit": "runs"})
    return figures
