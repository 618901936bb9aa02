"""`umbra faults --campaign constellation`: seeded faults against a fleet
running one constellation job (tools/planner/fleetforecast.py: every
member's unchanged agent on one simulated clock with the fleet's ISL
network). Each run injects one or two of

    loss        a satellite's computer stops for good in the middle of the job
    drain       a satellite's battery drops to 5-12 % (failover: battery)
    heat        a satellite overheats to 80-90 degC (failover: thermal)
    link_loss   the link between two members is down for 2-20 minutes
    partition   a satellite is cut off from all the others for 5-40 minutes
    reset       a satellite's computer resets (often just after a handoff)

at a time inside the job's span, on a satellite the plan uses, and judges
the fleet's streams:

    completed twice   a step whose highest epoch completed more than once
                      (what the Console would count twice: must be 0)
    events lost       a gap in a member's seqs, or a done step without its
                      constellation.step_completed
    events duplicated a member's seq twice, or job.completed / job.failed
                      more than once in the fleet
    unexplained       a run that did not complete with no fault that could
                      have stopped it (a partial with no fault on the failed
                      step's satellites, a part the ground ended on a
                      satellite that was not lost, or a job that never ended)
    parts left open   members (not lost) whose part never ended (no
                      constellation.satellite_complete: the parent deployment
                      would stay running until the ground's end)
    ground's ends     parts the Console ends past the job's deadline and its
                      grace (tools/console/constellations.py end_overdue): a
                      job no member ended (its closer lost after its last
                      step, before its downlink) reads as the Console's
                      parent would, `partial` (or `failed`), not `unfinished`
"""
import collections
import functools
import json
import os
import random
import time

from tools import ROOT
from tools.planner import constellation, fleetforecast

FLEET = os.path.join(ROOT, "examples", "fleets", "train-4.json")
KINDS = ("loss", "drain", "heat", "link_loss", "partition", "reset")
SPAN_S = (600, 3600)  # faults land in this part of the job's first orbit (s after the start)


def script(rng, sats):
    faults = []
    for _ in range(rng.choice((1, 1, 2))):
        kind = rng.choice(KINDS)
        sat = rng.choice(sats)
        at = rng.randint(*SPAN_S)
        if kind == "loss":
            faults.append({"kind": "loss", "satellite": sat, "at_s": at})
        elif kind == "drain":
            faults.append({"kind": "drain", "satellite": sat, "at_s": at,
                           "soc": round(rng.uniform(0.05, 0.12), 3)})
        elif kind == "heat":
            faults.append({"kind": "heat", "satellite": sat, "at_s": at,
                           "temperature_c": round(rng.uniform(80, 90), 1)})
        elif kind == "link_loss":
            other = rng.choice([s for s in sats if s != sat])
            faults.append({"kind": "link_loss", "pair": [sat, other], "from_s": at,
                           "to_s": at + rng.randint(120, 1200)})
        elif kind == "partition":
            faults.append({"kind": "partition", "satellite": sat, "from_s": at,
                           "to_s": at + rng.randint(300, 2400)})
        else:
            faults.append({"kind": "reset", "satellite": sat, "at_s": at})
            if rng.random() < 0.5:  # and a handoff under way: drain the owner just before
                faults.append({"kind": "drain", "satellite": rng.choice(sats), "at_s": at - 3,
                               "soc": 0.08})
    return faults


def _record(faults):
    return {"completed_twice": 0, "events_lost": 0, "events_duplicated": 0, "failovers": 0,
            "takeovers": 0, "ground_ended": 0, "outcome": "unfinished", "explained": True,
            "faults": faults}


def _lost(faults):
    return set(f["satellite"] for f in faults if f["kind"] == "loss")


def _stream(rec, merged, last):
    """What the fleet's merged stream says (into rec): steps completed twice at
    their highest epoch, failovers and takeovers, the job's ends. The job's end
    that counts is the one from the owner of its last step at that step's
    highest epoch (as the Console counts a step's completion: fencing); an end
    from a satellite fenced off the last step (its claim superseded: a closer
    cut off past the deadline while its substitute ended the job) is `fenced`,
    a second end from the counting owner a duplicate. Returns the job's ends,
    the counted one first."""
    from tools.console.constellations import EPOCH_TYPES, GROUND, _owner, epoch_of
    by_step = collections.defaultdict(list)
    ends = []
    top, owner = 0, None
    for e in merged:
        t = e["type"]
        if e.get("agent_id") == GROUND:
            continue  # the Console's own end of a part (judged apart): not the fleet's
        if t == "constellation.step_completed":
            by_step[e["step_id"]].append(e["payload"]["epoch"])
        elif t == "constellation.failover":
            rec["takeovers" if e["payload"]["reason"] == "silent" else "failovers"] += 1
        elif t in ("job.completed", "job.failed"):
            ends.append(e)
        if t in EPOCH_TYPES and (e.get("step_id") or e["payload"].get("step_id")) == last:
            if epoch_of(e) > top:
                top, owner = epoch_of(e), _owner(e)
    rec["completed_twice"] = sum(1 for ep in by_step.values() if ep.count(max(ep)) > 1)
    counted = [e for e in ends if owner is None or e.get("satellite_id") == owner]
    fenced = [e for e in ends if e not in counted]
    if not counted:  # no end from the last step's owner: the first end stands (none fenced)
        counted, fenced = ends, []
    rec["ends_fenced"] = len(fenced)
    rec["events_duplicated"] += max(0, len(counted) - 1)
    return counted + fenced


