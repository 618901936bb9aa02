"""Fault campaigns at a moderate size (tools/faults_cli.py): for each, faults
injected, detected, recovered, jobs completed, events lost and duplicated at
the Console, wrong-state executions, wall time; and the mean recovery time
(reset -> the step computing again) in simulated and in real time."""
import tempfile

from tools import faults_cli as fc

SIZES = (("power-cut", None, {"torn": True}), ("bitflip", None, {}), ("crash", 1, {}),
         ("link", 5, {}), ("mixed", 10, {}), ("hang", 1, {}))
FIGURES = (("injected", "faults"), ("detected", "faults"), ("recovered", "faults"),
           ("jobs_completed", "jobs"), ("events_lost", "events"), ("events_duplicated", "events"),
           ("wrong_state", "executions"), ("wall_s", "s"))


def run():
    out = []
    for name, runs, kw in SIZES:
        s = fc.run_campaign(name, runs=runs, seed=1, **kw)
        for key, unit in FIGURES:
            out.append({"name": "%s %s" % (name, key.replace("_", " ")), "value": s[key],
                        "unit": unit})
        out.append({"name": "%s runs" % name, "value": s["runs"], "unit": "runs"})
        sw = s.get("storage_sweep")
        if sw and "flips" in sw:
            for key in ("flips", "detected", "masked", "silent"):
                out.append({"name": "bitflip storage sweep %s" % key, "value": sw[key],
                            "unit": "flips"})
    lab = fc.Lab(tempfile.mkdtemp(prefix="umbra-faults-bench-"))
    try:
        rt = fc.recovery_times(lab, 3, fc.Rand(1))
    finally:
        lab.close()
    out.append({"name": "recovery reset->step resumed (simulated)", "value": rt["sim_s"], "unit": "s"})
    out.append({"name": "recovery reset->step resumed (in-process, wall)", "value": rt["sim_wall_s"],
                "unit": "s"})
    out.append({"name": "recovery hang->step resumed (real-time watchdog %.0f s)" % rt["real_watchdog_s"],
                "value": rt["real_s"], "unit": "s"})
    return out
