"""`umbra plan JOB.json [--satellite ID] [--start ISO] [--hours H] [--json]`: plan a
job locally with the orbital planner (no Console needed), on a satellite of the
Console's shipped catalog, and print the plan and its predicted events.

`umbra plan --fleet FLEET.json [JOB.json]`: plan one DAG across a fleet
(tools/planner/constellation.py; the job is the fleet file's `job` unless a
job file is given): each step's satellite and alternates, the ISL routes,
the metrics, and the predicted fleet stream (the fleet's agents flying the
plan: how many events, how it ends; --events prints them); --json prints
what `POST /v1/constellation/plan` returns.

--json prints the plan document exactly as `POST /v1/plan` returns it (same
function: tools.console.planning.make_plan). Exit status 2 with the reason when
the file is not a job or the job is invalid (400), 1 when it cannot be planned
(422): tools/clierrors.py.
"""
import json
import time

import click

import tools  # noqa: F401  (portable folders on sys.path)
from tools.clierrors import InputError, read_json_file


def seed_satellite(satellite_id):
    """The catalog record of a shipped satellite (by NORAD id or name), or None."""
    from tools.console import catalog
    for name, l1, l2 in catalog.read_seed():
        sid = str(int(l1[2:7]))
        if satellite_id in (sid, name) or satellite_id.lower() in name.lower():
            rec = {"satellite_id": sid, "name": name, "tle": [l1, l2], "elements": None,
                   "bus": None}
            rec["orbit"] = catalog.summary(rec)
            return rec
    return None


def load_job(path):
    doc = read_json_file(path, "job file")
    if not isinstance(doc, dict):
        raise InputError("job file %s holds no JSON object" % path)
    return doc.get("custom_job", doc), doc.get("satellite_id")