def ground_view(out, cplan, faults):
    """{satellite: its child's status} as the forecast's stand-in Console has it
    once the job's deadline and the ground's grace have passed (its clock runs
    on after the fleet's run: a Console outlives it): a member's events in
    order, through the Console's own rule (deployments.next_status) -- those it
    sent, and, unless it was lost, those still in its outbox (down at its next
    pass, inside the grace) -- then the ground's end (constellations.end_overdue):
    a part that never ended, failed. Returns (statuses, satellites the ground ended)."""
    from tools.console import constellations, deployments
    lost = _lost(faults)
    statuses, grounded = {}, []
    for sat in constellations.satellites_used(cplan):
        console = out.consoles.get(sat)
        status = "dispatched" if console is not None and console.handed_at is not None \
            else "pending"
        evs = console.events if sat in lost else out.events.get(sat, ())
        for e in evs:
            status = deployments.next_status(status, e["type"], child=True)
        if status not in constellations.FINISHED:
            status = "failed"
            grounded.append(sat)
        statuses[sat] = status
    return statuses, grounded


def judge(out, cplan, faults):
    """One run's figures."""
    from tools.console import constellations
    rec = _record(faults)
    lost = _lost(faults)
    rec["parts_open"] = sum(1 for sat, st in out.state.items() if st is not None and sat not in lost)
    ends = _stream(rec, out.merged(), cplan["steps"][-1]["step_id"])
    for sat, evs in out.events.items():
        seqs = [e["seq"] for e in evs]
        rec["events_duplicated"] += len(seqs) - len(set(seqs))
        stored = sorted(out.consoles[sat]._stored | set(seqs) | set(out.unsent.get(sat, ())))
        if stored:
            rec["events_lost"] += stored[-1] - stored[0] + 1 - len(stored)
        done_here = set(e["step_id"] for e in evs if e["type"] == "step.completed")
        told = set(e["step_id"] for e in evs if e["type"] == "constellation.step_completed")
        rec["events_lost"] += len(done_here - told)
    statuses, grounded = ground_view(out, cplan, faults)
    rec["ground_ended"] = len(grounded)
    # the job's end as the ground has it: a lost satellite's end still in its outbox never lands
    ends = [e for e in ends if e["satellite_id"] not in lost or
            e["seq"] in out.consoles[e["satellite_id"]]._stored]
    if ends:
        rec["outcome"] = "completed" if ends[0]["type"] == "job.completed" else \
            ends[0]["payload"].get("status") or "failed"
    elif grounded:  # no member ended the job: the ground does, as the parent then reads
        rec["outcome"] = constellations.parent_status(list(statuses.values()))
    if rec["outcome"] != "completed":
        rec["explained"] = _explained_end(cplan, faults, ends, grounded)
    return rec


@functools.lru_cache(maxsize=1)
def _setup():
    """The campaign's fleet, its plan, and the satellites the plan may use: made
    once per process (a Dask worker too); no run changes them."""
    import fleet
    with open(FLEET) as f:
        doc = json.load(f)
    world = fleet.FleetWorld(doc, hours=24)
    cplan = constellation.make_constellation_plan(doc, doc["job"], world.start)
    sats = sorted(set(s["satellite"] for s in cplan["steps"]) |
                  set(a for s in cplan["steps"] for a in s["alternates"]))
    return doc, cplan, sats


def _crashed(faults, exc):
    """A run whose fleet crashed (an agent crashed or reset by itself): the worst outcome."""
    rec = _record(faults)
    rec.update(outcome="crashed", explained=False, error="%s: %s" % (type(exc).__name__, exc))
    return rec


