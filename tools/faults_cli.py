"""`umbra faults --campaign NAME [--runs N] [--seed S] [--json]`: fault-injection
campaigns against the real firmware (sim/node.py under the MicroPython unix
port, on the simulated clock) and a real Console on loopback. Every run is a
fresh agent on a fresh deployment; the Console is the judge:

  events lost        seq gaps per agent + events the node made but the Console
                     never got (once the node is idle) + a required event
                     missing (job.accepted, the job's end, a done step's step.completed)
  events duplicated  job.accepted / job end / step.completed more than once per deployment
  wrong-state        compute while the agent's own state forbids it (safe mode,
                     no running step, dependencies not done: seen by the injector
                     at the bus) + step events out of order at the Console (after
                     the step completed, after the job ended, before a dependency)

Campaigns (sim/faults.py has the fault model):
  power-cut  every write index of a complete two-step job, one run each (exhaustive)
  bitflip    RAM flips in the agent's TMR cells during jobs, stored-bit flips +
             reset during jobs, and a store-level sweep of thousands of flips
  hang       a step that never yields, under the real-time watchdog parent
             (NodeProcess, as `umbra agent run --sim`): reset, reset, quarantine
  crash      an exception raised inside every task, three times per run
  link       30 % of requests dropped, plus duplicated, corrupted and delayed ones
  mixed      all of the above at random
  constellation  a fleet running one constellation job: satellites lost,
             drained, overheated, cut off, reset, links lost (tools/fleetcampaign.py)
"""
import json
import os
import shutil
import sys
import tempfile
import time

import click

from tools import ROOT, upy
from tools.console import deployments
from tools.scenario import Ground, Node
from tools.timefmt import parse

START = "2008-09-20T13:15:00Z"
START_S = 0  # world time 0 is START
TASKS = ("supervisor", "scrub", "poll", "report", "telemetry", "execute")
# the job every campaign runs: two short onboard steps, the second a real handler
SMALL_JOB = {"name": "fault campaign", "steps": [
    {"id": "a", "compute_s": 60, "output_mb": 0.5},
    {"id": "b", "compute_s": 60, "output_mb": 0.2, "handler": "crc32", "depends_on": ["a"]}]}
# a longer one for faults spread in time: ~25 simulated minutes of compute
LONG_JOB = {"name": "fault campaign (long)", "steps": [
    {"id": "a", "compute_s": 600, "output_mb": 2, "checkpoint_interval_s": 120},
    {"id": "b", "compute_s": 600, "output_mb": 1, "handler": "stats", "depends_on": ["a"]},
    {"id": "c", "compute_s": 300, "output_mb": 0.5, "handler": "crc32", "depends_on": ["b"]}]}
# the job is accepted at the first pass (13:21:09 = world 369 s)
JOB_T0 = 370
HANG_CFG = {"watchdog_timeout_ms": 2000, "task_deadline_ms": 1500, "slice_s": 1}
# the hang campaign: step a hangs; step c does not depend on it; a next job follows
HANG_JOB = {"name": "fault campaign (hang)", "steps": [
    {"id": "a", "compute_s": 60, "output_mb": 0.5},
    {"id": "c", "compute_s": 60, "output_mb": 0.2}]}
NEXT_JOB = {"name": "the next job", "steps": [{"id": "x", "compute_s": 60, "output_mb": 0.1}]}
FIGURES = ("runs", "injected", "detected", "recovered", "jobs_completed", "jobs_failed",
           "events_lost", "events_duplicated", "wrong_state", "wall_s")


class Rand:
    """Host-side campaign planning (seeded; the node has its own generator)."""

    def __init__(self, seed):
        import random
        self.r = random.Random(seed)

    def __getattr__(self, name):
        return getattr(self.r, name)