@click.command()
@click.argument("job_file", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("--fleet", "fleet_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Plan across this fleet (examples/fleets/*.json) instead of one satellite.")
@click.option("--satellite", default=None, help="Catalog satellite (NORAD id or name); "
              "default: the file's satellite_id, else 25544 (ISS).")
@click.option("--start", default=None, help="Plan start, ISO 8601 UTC (default: now).")
@click.option("--hours", default=12.0, type=float, show_default=True,
              help="Prediction horizon (1-48; stretched to cover policy.deadline_orbits).")
@click.option("--min-elevation", default=5.0, type=float, show_default=True,
              help="Ground contact elevation threshold (deg).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan document as JSON.")
@click.option("--events", is_flag=True, help="--fleet: print the predicted fleet stream too, "
              "event by event (a single satellite's plan always prints its events).")
def plan(job_file, fleet_file, satellite, start, hours, min_elevation, as_json, events):
    """Plan a job; print the plan and its predicted events."""
    from tools.console import planning
    from tools.console.cli import format_event

    if fleet_file:
        return plan_fleet(fleet_file, job_file, start, hours if hours != 12.0 else None, as_json,
                          events)
    if not job_file:
        raise InputError("a job file is needed (or --fleet FILE with a job in it)")

    job, file_sat = load_job(job_file)
    sat_id = str(satellite or file_sat or "25544")
    sat = seed_satellite(sat_id)
    if sat is None:
        raise InputError("no satellite %r in the shipped catalog" % sat_id)
    options = {"prediction_hours": hours, "min_elevation_deg": min_elevation}
    if start:
        options["start"] = start
    try:
        doc = planning.make_plan(sat, job, options, time.time())
    except planning.PlanError as exc:
        if exc.status == 422:  # a valid job that cannot be planned: the answer is "no"
            raise click.ClickException("%d: %s" % (exc.status, exc.reason))
        raise InputError("%d: %s" % (exc.status, exc.reason))
    if as_json:
        click.echo(json.dumps(doc))
        return
    env = doc["orbital_environment"]
    s = doc["plan"]
    click.secho("Plan %s  %s on %s (%s)" % (doc["id"], doc["job"].get("name") or "job",
                                         doc["satellite"].get("name"), doc["satellite"]["id"]),
                bold=True)
    click.echo("  horizon   %s + %s h, %d windows (%d contacts), eclipse fraction %.2f" % (
        env["prediction_start"], env["prediction_hours"], env["summary"]["total_windows"],
        env["summary"]["comms_windows"], env["eclipse_fraction"]))
    click.echo("  plan      %s s, %d segments, %d windows used, downlink %s MB over %d passes" % (
        s["total_duration_s"], s["segments"], s["windows_used"],
        doc["transfer_schedule"]["total_downlink_mb"], doc["transfer_schedule"]["passes_used"]))
    for e in doc["schedule"]:
        extra = ""
        if e.get("tier"):
            extra = " tier=%s" % e["tier"]
        if e.get("segments"):
            extra = " segments=%d" % len(e["segments"])
        click.echo("  %-14s %-8s %-7s %s .. %s  %s%s" % (
            e["step_id"], e["type"], e["location"], e["start"] or "-", e["end"] or "-",
            e["window_id"] or "", extra))
    click.echo()
    for ev in doc["events"]:
        click.echo(format_event(ev))


def plan_fleet(fleet_file, job_file, start, hours, as_json, events=False):
    import timeutil
    from tools.console.cli import format_event
    from tools.planner import PlanError
    from tools.planner.constellation import make_constellation_plan

    doc = read_json_file(fleet_file, "fleet file")
    if not isinstance(doc, dict) and not isinstance(doc, list):
        raise InputError("fleet file %s holds no fleet" % fleet_file)
    job = load_job(job_file)[0] if job_file else (doc.get("job") if isinstance(doc, dict) else None)
    if not isinstance(job, dict):
        raise InputError("no job: %s has none, and no job file was given" % fleet_file)
    try:
        t0 = timeutil.parse_iso(start) if start else (
            timeutil.parse_iso(doc["epoch"]) if isinstance(doc, dict) and doc.get("epoch")
            else int(time.time()))
    except ValueError as exc:
        raise InputError("--start: %s" % exc)
    try:
        p = make_constellation_plan(doc, job, t0, hours)
    except PlanError as exc:
        if exc.status == 422:
            raise click.ClickException("%d: %s" % (exc.status, exc.reason))
        raise InputError("%d: %s" % (exc.status, exc.reason))
    if as_json:
        click.echo(json.dumps(p))
        return
    m = p["metrics"]
    click.secho("Constellation plan %s  %s on %d satellites (%s)" % (
        p["plan_id"], job.get("name") or "job", len(p["fleet"]), m["objective"]), bold=True)
    click.echo("  span %.0f s, %d satellites used, %d ISL transfers, reliability %.6f" % (
        m["critical_path_s"], m["satellites_used"], m["isl_transfers"], m["reliability"]))
    for s in p["steps"]:
        route = s.get("isl_route")
        if isinstance(route, dict):
            route = "; ".join("%s: %s" % (k, ">".join(v)) for k, v in route.items())
        elif route:
            route = ">".join(route)
        click.echo(("  %-14s on %-8s +%6.0f .. +%6.0f s  alternates %-24s %s" % (
            s["step_id"], s["satellite"], s["start"] - p["start"], s["finish"] - p["start"],
            ",".join(s["alternates"]) or "-", ("ISL " + route) if route else "")).rstrip())
    evs = p["events"]
    ends = [e for e in evs if e["type"] in ("job.completed", "job.failed")]
    click.echo("  predicted fleet stream: %d events from %d satellites%s" % (
        len(evs), len(set(e["satellite_id"] for e in evs)),
        ", %s on %s at %s" % (ends[-1]["type"], ends[-1]["satellite_id"], ends[-1]["timestamp"])
        if ends else ", the job does not end within the horizon"))
    if events:
        click.echo()
        for ev in evs:
            click.echo(format_event(ev))