def _totals(name, recs, seed, wall):
    """The campaign's summary from its runs' figures."""
    out = {"campaign": name, "runs": len(recs), "seed": seed, "wall_s": round(wall, 2),
           "fleet": os.path.relpath(FLEET, ROOT)}
    for key in ("completed_twice", "events_lost", "events_duplicated", "failovers", "takeovers",
                "ends_fenced", "ground_ended"):
        out[key] = sum(r.get(key, 0) for r in recs)
    out["parts_open"] = sum(r.get("parts_open", 0) for r in recs)
    out["outcomes"] = dict(collections.Counter(r["outcome"] for r in recs))
    out["injected_by_kind"] = dict(collections.Counter(f["kind"] for r in recs for f in r["faults"]))
    out["unexplained"] = sum(1 for r in recs if not r["explained"])
    out["bad_runs"] = [r for r in recs if r["completed_twice"] or r["events_lost"] or
                       r["events_duplicated"] or not r["explained"] or r.get("parts_open")][:10]
    out["per_run"] = [[r["outcome"], r["faults"]] for r in recs]
    return out


def scripts(runs, seed):
    """Every run's faults, drawn in sequence from one random.Random(seed): run i's
    script is the same however the runs are then flown (in order, or as Dask tasks)."""
    rng = random.Random(seed)
    sats = _setup()[2]
    return [script(rng, sats) for _ in range(runs)]


def fly(faults):
    """One run: the fleet flies the job with `faults`, judged. Its figures depend on
    `faults` alone (a fresh world; the plan is never changed): a Dask task."""
    import fleet
    doc, cplan, sats = _setup()
    world = fleet.FleetWorld(doc, hours=24)
    try:
        out = fleetforecast.run(world, cplan, doc["job"], faults=faults)
    except Exception as exc:  # an agent crashed or reset by itself: the worst outcome
        return _crashed(faults, exc)
    return judge(out, cplan, faults)


def run(runs=20, seed=0, progress=None, client=None):
    """The campaign's summary: totals and the runs that went wrong. `client`: a
    distributed.Client whose workers fly the runs (tools/campaigndask.py); the
    figures are those of the serial run (results merged in run order)."""
    plan = scripts(runs, seed)
    t0 = time.monotonic()
    if client is None:
        progress = progress or (lambda it: it)
        recs = [fly(plan[i]) for i in progress(range(runs))]
        executed_on = "serial, in process"
    else:
        from tools import campaigndask
        recs = campaigndask.map_runs(client, fly, [(f,) for f in plan], progress,
                                     name="constellation")
        executed_on = campaigndask.where(client)
    out = _totals("constellation", recs, seed, time.monotonic() - t0)
    out["executed_on"] = executed_on
    return out


def print_summary(s, echo):
    echo("campaign %s (%s): %d runs, seed %d, %.1f s%s" % (
        s["campaign"], s["fleet"], s["runs"], s["seed"], s["wall_s"],
        " (%s)" % s["executed_on"] if s.get("executed_on") else ""))
    rows = [("faults injected", ", ".join("%s %d" % kv for kv in sorted(s["injected_by_kind"].items()))),
            ("outcomes", ", ".join("%s %d" % kv for kv in sorted(s["outcomes"].items()))),
            ("failovers (handed over or failed)", s["failovers"]),
            ("takeovers of a silent owner", s["takeovers"]),
            ("steps completed twice (highest epoch)", s["completed_twice"]),
            ("events lost", s["events_lost"]), ("events duplicated", s["events_duplicated"]),
            ("job ends fenced (a superseded closer's, not counted)", s.get("ends_fenced", 0)),
            ("parts the ground ended past the deadline (lost satellites')",
             s.get("ground_ended", 0)),
            ("not completed and not explained by the faults", s["unexplained"]),
            ("members whose part never ended (not lost)", s.get("parts_open", "-"))]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        echo("  %-*s  %s" % (width, label, value))
    for bad in s["bad_runs"]:
        echo("  ! %s" % json.dumps(bad))


# --- the same seeded runs on MicroPython nodes and a real Console -------------------------

NODE_HOURS = 12.0   # each run: the fleet demo's horizon (tools/demo_fleet.py)


def node_faults(faults):
    """One run's faults (script()) as FleetRun's {satellite: [fault]}: the hub's fleet
    faults (lost, partition, isl_down) and each node's own (sim/faults.py: brownout,
    a stuck temperature sensor, reset). Times as script() gives them (s after the start)."""
    out = {}
    for f in faults:
        k = f["kind"]
        if k == "loss":
            out.setdefault(f["satellite"], []).append({"kind": "lost", "at_s": f["at_s"]})
        elif k == "drain":
            out.setdefault(f["satellite"], []).append({"kind": "brownout", "at_s": f["at_s"], "soc": f["soc"]})
        elif k == "heat":
            out.setdefault(f["satellite"], []).append({
                "kind": "sensor", "sensor": "temperature", "mode": "stuck", "at_s": f["at_s"],
                "for_s": 3600, "value": f["temperature_c"]})
        elif k == "link_loss":
            a, b = f["pair"]
            out.setdefault(a, []).append({"kind": "isl_down", "peer": b, "at_s": f["from_s"],
                                          "for_s": f["to_s"] - f["from_s"]})
        elif k == "partition":
            out.setdefault(f["satellite"], []).append({"kind": "partition", "at_s": f["from_s"],
                                                       "for_s": f["to_s"] - f["from_s"]})
        else:
            out.setdefault(f["satellite"], []).append({"kind": "reset", "at_s": f["at_s"]})
    return out