class Lab:
    """One Console for a campaign; a fresh agent + deployment per run."""

    def __init__(self, workdir, seed=0, heap=None):
        self.workdir = workdir
        self.ground = Ground(_P(workdir))
        self.seed = seed
        self.heap = heap
        self.n = 0

    def close(self):
        self.ground.close()

    def node(self, cfg=None):
        self.n += 1
        return Node(self.ground, _P(self.workdir), agent_id="sat-f%d" % self.n, cfg=cfg,
                    heap=self.heap)

    def run(self, job, script, seed=None, cfg=None, until_s=20 * 3600, timeout=300):
        """Deploy `job`, run a fresh node with `script` until idle; returns the
        run's record (see judge())."""
        dep = self.ground.deploy(job)
        node = self.node(cfg)
        path = str(node.dir / "faults.json")
        with open(path, "w") as f:
            json.dump(script, f)
        seed = self.seed if seed is None else seed
        t0 = time.monotonic()
        summary, lines, code = _run_node(node, path, seed, until_s, timeout)
        if code == 4 and _clear_safe_mode(self.ground, node.agent_id):
            # the agent went to safe mode: the ground looks, clears it, the job goes on
            summary2, lines2, code = _run_node(node, path, seed, 2 * until_s, timeout)
            lines += lines2
            summary = summary2 or summary
        wall = time.monotonic() - t0
        rec = judge(self.ground, node.agent_id, dep, summary, lines)
        rec["exit"] = code
        rec["wall_s"] = wall
        _settle(self.ground, dep)
        return rec


def _P(path):
    import pathlib
    return pathlib.Path(path)


def _run_node(node, faults_path, seed, until_s, timeout):
    argv, env = node.argv(until=_iso(until_s), until_idle=True)
    i = argv.index("--hours")
    argv[i + 1] = "48"
    argv += ["--faults", faults_path, "--seed", str(seed)]
    import subprocess
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
        out, code = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out, code = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) \
            else (exc.stdout or ""), -9
    lines = _json_lines(out)
    summary = None
    for doc in lines:
        if "node" in doc and "exit" in doc:
            summary = doc
    if summary is None and code not in (0, 4):
        lines.append({"node_error": out[-2000:], "exit": code})
    return summary, lines, code


def _json_lines(out):
    docs = []
    for ln in out.splitlines():
        if ln.startswith("{"):
            try:
                docs.append(json.loads(ln))
            except ValueError:
                pass
    return docs


def _iso(world_s):
    from tools.timefmt import iso
    return iso(parse(START) + world_s)


def _clear_safe_mode(ground, agent_id):
    kinds = [e["type"] for e in ground.agent_events(agent_id)]
    if "agent.safe_mode" not in kinds:
        return False
    r = ground.http.post("/api/agents/%s/clear-safe-mode" % agent_id)
    return r.status_code < 300


def _settle(ground, dep):
    """Whatever a run left unfinished must not be handed to the next agent."""
    if ground.status(dep) in ("pending", "dispatched", "running"):
        try:
            deployments.cancel(ground.db, dep)
        except Exception:
            pass


# --- the judge -------------------------------------------------------------------------

def judge(ground, agent_id, dep, summary, lines):
    """Figures of one run, measured at the Console (plus what the node says
    it injected and saw)."""
    seqs = ground.all_seqs(agent_id)
    evs = ground.events(dep)
    health = ground.agent_events(agent_id)
    status = ground.status(dep)
    kinds = [e["type"] for e in evs]
    lost = (seqs[-1] - len(seqs)) if seqs else 0
    if seqs and seqs[0] != 1:
        lost += 0  # counted by the gap above (seq[-1] - len)
    fr = (summary or {}).get("faults") or {}
    # everything the node made has left it: what the Console lacks is lost
    idle = summary is not None and summary.get("outbox") == 0
    if idle and summary.get("seq", 0) > (seqs[-1] if seqs else 0):
        lost += summary["seq"] - (seqs[-1] if seqs else 0)
    dup = 0
    terminal = [k for k in kinds if k in ("job.completed", "job.failed")]
    for k in ("job.accepted",):
        dup += max(0, kinds.count(k) - 1)
    dup += max(0, len(terminal) - 1)
    done_steps = {}
    for e in evs:
        if e["type"] == "step.completed":
            done_steps[e["step_id"]] = done_steps.get(e["step_id"], 0) + 1
    for sid in done_steps:
        dup += done_steps[sid] - 1
    if status in ("completed", "failed") and evs:
        if "job.accepted" not in kinds and not (kinds == ["job.failed"]):
            lost += 1
        if not terminal:
            lost += 1
    if status == "completed":
        job_steps = _job_steps(ground, dep)
        for sid in job_steps:
            if job_steps[sid]["location"] == "onboard" and sid not in done_steps:
                lost += 1
    wrong = fr.get("wrong_state", 0) + _order_violations(ground, dep, evs)
    injected = _injected(fr, lines)
    boots = [e for e in health if e["type"] == "agent.booted"]
    fault_det = [e for e in evs + health if e["type"] == "fault.detected"]
    fault_rec = [e for e in evs + health if e["type"] == "fault.recovered"]
    resets_seen = max(0, len(boots) - 1)
    clean = lost == 0 and dup == 0 and wrong == 0 and status in ("completed", "failed")
    link = fr.get("link") or {}
    link_noticed = link.get("drop", 0) + link.get("corrupt", 0)
    return {"agent": agent_id, "deployment": dep, "status": status,
            "injected": injected, "injected_by_kind": _by_kind(fr, lines),
            "detected": len(fault_det) + resets_seen + link_noticed,
            "recovered": len(fault_rec) + ((resets_seen + link_noticed) if clean else 0),
            "events_lost": lost, "events_duplicated": dup, "wrong_state": wrong,
            "resets": fr.get("resets", 0), "writes": fr.get("writes"),
            "recovery_sim_ms": fr.get("recovery_sim_ms"), "recovery_wall_ms": fr.get("recovery_wall_ms"),
            "recoveries": fr.get("recoveries", 0), "skipped": fr.get("skipped") or {},
            "seu": [e["payload"].get("action") for e in fault_rec if e["payload"].get("kind") == "seu"],
            "quarantined": sum(1 for e in fault_rec if e["payload"].get("action") == "step_quarantined"),
            "safe_mode": sum(1 for e in health if e["type"] == "agent.safe_mode"),
            "link": link, "errors": [d for d in lines if "node_error" in d][:1]}


