"""`umbra demo --fleet FILE` / `make demo-fleet`: a constellation job end to end.

1. starts a Console (a thread of this process) on an SQLite file under the work folder;
2. plans the fleet file's job across its satellites and deploys it: a parent
   deployment with one child per satellite that may run a step;
3. runs every satellite's unchanged firmware (.mpy under the MicroPython
   unix port) as a node of its own, all on one simulated clock through the
   ISL hub (tools/fleetrun.py, tools/islhub.py), each talking to the
   Console only during its own ground passes;
4. scripts one fault: the satellite that owns the first step with an input
   from afar loses power (its battery steps down to 8 %) in the middle of
   that step, so the step fails over with its checkpoint to an alternate;
5. prints the parent's merged stream as it grows, one line per event with
   its satellite, and a summary: the parent's status, each step's counted
   completion (satellite, epoch), failovers and ISL transfers, the fleet's
   events against the fleet forecast's (the plan's predicted stream,
   tools/planner/fleetforecast.py), and the fleet picture (fleet.png).

Exit status 0 when the parent completed, 1 when not, 2 on a bad fleet file.
"""
import json
import os
import shutil
import threading
import time

import click

from tools import ROOT, upy
from tools.clierrors import InputError, read_json_file

DEMO_FLEET = os.path.join(ROOT, "examples", "fleets", "train-4.json")
HOURS = 12.0
DROP_SOC = 0.08  # the victim's state of charge after the fault: below the 10 % failover line


def _load(path):
    doc = read_json_file(path, "fleet file")
    if not isinstance(doc, dict) or not isinstance(doc.get("fleet"), list) or \
            not isinstance(doc.get("job"), dict):
        raise InputError("fleet file %s: expected {epoch?, fleet: [...], job: {...}}" % path)
    return doc


def victim_of(plan, predicted):
    """(satellite, step, at_s after the start): the owner of the first step
    that takes an input from another satellite, halfway through its
    predicted run; None when no such step has alternates."""
    import timeutil
    by_id = dict((s["step_id"], s) for s in plan["steps"])
    for s in plan["steps"]:
        far = [d for d in s["depends_on"] if by_id[d]["satellite"] != s["satellite"]]
        if not far or not s["alternates"]:
            continue
        run = [e for e in predicted if e.get("step_id") == s["step_id"] and
               e["type"] in ("step.started", "step.completed")]
        if len(run) < 2:
            continue
        t0 = timeutil.parse_iso(run[0]["timestamp"])
        t1 = timeutil.parse_iso(run[-1]["timestamp"])
        return s["satellite"], s["step_id"], int((t0 + t1) / 2 - plan["start"])
    return None


def run(fleet_file=DEMO_FLEET, workdir=None, heap=None, echo=click.echo, fault=True,
        faults=None, hours=HOURS):
    """The demo; returns (exit code, summary dict). faults: FleetRun's
    {satellite: [fault]} instead of the demo's own (fault=False: none); heap: each
    node's -X heapsize (None: fleetrun.NODE_HEAP)."""
    import httpx

    import fleet
    from pathlib import Path

    from tools.fleetrun import FleetRun
    from tools.scenario import Ground
    from tools.planner import fleetforecast

    wall0 = time.monotonic()
    doc = _load(fleet_file)
    workdir = workdir or os.path.join(ROOT, "var", "demo-fleet")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    ground = Ground(Path(workdir))  # a Console on loopback (its thread), its user key
    srv = ground.console
    try:
        http = httpx.Client(base_url=srv.url, headers={"X-API-Key": ground.user}, timeout=120)
        r = http.post("/v1/constellation/plan", json={"fleet": doc["fleet"], "job": doc["job"],
                                                      "epoch": doc.get("epoch")})
        if r.status_code != 200:
            raise InputError("the fleet's job cannot be planned: %s" % r.json().get("error"))
        plan = r.json()
        r = http.post("/api/deployments", json={"plan_id": plan["id"], "mode": "live"})
        if r.status_code != 201:
            raise click.ClickException("deploying: %s" % r.text[:300])
        parent = r.json()["id"]
        world = fleet.FleetWorld(doc, hours=hours)
        predicted = plan.get("events") or fleetforecast.run(
            fleet.FleetWorld(doc, hours=hours), plan, doc["job"]).merged()
        hit = victim_of(plan, predicted) if fault and faults is None else None
        faults = dict(faults or {})
        echo(click.style("Console   %s  (SQLite %s)" % (srv.url, os.path.relpath(
            os.path.join(workdir, "console.db"))), bold=True))
        echo(click.style("Fleet     %s: %d satellites; job %r, %d steps; parent %s" % (
            os.path.relpath(fleet_file), len(doc["fleet"]), doc["job"].get("name"),
            len(doc["job"]["steps"]), parent), bold=True))
        for s in plan["steps"]:
            echo("  %-12s on %s (alternates %s)" % (s["step_id"], s["satellite"],
                                                     ", ".join(s["alternates"]) or "none"))
        if hit:
            faults[hit[0]] = [{"kind": "brownout", "at_s": hit[2], "soc": DROP_SOC}]
            echo(click.style("Fault     %s loses power (battery to %d %%) %d s in, in the middle of %s"
                             % (hit[0], DROP_SOC * 100, hit[2], hit[1]), fg="red"))
        for sat in sorted(faults):
            if not hit or sat != hit[0]:
                echo(click.style("Fault     %s: %s" % (sat, json.dumps(faults[sat])), fg="red"))
        echo("")
        mpy = upy.compile_portable(os.path.join(workdir, "mpy"))
        fr = FleetRun(world, ground, os.path.join(workdir, "nodes"), mpy_dir=mpy,
                      heap=heap, faults=faults)
        report = {}

        def fly():
            report.update(fr.run())

        th = threading.Thread(target=fly, daemon=True)
        th.start()
        events, status = _follow(http, parent, th, echo)
        th.join()
        summary = _summary(http, parent, plan, predicted, events, status, report, workdir,
                           time.monotonic() - wall0, echo)
        return (0 if status == "completed" else 1), summary
    finally:
        srv.stop()


