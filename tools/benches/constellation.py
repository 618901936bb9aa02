"""Constellation planning speed (tools/planner/constellation.py): a seeded
20-step DAG on the 20 satellites of examples/fleets/shell-20.json over 24 h,
under CPython, in process: the contact plan, the sunlit intervals, the
assignment with its local search, the routes and alternates, and the
predicted fleet stream (the agents of the satellites that may run a step
flying the plan, tools/planner/fleetforecast.py); best of 5, with the
machine's load average beside it (the machine is shared), and the
assignment alone (stream=False) for comparison. The
size of the largest child's signed WorkloadSpec (the whole DAG with the
assignment, alternates and routes) for the train and that DAG, and the heap
it holds on the board once parsed (the unix port). And the
assignment's worst distance from the optimum over 60 seeded small DAGs
(exhaustive search, as tests/test_constellation_plan.py does for 20)."""
import itertools
import json
import math
import os
import random
import time

import fleetfile
import timeutil
from tools import ROOT
from tools.planner import normalise_job
from tools.planner import constellation as cp


def dag(n, seed=1, deadline_orbits=15):
    rng = random.Random(seed)
    steps = []
    for i in range(n):
        deps = sorted(rng.sample(range(i), min(i, rng.choice((0, 1, 1, 2))))) if i else []
        steps.append({"id": "s%d" % i, "compute_s": rng.choice((120, 300, 600, 900)),
                      "output_mb": rng.choice((1, 20, 200)),
                      "depends_on": ["s%d" % d for d in deps]})
    return {"name": "bench-%d" % n, "steps": steps, "policy": {"deadline_orbits": deadline_orbits}}


def _fleet(name):
    with open(os.path.join(ROOT, "examples", "fleets", name)) as f:
        return json.load(f)


def worst_ratio(seeds=60):
    doc = _fleet("train-4.json")
    t0 = timeutil.parse_iso(doc["epoch"])
    worst = 1.0
    for seed in range(seeds):
        rng = random.Random(seed)
        fleet = {"epoch": doc["epoch"], "fleet": doc["fleet"][:rng.choice((3, 4))]}
        job = dag(rng.choice((4, 5, 6)), seed=seed * 7 + 3, deadline_orbits=4)
        plan = cp.make_constellation_plan(fleet, job, t0, stream=False)
        sats = fleetfile.load(fleet)
        norm, order = normalise_job(job)
        by_id = dict((s["id"], s) for s in norm["steps"])
        model = cp._Model(sats, t0, t0 + plan["horizon_s"])
        aggs = [s["satellite_id"] for s in sats if s["role"] == "aggregator"]
        sinks = cp._aggregator_steps(norm["steps"], order)
        cands = [aggs if sid in sinks and aggs else [s["satellite_id"] for s in sats]
                 for sid in order]
        best = min(model.schedule(order, by_id, dict(zip(order, c)))[1]
                   for c in itertools.product(*cands))
        if best < math.inf:
            worst = max(worst, plan["metrics"]["critical_path_s"] / best)
    return worst


def workload_bytes(doc, job, plan):
    """The largest child WorkloadSpec of the plan, signed, as the Console sends
    it (tools/console/constellations.py; compact JSON): its text."""
    import signing
    from tools.console import constellations
    stored = dict(plan, id=plan["plan_id"], kind="constellation", job=job,
                  epoch=doc.get("epoch"), fleet_doc=doc["fleet"])
    sizes = []
    for sat in constellations.satellites_used(stored):
        spec = constellations.workload_spec(stored, {"id": "dep-0123456789abcdef",
                                                     "satellite_id": sat,
                                                     "parent_id": "dep-fedcba9876543210"})
        spec["server_time"] = "2026-03-08T00:00:00.000Z"
        spec = signing.sign(spec, "k" * 64, "2026-03-08T00:00:00Z", "0" * 24)
        sizes.append(json.dumps(spec, separators=(",", ":"), ensure_ascii=False))
    return max(sizes, key=len)


def board_heap(text):
    """Heap bytes the board holds once firmware/uplink.py has parsed and
    validated the workload (MicroPython unix port, -X heapsize=164K)."""
    import tempfile
    from tools import upy
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(text)
    try:
        r = upy.run_code("import gc, uplink\nbody = open(%r).read()\ngc.collect()\n"
                         "a = gc.mem_alloc()\nw, reason = uplink.load_workload(body)\n"
                         "gc.collect()\nprint(reason, gc.mem_alloc() - a)\n" % f.name,
                         heap="164K")
    finally:
        os.unlink(f.name)
    reason, held = r.stdout.split()
    if reason != "None":
        raise RuntimeError("the board refused the workload: %s" % reason)
    return int(held)