def _job_steps(ground, dep):
    row = ground.db.query("SELECT plan_id FROM deployments WHERE id = ?", (dep,))
    plan = deployments.get_plan(ground.db, row[0]["plan_id"]) if row else None
    steps = {}
    for s in ((plan or {}).get("job") or {}).get("steps") or ():
        steps[s["id"]] = {"location": s.get("location", "onboard") if s.get("location") != "either"
                          else "onboard", "depends_on": s.get("depends_on") or []}
    for d in (plan or {}).get("placement_decisions") or ():
        if d.get("step_id") in steps and d.get("location") in ("onboard", "ground"):
            steps[d["step_id"]]["location"] = d["location"]
    return steps


def _order_violations(ground, dep, evs):
    """Step events that should not exist in this order."""
    steps = _job_steps(ground, dep)
    completed = set()
    ended = False
    bad = 0
    for e in sorted(evs, key=lambda e: e["seq"]):
        t, sid = e["type"], e.get("step_id")
        if t in ("job.completed", "job.failed"):
            ended = True
            continue
        if not t.startswith("step.") or sid is None:
            continue
        if ended or sid in completed:
            bad += 1
        elif t in ("step.started", "step.resumed", "step.progress"):
            for d in (steps.get(sid) or {}).get("depends_on", ()):
                if steps.get(d, {}).get("location") == "onboard" and d not in completed:
                    bad += 1
                    break
        if t == "step.completed":
            completed.add(sid)
    return bad


def _by_kind(fr, lines):
    out = dict(fr.get("injected") or {})
    # a process killed by the real-time watchdog never prints its summary:
    # count its injections from their lines
    seen = {}
    for d in lines:
        if "fault" in d and isinstance(d["fault"], str):
            seen[d["fault"]] = seen.get(d["fault"], 0) + 1
    for k in seen:
        if k != "link" and seen[k] > out.get(k, 0):
            out[k] = seen[k]
    return out


def _injected(fr, lines):
    return sum(_by_kind(fr, lines).values())


# --- campaigns ------------------------------------------------------------------------------

UNREACHED_TRIES = 5


def campaign_power_cut(lab, runs, rng, progress, torn=False, job=None):
    """Every write index of a complete job: cut there, reboot, finish; check."""
    job = job or SMALL_JOB
    # The count varies by a few between runs: the execute task and a report
    # in flight interleave by how fast the Console answers (a batch of 5
    # events or of 4 and then 1). Take the longest of two; a run that ends
    # before its cut index is run again, so every index is cut.
    writes = max(lab.run(job, [])["writes"] or 0 for _ in range(2))
    indices = list(range(1, writes + 1))
    if runs is not None:
        indices = indices[:runs]
    plan = [(n, None) for n in indices]
    if torn:
        plan += [(n, 5) for n in indices]
    recs = []
    unreached = 0
    for n, k in progress(plan):
        fault = {"kind": "power_cut", "write": n}
        if k:
            fault["torn"] = k
        for _ in range(UNREACHED_TRIES):
            rec = lab.run(job, [fault])
            if rec["injected"] or (rec["writes"] or 0) >= n:
                break
        else:
            unreached += 1
        rec["write"] = n
        recs.append(rec)
    return recs, {"writes_per_job": writes, "write_indices": len(indices), "torn": bool(torn),
                  "unreached": unreached}


