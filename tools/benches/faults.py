"""Fault campaigns at a moderate size (tools/faults_cli.py): for each, faults
injected, detected, recovered, jobs completed, events lost and duplicated at
the Console, wrong-state executions, wall time; the mean recovery time
(reset -> the step computing again) in simulated and in real time; and the
constellation campaign's 1,000 seeded runs in order in this process versus as
Dask tasks on a local cluster of 2 worker processes (tools/campaigndask.py):
wall time each (the cluster's start included), the speed-up, and whether the
two summaries agree in every figure and every run's outcome and faults."""
import tempfile
import time

from tools import faults_cli as fc

SIZES = (("power-cut", None, {"torn": True}), ("bitflip", None, {}), ("crash", 1, {}),
         ("link", 5, {}), ("mixed", 10, {}), ("hang", 1, {}))
FIGURES = (("injected", "faults"), ("detected", "faults"), ("recovered", "faults"),
           ("jobs_completed", "jobs"), ("events_lost", "events"), ("events_duplicated", "events"),
           ("wrong_state", "executions"), ("wall_s", "s"))


DASK_RUNS, DASK_WORKERS = 1000, 2


def dask_rows(runs=DASK_RUNS, workers=DASK_WORKERS, seed=1):
    from tools import campaigndask, fleetcampaign
    fleetcampaign.scripts(1, seed)   # the fleet and its plan made before either clock starts
    t0 = time.perf_counter()
    serial = fleetcampaign.run(runs=runs, seed=seed)
    serial_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with campaigndask.client(workers=workers) as c:
        dask = fleetcampaign.run(runs=runs, seed=seed, client=c)
    dask_s = time.perf_counter() - t0

    def figures(s):
        return dict((k, v) for k, v in s.items() if k not in ("wall_s", "executed_on"))

    label = "constellation x %d runs:" % runs
    return [{"name": "%s serial, in process (wall)" % label, "value": round(serial_s, 1),
             "unit": "s"},
            {"name": "%s Dask, %d local workers (wall)" % (label, workers),
             "value": round(dask_s, 1), "unit": "s"},
            {"name": "%s speed-up on Dask" % label, "value": round(serial_s / dask_s, 2),
             "unit": "x"},
            {"name": "%s identical figures, serial = Dask" % label,
             "value": "yes" if figures(serial) == figures(dask) else "no", "unit": "checked"}]


def run():
    out = dask_rows()
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