def judge_console(summary, cplan, faults, db_path):
    """One node run's figures, from what the Console holds: the parent's merged
    stream and its status (tools/demo_fleet.py's summary), and every agent's
    events in its database (the agent-level ones too: agent.booted has no
    deployment, so the parent's stream has gaps where a satellite rebooted)."""
    import sqlite3

    from tools.console.constellations import FINISHED, GROUND
    rec = _record(faults)
    ends = _stream(rec, summary["events"], cplan["steps"][-1]["step_id"])
    grounded = [e["satellite_id"] for e in summary["events"] if e.get("agent_id") == GROUND]
    rec["ground_ended"] = len(grounded)
    seqs = collections.defaultdict(list)
    for e in summary["events"]:
        if e.get("agent_id") != GROUND:  # the Console's record has a seq space of its own
            seqs[e.get("satellite_id")].append(e["seq"])
    for s in seqs.values():
        rec["events_duplicated"] += len(s) - len(set(s))
    db = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True)
    try:
        stored = collections.defaultdict(list)
        for origin, seq in db.execute("SELECT origin, seq FROM events"):
            stored[origin].append(seq)
        lost = set("sat-" + sat for sat in _lost(faults))
        rec["parts_open"] = sum(1 for agent, status in db.execute(
            "SELECT agent_id, status FROM deployments WHERE parent_id = ?", (summary["parent"],))
            if status not in FINISHED and agent not in lost)
    finally:
        db.close()
    for s in stored.values():
        rec["events_duplicated"] += len(s) - len(set(s))
        u = sorted(set(s))
        rec["events_lost"] += u[-1] - u[0] + 1 - len(u)   # a gap at the Console
    status = summary["status"]
    rec["outcome"] = status if status in ("completed", "partial", "failed") else "unfinished"
    if rec["outcome"] != "completed":
        rec["explained"] = _explained_end(cplan, faults, ends, grounded)
    return rec


def _explained_end(cplan, faults, ends, grounded):
    """A run that did not complete: every part the ground ended is a lost
    satellite's, and a member's job.failed (or, with neither, the job that
    never ended) is explained by the faults (_explained)."""
    if grounded and not set(grounded) <= _lost(faults):
        return False
    failed = [e for e in ends if e["type"] == "job.failed"]
    return True if grounded and not failed else _explained(cplan, faults, failed)


def _explained(cplan, faults, ends):
    """A run that did not complete is explained when a fault struck a satellite the
    failed step could run on (a job that never ended: its last step's)."""
    hit = set()
    for f in faults:
        hit.update(f.get("pair") or [f["satellite"]])
    chains = dict((s["step_id"], [s["satellite"]] + s["alternates"]) for s in cplan["steps"])
    step = cplan["steps"][-1]["step_id"]
    reason = (ends[0]["payload"].get("reason") or "") if ends else ""
    for sid in chains:
        if reason.startswith("step %r" % sid):
            step = sid
    return bool(hit & set(chains[step]))


def run_nodes(runs=4, seed=0, progress=None, workdir=None):
    """The campaign's first `runs` seeded runs (the same scripts as run()'s) with every
    member's firmware under the MicroPython unix port, one real Console, the ISL hub
    (tools/demo_fleet.run with the run's faults): what the Console accepted."""
    import tempfile

    from tools import demo_fleet
    doc, cplan, sats = _setup()
    rng = random.Random(seed)
    progress = progress or (lambda it: it)
    recs = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = workdir or tmp      # --keep: the Console databases and node folders stay there
        for i in progress(range(runs)):
            faults = script(rng, sats)
            try:
                where = os.path.join(tmp, "run-%d" % i)
                _, summary = demo_fleet.run(FLEET, workdir=where,
                                            faults=node_faults(faults), hours=NODE_HOURS,
                                            echo=lambda *a, **k: None)
            except Exception as exc:
                recs.append(_crashed(faults, exc))
                continue
            recs.append(judge_console(summary, cplan, faults, os.path.join(where, "console.db")))
    return _totals("constellation (MicroPython nodes, real Console)", recs, seed, time.monotonic() - t0)