def plan_bitflip(rng, runs, sweep=8000, ram_per_run=50, storage_per_run=2):
    plan = []
    for i in range(runs):
        script = []
        for _ in range(ram_per_run):
            script.append({"kind": "flip_ram", "at_s": JOB_T0 + rng.uniform(0, 1500)})
        for _ in range(storage_per_run):
            script.append({"kind": "flip_storage", "at_s": JOB_T0 + rng.uniform(0, 1500)})
        plan.append({"job": LONG_JOB, "script": script, "seed": rng.randrange(1 << 30)})
    return plan, {"sweep": (sweep, rng.randrange(1 << 30))} if sweep else {}


def campaign_bitflip(lab, runs, rng, progress, **kw):
    plan, extra = plan_bitflip(rng, runs, **kw)
    recs = run_plan(lab, plan, progress)
    return recs, _storage_sweep_extra(lab, extra)


def storage_sweep(lab, flips, seed):
    """Store-level: flip one bit at a time in a copy of a mid-job journal and
    boot it (the journal's open) under MicroPython."""
    node = lab.node(cfg={"max_log_bytes": 4096})  # small: slots and logs both on flash
    dep = lab.ground.deploy(LONG_JOB)
    argv, env = node.argv(until=_iso(JOB_T0 + 1200), until_idle=False)
    import subprocess
    subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    root = str(node.dir / "flash")
    code = ("import faults, json\nprint(json.dumps(faults.storage_sweep(%r, %d, %d, max_log_bytes=4096)))"
            % (root, flips, seed))
    res = upy.run_code(code, timeout=600)
    _settle(lab.ground, dep)
    docs = _json_lines(res.stdout)
    shutil.rmtree(root + ".sweep", ignore_errors=True)
    if not docs:
        return {"error": res.stdout[-500:] + res.stderr[-500:]}
    return docs[-1]


def campaign_hang(lab, runs, rng, progress, max_restarts=8):
    """A step that never yields, under the real-time watchdog parent."""
    from tools.agent_cli import NodeProcess
    recs = []
    for i in progress(range(runs)):
        dep = lab.ground.deploy(HANG_JOB)
        nxt = lab.ground.deploy(NEXT_JOB)
        node = lab.node(cfg=HANG_CFG)
        path = str(node.dir / "faults.json")
        with open(path, "w") as f:
            json.dump([{"kind": "hang", "step": "a", "mode": "spin"}], f)
        argv, env = node.argv(until=_iso(20 * 3600), until_idle=True)
        argv += ["--faults", path, "--seed", str(rng.randrange(1 << 30))]
        lines = []
        stamps = []

        def echo(text, lines=lines, stamps=stamps):
            if text.startswith("{"):
                try:
                    doc = json.loads(text)
                except ValueError:
                    return
                lines.append(doc)
                stamps.append((time.monotonic(), doc))

        t0 = time.monotonic()
        proc = NodeProcess(argv, env, watchdog_s=HANG_CFG["watchdog_timeout_ms"] / 1000, echo=echo,
                           cause_arg="--reset-cause")
        code = proc.supervise(max_restarts=max_restarts)
        summary = None
        for d in lines:
            if "node" in d and "exit" in d:
                summary = d
        rec = judge(lab.ground, node.agent_id, dep, summary, lines)
        rec["exit"] = code
        rec["wall_s"] = time.monotonic() - t0
        rec["watchdog_kills"] = proc.resets["watchdog"]
        rec["real_recovery_s"] = _real_recoveries(stamps, proc)
        rec["detected"] += 0
        # the rest of the job still ran, and so did the next job
        done = [e["step_id"] for e in lab.ground.events(dep) if e["type"] == "step.completed"]
        rec["rest_of_job_ran"] = "c" in done and "a" not in done
        rec["next_job"] = lab.ground.status(nxt)
        recs.append(rec)
        _settle(lab.ground, dep)
        _settle(lab.ground, nxt)
    return recs, {"watchdog_timeout_ms": HANG_CFG["watchdog_timeout_ms"],
                  "rest_of_job_ran": all(r["rest_of_job_ran"] for r in recs),
                  "next_jobs_completed": sum(1 for r in recs if r["next_job"] == "completed")}