def _line(ev):
    p = ev.get("payload") or {}
    keep = dict((k, v) for k, v in p.items() if k not in (
        "actual_battery_percent", "actual_temperature_c", "lat", "lon", "altitude_km", "in_eclipse"))
    text = json.dumps(keep, separators=(",", ":"))
    return "%s  %-6s %-38s %-10s %s" % (ev["timestamp"][11:19], ev.get("satellite_id"),
                                         ev["type"], ev.get("step_id") or "", text[:90])


def _follow(http, parent, flying, echo):
    """Print the parent's merged stream as it grows (read every half second)
    until the parent has finished, or the fleet has stopped and all it sent is in."""
    events, seen, status, last = [], set(), None, False
    while True:
        got = http.get("/api/deployments/%s/events" % parent)
        if got.status_code == 200:
            for ev in got.json().get("events", []):
                key = (ev.get("satellite_id"), ev.get("seq"))
                if key in seen:
                    continue
                seen.add(key)
                events.append(ev)
                colour = "red" if ev["type"].startswith(("constellation.failover", "job.failed")) \
                    else ("green" if ev["type"] == "job.completed" else None)
                echo(click.style(_line(ev), fg=colour))
        status = http.get("/api/deployments/%s" % parent).json().get("status")
        if status in ("completed", "partial", "failed", "cancelled") or last:
            return events, status
        last = not flying.is_alive()  # one more read after the fleet stopped
        time.sleep(0.5)


def _summary(http, parent, plan, predicted, events, status, report, workdir, wall_s, echo):
    view = http.get("/api/deployments/%s" % parent).json()
    echo("")
    echo(click.style("Parent %s %s" % (parent, status), bold=True,
                     fg="green" if status == "completed" else "red"))
    for s in view.get("steps") or ():
        by = s.get("completed_by") or {}
        echo("  %-12s planned on %s, counted from %s at epoch %s%s" % (
            s["step_id"], s["satellite"], by.get("satellite_id", "-"), by.get("epoch", "-"),
            ", %d completion(s) not counted" % len(s["ignored_completions"])
            if s.get("ignored_completions") else ""))
    kinds = [e["type"] for e in events]
    echo("  events at the Console   %d from %d satellites" % (
        len(events), len(set(e.get("satellite_id") for e in events))))
    echo("  failovers               %d (acknowledged %d)   ISL transfers %d" % (
        kinds.count("constellation.failover"), kinds.count("constellation.failover_acknowledged"),
        kinds.count("isl_transfer.completed")))
    pred = _counts(predicted)
    got = _counts(events)
    same = sum(min(pred[k], got.get(k, 0)) for k in pred)
    echo("  against the forecast    %d of %d predicted events as predicted (satellite, type, step); "
         "%d more executed (the fault's)" % (same, sum(pred.values()),
                                              sum(got.values()) - same))
    nodes = report.get("satellites") or []
    echo("  nodes                   %s" % ", ".join(
        "%s %s (boots %s)" % (n["satellite_id"], n.get("outcome"), n.get("boots")) for n in nodes))
    picture = os.path.join(workdir, "fleet.png")
    try:
        from tools.fleetplot import draw_fleet
        draw_fleet(plan, events, picture, title="%s: planned and executed" % parent)
        echo("  fleet picture           %s" % os.path.relpath(picture))
    except Exception as exc:  # a picture is a bonus; the outcome stands
        echo("  fleet picture           not drawn (%s)" % exc)
    echo("  wall time               %.1f s" % wall_s)
    return {"status": status, "events": events, "predicted": predicted, "plan": plan,
            "parent": parent, "failovers": kinds.count("constellation.failover"),
            "wall_s": wall_s, "fleet_wall_s": report.get("wall_s"), "hub": report.get("hub"), "steps": view.get("steps"), "nodes": nodes,
            "as_predicted": same, "predicted_n": sum(pred.values()),
            "extra": sum(got.values()) - same}


def _counts(evs):
    out = {}
    for e in evs:
        k = (e.get("satellite_id"), e["type"], e.get("step_id"))
        out[k] = out.get(k, 0) + 1
    return out