def run():
    doc = _fleet("shell-20.json")
    t0 = timeutil.parse_iso(doc.get("epoch") or "2026-03-08T00:00:00Z")
    job = dag(20)
    times = {True: [], False: []}
    loads = []
    for stream in (True, False):
        for _ in range(5):
            started = time.perf_counter()
            plan = cp.make_constellation_plan(doc, job, t0, hours=24, stream=stream)
            times[stream].append((time.perf_counter() - started) * 1000)
            loads.append(os.getloadavg()[0])
            if stream:
                streamed = plan
    plan = streamed
    m = plan["metrics"]
    ends = [e for e in plan["events"] if e["type"] in ("job.completed", "job.failed")]
    train = _fleet("train-4.json")
    train_plan = cp.make_constellation_plan(train, train["job"], timeutil.parse_iso(train["epoch"]))
    small = workload_bytes(train, train["job"], train_plan)
    big = workload_bytes(doc, job, plan)
    return [{"name": "constellation plan: 20-step DAG on 20 satellites, 24 h, stream included "
                     "(cpython, best of 5)", "value": round(min(times[True])), "unit": "ms"},
            {"name": "  its 5 runs, the machine's load (1-min average) meanwhile",
             "value": "%s ms; load %.1f-%.1f" % (" ".join("%.0f" % t for t in times[True]),
                                                 min(loads), max(loads)), "unit": ""},
            {"name": "  the assignment alone, no stream (best of 5)",
             "value": round(min(times[False])), "unit": "ms"},
            {"name": "  its span / satellites used / ISL transfers",
             "value": "%.0f s / %d / %d" % (m["critical_path_s"], m["satellites_used"],
                                            m["isl_transfers"]), "unit": ""},
            {"name": "  its predicted stream: events / satellites flown / the end",
             "value": "%d / %d / %s" % (len(plan["events"]),
                                        len(set(e["satellite_id"] for e in plan["events"])),
                                        ends[-1]["type"] if ends else "none"), "unit": ""},
            {"name": "a child's workload, signed: train-4 (5 steps)",
             "value": len(small), "unit": "bytes"},
            {"name": "  held on the board once parsed (unix port, 164K heap)",
             "value": board_heap(small), "unit": "bytes"},
            {"name": "a child's workload, signed: the 20-step DAG on shell-20",
             "value": len(big), "unit": "bytes"},
            {"name": "  held on the board once parsed (unix port, 164K heap)",
             "value": board_heap(big), "unit": "bytes"},
            {"name": "assignment vs exhaustive search, worst of 60 seeded DAGs (<= 6 steps, "
                     "<= 4 satellites)", "value": round((worst_ratio() - 1) * 100, 1),
             "unit": "% over the optimum"}] + fleet_runs()


def fleet_runs(campaign_runs=200):
    """The constellation role's figures: the train-4 job flown by its four
    agents, 20 satellites x 24 h with a 20-step job, and the seeded campaign."""
    import fleet
    from tools import fleetcampaign
    from tools.planner import fleetforecast
    rows = []
    doc = _fleet("train-4.json")
    world = fleet.FleetWorld(doc, hours=24)
    plan = cp.make_constellation_plan(doc, doc["job"], world.start)
    started = time.perf_counter()
    out = fleetforecast.run(world, plan, doc["job"])
    wall = time.perf_counter() - started
    ends = [e["type"] for e in out.merged() if e["type"] in ("job.completed", "job.failed")]
    rows.append({"name": "fleet forecast: train-4's job flown by its 4 agents in process "
                         "(cpython, %s)" % (ends[0] if ends else "not ended"),
                 "value": round(wall, 2), "unit": "s"})
    doc = _fleet("shell-20.json")
    world = fleet.FleetWorld(doc, hours=24)
    job = dag(20)
    plan = cp.make_constellation_plan(doc, job, world.start, hours=24)
    started = time.perf_counter()
    out = fleetforecast.run(world, plan, job, everyone=True)
    wall = time.perf_counter() - started
    ends = [e["type"] for e in out.merged() if e["type"] in ("job.completed", "job.failed")]
    rows.append({"name": "fleet forecast: 20 satellites x 24 h, a 20-step constellation job "
                         "(cpython, in process, %s)" % (ends[0] if ends else "not ended"),
                 "value": round(wall, 1), "unit": "s"})
    from tools import demo_fleet
    lines = []
    code, d = demo_fleet.run(echo=lines.append)
    rows.append({"name": "make demo-fleet: train-4's job on 4 MicroPython nodes, one clock, a real "
                         "Console, a failover (%s)" % d["status"],
                 "value": round(d["wall_s"], 1), "unit": "s"})
    rows += heap_rows(d)
    rows += campaign_rows("campaign constellation", fleetcampaign.run(runs=campaign_runs, seed=1))
    rows += node_runs()
    return rows