def _real_recoveries(stamps, proc):
    """Wall seconds from each hang to the next boot's first compute (or the
    step's quarantine when it never computes again)."""
    out = []
    hang_t = None
    for t, d in stamps:
        if d.get("fault") == "hang":
            hang_t = t
        elif hang_t is not None and ("resumed" in d or d.get("reset") is not None):
            out.append(round(t - hang_t, 3))
            hang_t = None
    return out


def recovery_times(lab, runs, rng):
    """Mean recovery time, reset -> the step computing again: in simulated
    time (an in-process reset, the node's REBOOT_MS included) and in real
    time (a step that spins once, killed by the real-time watchdog parent,
    restarted from its store)."""
    from tools.agent_cli import NodeProcess
    sim = []
    wall = []
    for i in range(runs):
        rec = lab.run(LONG_JOB, [{"kind": "reset", "at_s": JOB_T0 + 30 + rng.uniform(0, 500)}],
                      seed=rng.randrange(1 << 30))
        if rec["recovery_sim_ms"] is not None:
            sim.append(rec["recovery_sim_ms"] / 1000.0)
            wall.append(rec["recovery_wall_ms"] / 1000.0)
    real = []
    for i in range(runs):
        dep = lab.ground.deploy(SMALL_JOB)
        node = lab.node(cfg=HANG_CFG)
        path = str(node.dir / "faults.json")
        with open(path, "w") as f:
            json.dump([{"kind": "hang", "step": "a", "mode": "spin", "once": True}], f)
        argv, env = node.argv(until=_iso(20 * 3600), until_idle=True)
        argv += ["--faults", path, "--seed", str(i)]
        stamps = []

        def echo(text, stamps=stamps):
            if text.startswith("{"):
                try:
                    stamps.append((time.monotonic(), json.loads(text)))
                except ValueError:
                    pass

        proc = NodeProcess(argv, env, watchdog_s=HANG_CFG["watchdog_timeout_ms"] / 1000, echo=echo,
                           cause_arg="--reset-cause")
        proc.supervise(max_restarts=3)
        real += _real_recoveries(stamps, proc)
        _settle(lab.ground, dep)

    def mean(xs):
        return round(sum(xs) / len(xs), 3) if xs else None

    return {"sim_s": mean(sim), "sim_wall_s": mean(wall), "real_s": mean(real),
            "real_watchdog_s": HANG_CFG["watchdog_timeout_ms"] / 1000, "samples": [len(sim), len(real)]}


def plan_crash(rng, runs):
    """An exception inside every task: three per run at random moments."""
    plan = []
    for r in range(runs):
        for task in TASKS:
            script = [{"kind": "raise", "task": task, "at_s": JOB_T0 + rng.uniform(0, 1200)}
                      for _ in range(3)]
            plan.append({"job": LONG_JOB, "script": script, "seed": rng.randrange(1 << 30),
                         "tag": {"task": task}})
    return plan, {"tasks": list(TASKS)}


def campaign_crash(lab, runs, rng, progress):
    plan, extra = plan_crash(rng, runs)
    return run_plan(lab, plan, progress), extra


LINK_FAULT = {"kind": "link", "at_s": 0, "drop": 0.30, "dup": 0.10, "corrupt": 0.10,
              "delay": 0.05, "delay_ms": 500}


def plan_link(rng, runs, link=None):
    return ([{"job": LONG_JOB, "script": [dict(link or LINK_FAULT)], "seed": rng.randrange(1 << 30)}
             for _ in range(runs)], {"link": dict(link or LINK_FAULT)})


def campaign_link(lab, runs, rng, progress, link=None):
    plan, extra = plan_link(rng, runs, link)
    return run_plan(lab, plan, progress), extra


def mixed_script(rng, writes=60):
    span = 1500
    s = [{"kind": "reset", "at_s": JOB_T0 + rng.uniform(0, span)}]
    s.append({"kind": "power_cut", "write": rng.randint(1, writes)})
    for _ in range(5):
        s.append({"kind": "flip_ram", "at_s": JOB_T0 + rng.uniform(0, span)})
    s.append({"kind": "flip_storage", "at_s": JOB_T0 + rng.uniform(0, span)})
    s.append({"kind": "raise", "task": rng.choice(TASKS), "at_s": JOB_T0 + rng.uniform(0, span)})
    s.append({"kind": "brownout", "at_s": JOB_T0 + rng.uniform(0, span), "drop": 0.3})
    sensor = rng.choice(["battery", "temperature", "eclipse", "link"])
    s.append({"kind": "sensor", "sensor": sensor, "mode": rng.choice(["stuck", "range", "fail"]),
              "at_s": JOB_T0 + rng.uniform(0, span), "for_s": rng.uniform(30, 600)})
    s.append({"kind": "link", "at_s": 0, "drop": 0.1, "dup": 0.05, "corrupt": 0.05, "delay": 0.05,
              "delay_ms": 500})
    rng.shuffle(s)
    return s


def plan_mixed(rng, runs):
    plan = []
    for _ in range(runs):
        script = mixed_script(rng)
        plan.append({"job": LONG_JOB, "script": script, "seed": rng.randrange(1 << 30)})
    return plan, {}


def campaign_mixed(lab, runs, rng, progress):
    plan, extra = plan_mixed(rng, runs)
    return run_plan(lab, plan, progress), extra


def run_plan(lab, plan, progress):
    """A planned campaign's runs in order in one Lab; each run's record."""
    return [_planned(lab, p) for p in progress(plan)]


def _planned(lab, p):
    """One planned run (its job, script and seed) in `lab`; its record, tagged."""
    rec = lab.run(p["job"], p["script"], seed=p["seed"])
    rec.update(p.get("tag") or {})
    return rec


def lab_run(i, p, heap=None):
    """Run i of a planned campaign in a Lab of its own (a Dask task): a fresh Console
    and folder, made here and removed after, so a run flown again after its worker
    died starts clean; its agent has the serial run's id (sat-f<i+1>)."""
    workdir = tempfile.mkdtemp(prefix="umbra-faults-run-%d-" % i)
    try:
        lab = Lab(workdir, heap=heap)
        lab.n = i
        try:
            return _planned(lab, p)
        finally:
            lab.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _storage_sweep_extra(lab, extra):
    """bitflip: the store-level sweep after its runs (its flips and seed in the plan)."""
    if "sweep" in extra:
        flips, seed = extra.pop("sweep")
        extra["storage_sweep"] = storage_sweep(lab, flips, seed)
    return extra


CAMPAIGNS = {"power-cut": (campaign_power_cut, None), "bitflip": (campaign_bitflip, 10),
             "hang": (campaign_hang, 1), "crash": (campaign_crash, 1),
             "link": (campaign_link, 10), "mixed": (campaign_mixed, 20)}
# the campaigns whose runs are drawn first (plan_*: every run's job, script and seed, in
# order from the campaign's one generator) and so can be Dask tasks, one Lab each
PLANS = {"bitflip": plan_bitflip, "crash": plan_crash, "link": plan_link, "mixed": plan_mixed}


def summarise(name, recs, extra, wall):
    out = {"campaign": name, "runs": len(recs)}
    for key in ("injected", "detected", "recovered", "events_lost", "events_duplicated",
                "wrong_state"):
        out[key] = sum(r[key] for r in recs)
    out["jobs_completed"] = sum(1 for r in recs if r["status"] == "completed")
    out["jobs_failed"] = sum(1 for r in recs if r["status"] == "failed")
    out["wall_s"] = round(wall, 2)
    by_kind = {}
    for r in recs:
        for k, v in r["injected_by_kind"].items():
            by_kind[k] = by_kind.get(k, 0) + v
    out["injected_by_kind"] = by_kind
    rec_sim = [r["recovery_sim_ms"] for r in recs if r.get("recovery_sim_ms") is not None]
    rec_wall = [r["recovery_wall_ms"] for r in recs if r.get("recovery_wall_ms") is not None]
    out["mean_recovery_sim_s"] = round(sum(rec_sim) / len(rec_sim) / 1000, 3) if rec_sim else None
    out["mean_recovery_wall_ms"] = round(sum(rec_wall) / len(rec_wall), 1) if rec_wall else None
    skipped = {}
    for r in recs:
        skipped.update(r.get("skipped") or {})
    out["skipped"] = skipped
    out["quarantined"] = sum(r["quarantined"] for r in recs)
    out["safe_mode"] = sum(r["safe_mode"] for r in recs)
    out["bad_runs"] = [{k: r.get(k) for k in ("agent", "status", "exit", "events_lost",
                                              "events_duplicated", "wrong_state", "write", "task",
                                              "errors")}
                       for r in recs if r["events_lost"] or r["events_duplicated"] or r["wrong_state"]
                       or r["status"] not in ("completed", "failed")][:10]
    out.update(extra)
    return out