def campaign_rows(label, s):
    return [{"name": "%s, %d seeded runs: steps completed twice / events lost / duplicated / "
                     "unexplained" % (label, s["runs"]),
             "value": "%d / %d / %d / %d" % (s["completed_twice"], s["events_lost"],
                                             s["events_duplicated"], s["unexplained"]),
             "unit": ""},
            {"name": "  its outcomes (failovers, takeovers), wall; members (not lost) whose part never ended",
             "value": "%s (%d, %d), %.0f s; %d" % (
                 ", ".join("%s %d" % kv for kv in sorted(s["outcomes"].items())),
                 s["failovers"], s["takeovers"], s["wall_s"], s["parts_open"]), "unit": ""}]


def node_runs(campaign_runs=10):
    """The same on MicroPython nodes and a real Console: 20 satellites x 24 h with
    the 20-step job (every satellite's firmware, one clock through the ISL hub), and
    the campaign's first seeded runs."""
    import tempfile

    from tools import demo_fleet, fleetcampaign
    rows = []
    doc = _fleet("shell-20.json")
    doc["job"] = dag(20)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "shell-20-job.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        cpu0 = os.times()
        _, d = demo_fleet.run(path, workdir=os.path.join(tmp, "run"), fault=False, hours=24.0,
                              echo=lambda *a, **k: None)
        cpu1 = os.times()
    cpu = sum(cpu1[:4]) - sum(cpu0[:4])
    rows.append({"name": "20 satellites x 24 h with a 20-step constellation job, every agent under "
                         "MicroPython (.mpy), real Console, one clock: the fleet run's wall (%s, %d of %d "
                         "events as predicted)" % (d["status"], d["as_predicted"], d["predicted_n"]),
                 "value": round(d["fleet_wall_s"], 1), "unit": "s"})
    rows.append({"name": "  the same run, all of it (plan, forecast, run): wall / CPU",
                 "value": "%.1f / %.1f" % (d["wall_s"], cpu), "unit": "s"})
    rows += campaign_rows("campaign constellation on MicroPython nodes and a real Console",
                          fleetcampaign.run_nodes(runs=campaign_runs, seed=1))
    return rows


CAP_K = 160    # the single-satellite demo's heap cap (tests/test_agent_e2e.py)
ISSUE_K = CAP_K + 16   # issue #19: a satellite with its constellation role, at most 16K more


def clean(d, ref):
    """A fleet run completed as at the default heap: completed, every node
    done after one boot (no reset on the way), the same events as there."""
    return d["status"] == "completed" and \
        all(n.get("outcome") == "done" and n.get("boots") == 1 for n in d["nodes"]) and \
        (d["as_predicted"], d["extra"]) == (ref["as_predicted"], ref["extra"])


def lowest_clean_heap(ref, fault=True, start_k=ISSUE_K, step_k=4, top_k=236):
    """(clean at start_k?, the lowest heap cap in K at which train-4's job
    completes clean on its four nodes (x64 unix port, .mpy), or None):
    tried from the issue's line (single-satellite cap + 16K) down in 4K
    steps while clean, else up until clean. fault: the demo's brownout and
    failover (the victim's brown-out from sim/worldfaults.py), else the
    nominal job. ref: the same run at the fleet nodes' 512K."""
    import tempfile
    from tools import demo_fleet

    def fly(k):
        with tempfile.TemporaryDirectory(prefix="cstheap-") as tmp:
            return clean(demo_fleet.run(workdir=os.path.join(tmp, "demo"), heap="%dK" % k,
                                        fault=fault, echo=lambda *a, **kw: None)[1], ref)

    at_line = fly(start_k)
    k, lowest = start_k, start_k if at_line else None
    if at_line:
        while k - step_k >= CAP_K and fly(k - step_k):
            k -= step_k
            lowest = k
    else:
        while lowest is None and k + step_k <= top_k:
            k += step_k
            if fly(k):
                lowest = k
    return at_line, lowest


def heap_rows(demo_ref):
    import tempfile
    from tools import demo_fleet
    with tempfile.TemporaryDirectory(prefix="cstheap-") as tmp:
        nominal_ref = demo_fleet.run(workdir=os.path.join(tmp, "demo"), fault=False,
                                     echo=lambda *a, **kw: None)[1]
    rows = []
    for what, fault, ref in (("the demo (brownout, failover)", True, demo_ref),
                             ("the nominal job", False, nominal_ref)):
        at_line, lowest = lowest_clean_heap(ref, fault=fault)
        rows.append({"name": "demo-fleet heap (x64, .mpy), %s: clean at %dK, the single-satellite "
                             "cap + 16K (completed, 1 boot each, events as at 512K) / lowest clean "
                             "cap, 4K steps" % (what, ISSUE_K),
                     "value": "%s / %s" % ("yes" if at_line else "no",
                                           lowest if lowest is not None else "none <= 236"),
                     "unit": "KiB"})
    return rows


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