def run_campaign(name, runs=None, seed=0, progress=None, workdir=None, heap=None, client=None,
                 **kw):
    """Run one campaign; returns its summary dict (FIGURES and details). `client`: a
    distributed.Client whose workers run a planned campaign's runs (PLANS), each in
    a Lab of its own (tools/campaigndask.py); the figures are the serial run's."""
    fn, default_runs = CAMPAIGNS[name]
    if runs is None:
        runs = default_runs
    rng = Rand(seed)
    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="umbra-faults-")
    progress = progress or (lambda it: it)
    t0 = time.monotonic()
    lab = None
    try:
        if client is None:
            lab = Lab(workdir, seed=seed, heap=heap)
            recs, extra = fn(lab, runs, rng, progress, **kw)
        else:
            from tools import campaigndask
            plan, extra = PLANS[name](rng, runs, **kw)
            recs = campaigndask.map_runs(client, lab_run, [(i, p, heap) for i, p in enumerate(plan)],
                                         progress, name=name)
            if "sweep" in extra:  # the store-level sweep: here, after the runs
                lab = Lab(workdir, seed=seed, heap=heap)
                lab.n = len(plan)
                _storage_sweep_extra(lab, extra)
    finally:
        if lab is not None:
            lab.close()
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    out = summarise(name, recs, extra, time.monotonic() - t0)
    if client is not None:
        out["executed_on"] = campaigndask.where(client)
    return out


def print_summary(s, echo=click.echo):
    echo("campaign %s: %d runs, %.1f s%s" % (s["campaign"], s["runs"], s["wall_s"],
                                            " (%s)" % s["executed_on"] if s.get("executed_on")
                                            else ""))
    rows = [("faults injected", s["injected"]), ("  by kind", _kinds(s["injected_by_kind"])),
            ("detected", s["detected"]), ("recovered", s["recovered"]),
            ("jobs completed", "%d (failed %d)" % (s["jobs_completed"], s["jobs_failed"])),
            ("events lost", s["events_lost"]), ("events duplicated", s["events_duplicated"]),
            ("wrong-state executions", s["wrong_state"]), ("wall time", "%.1f s" % s["wall_s"])]
    if s.get("mean_recovery_sim_s") is not None:
        rows.append(("mean recovery (reset -> step resumed)", "%.2f s simulated, %.1f ms wall"
                     % (s["mean_recovery_sim_s"], s["mean_recovery_wall_ms"])))
    if s.get("quarantined"):
        rows.append(("steps quarantined", s["quarantined"]))
    if s.get("safe_mode"):
        rows.append(("safe-mode entries", s["safe_mode"]))
    if s.get("storage_sweep"):
        sw = s["storage_sweep"]
        rows.append(("storage sweep", ", ".join("%s %s" % (k, sw[k]) for k in sorted(sw))))
    if s.get("writes_per_job"):
        rows.append(("write indices cut", "%d of %d per job%s" % (
            s["write_indices"], s["writes_per_job"], " (clean and torn)" if s["torn"] else "")))
        if s.get("unreached"):
            rows.append(("cut never reached (job ended first, 5 tries)", s["unreached"]))
    for k, why in sorted((s.get("skipped") or {}).items()):
        rows.append(("not injected: " + k, why))
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        echo("  %-*s  %s" % (width, label, value))
    for bad in s["bad_runs"]:
        echo("  ! %s" % json.dumps(bad))


def _kinds(d):
    return ", ".join("%s %d" % (k, d[k]) for k in sorted(d)) or "-"


def _on_dask(campaign, scheduler, workers, **kw):
    """campaign(client=..., **kw) on the given scheduler or a local cluster."""
    import contextlib

    from tools import campaigndask
    from tools.clierrors import InputError, Unreachable
    with contextlib.ExitStack() as stack:
        try:
            c = stack.enter_context(campaigndask.client(scheduler, workers))
        except (OSError, TimeoutError) as exc:
            raise Unreachable("the Dask scheduler %s cannot be reached: %s"
                              % (scheduler or "(local cluster)", exc))
        except ValueError as exc:  # not an address Dask can parse
            raise InputError("--scheduler %s: %s" % (scheduler, exc))
        return campaign(client=c, **kw)


@click.command()
@click.option("--campaign", "name", required=True,
              type=click.Choice(sorted(list(CAMPAIGNS) + ["constellation"])),
              help="Which campaign to run.")
@click.option("--runs", default=None, type=click.IntRange(1, None),
              help="Runs (power-cut: the first N write indices; crash: rounds over every task).")
@click.option("--seed", default=0, type=int, help="Seed: the same seed replays the same faults.")
@click.option("--torn", is_flag=True, help="power-cut: also a torn write at every index.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--keep", default=None, type=click.Path(file_okay=False),
              help="Keep the Console database and node folders here.")
@click.option("--nodes", is_flag=True,
              help="constellation: every satellite's firmware under MicroPython, a real Console, "
                   "the ISL hub (~40 s a run), instead of the fleet forecast in process.")
@click.option("--dask", "use_dask", is_flag=True,
              help="Run the seeded runs as Dask tasks on a local cluster of this machine's cores "
                   "(the default for constellation, bitflip, crash, link and mixed without --nodes "
                   "or --keep; the figures are the serial run's).")
@click.option("--serial", is_flag=True,
              help="Run the seeded runs one after another in this process (always so for "
                   "power-cut, hang, --nodes and --keep).")
@click.option("--workers", default=None, type=click.IntRange(1, None),
              help="The local Dask cluster's worker processes (implies --dask; "
                   "default: this machine's cores).")
@click.option("--scheduler", default=None, metavar="tcp://HOST:8786",
              help="Run the seeded runs on this Dask scheduler's workers "
                   "(`dask scheduler`, `dask worker tcp://HOST:8786`).")
def faults(name, runs, seed, torn, as_json, keep, nodes, use_dask, serial, workers, scheduler):
    """Run a fault-injection campaign against the firmware and a real Console."""
    asked = bool(use_dask or workers or scheduler)
    capable = (name in PLANS or name == "constellation") and not nodes and not keep
    if asked and serial:
        raise click.BadParameter("--serial runs in this process: no Dask cluster with it",
                                 param_hint="--serial")
    on_dask = capable and not serial  # a local cluster by default, where the runs can be tasks
    if asked and not capable:
        raise click.BadParameter(
            "Dask runs the constellation, bitflip, crash, link and mixed campaigns, without "
            "--nodes or --keep (power-cut and hang run in order: their runs depend on a "
            "reference run, or on the real-time watchdog)",
            param_hint="--dask/--workers/--scheduler")
    if workers and scheduler:
        raise click.BadParameter("--workers sizes the local cluster; a --scheduler has its own",
                                 param_hint="--workers")
    kw = {"torn": True} if torn and name == "power-cut" else {}
    if torn and name != "power-cut":
        raise click.BadParameter("--torn is for the power-cut campaign", param_hint="--torn")
    if nodes and name != "constellation":
        raise click.BadParameter("--nodes is for the constellation campaign", param_hint="--nodes")
    if keep:
        try:
            os.makedirs(keep, exist_ok=True)
        except OSError as exc:
            from tools.clierrors import InputError
            raise InputError("cannot make --keep folder %s: %s" % (keep, exc.strerror or exc))

    def progress(items):
        if not hasattr(items, "__len__"):
            items = list(items)
        if not sys.stderr.isatty():  # a log: a line at every tenth of the runs done
            step = max(1, len(items) // 10)
            for n, item in enumerate(items, 1):
                yield item
                if n % step == 0 or n == len(items):
                    click.echo("%s: %d/%d runs done" % (name, n, len(items)), err=True)
            return
        with click.progressbar(items, label="%s" % name, file=sys.stderr,
                               show_pos=True) as bar:
            for item in bar:
                yield item

    if name == "constellation":  # a fleet: tools/fleetcampaign.py
        from tools import fleetcampaign
        if nodes:
            s = fleetcampaign.run_nodes(runs=runs or 4, seed=seed, progress=progress, workdir=keep)
        elif on_dask:
            s = _on_dask(fleetcampaign.run, scheduler, workers, runs=runs or 20, seed=seed,
                         progress=progress)
        else:
            s = fleetcampaign.run(runs=runs or 20, seed=seed, progress=progress)
        if as_json:
            click.echo(json.dumps(s, indent=2, sort_keys=True))
        else:
            fleetcampaign.print_summary(s, click.echo)
        sys.exit(1 if s["completed_twice"] or s["events_lost"] or s["events_duplicated"]
                 or s["unexplained"] else 0)
    if on_dask:
        s = _on_dask(run_campaign, scheduler, workers, name=name, runs=runs, seed=seed,
                     progress=progress, **kw)
    else:
        s = run_campaign(name, runs=runs, seed=seed, progress=progress, workdir=keep, **kw)
    if as_json:
        click.echo(json.dumps(s, indent=2, sort_keys=True))
    else:
        print_summary(s)
    bad = s["events_lost"] or s["events_duplicated"] or s["wrong_state"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":  # pragma: no cover
    faults()
