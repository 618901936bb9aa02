"""`umbra plot PLAN.json|DEPLOYMENT -o timeline.png`: a job's timeline;
`umbra plot --fleet FLEET.json -o links.png`: a fleet's ISL links (tools/fleet_cli.py);
`umbra plot PARENT|CONSTELLATION-PLAN.json -o fleet.png`: a constellation, one
lane per satellite (tools/fleetplot.py).

Top: the orbital windows (eclipse, sunlit, ground contacts). Middle: each
step's execution from its events (running spans, paused spans hatched, pass
segments, the tier of window steps) and the downlink passes. Bottom: battery
and temperature.

    umbra plot plan.json -o t.png                  # a plan (`umbra plan --json`): predicted
    umbra plot dep-… --db var/demo/console.db -o t.png    # a deployment: executed events
    umbra plot dep-… --console URL --key KEY --plan plan.json -o t.png

A plan is drawn from its predicted events and battery/temperature forecast; a
deployment from the events the Console stored (battery and temperature where
the events carry them, over the plan's forecast when the plan is known).
"""
import os

import click

import tools  # noqa: F401
from tools.clierrors import InputError, Unreachable, open_database, read_json_file

COLOURS = {"eclipse": "#3b4252", "sunlit": "#f2d16b", "contact": "#4caf50"}


def spans_from_events(evs):
    """{step_id: {"run": [(a, b)], "pause": [(a, b, reason)], "tier": str?, "segments": n}}
    and the downlink passes [(a, b, station)], times in Unix seconds."""
    import timeutil
    steps = {}
    order = []
    passes = []
    open_pass = None
    end_t = None
    for e in evs:
        t = timeutil.parse_iso(e["timestamp"])
        end_t = t
        sid = e.get("step_id")
        typ = e["type"]
        p = e.get("payload") or {}
        if sid is not None and sid not in steps and typ != "placement.decided":
            steps[sid] = {"run": [], "pause": [], "tier": None, "segments": 0, "_run": None,
                          "_pause": None}
            order.append(sid)
        s = steps.get(sid)
        if typ in ("step.started", "step.resumed") and s is not None:
            if s["_pause"] is not None:
                s["pause"].append((s["_pause"][0], t, s["_pause"][1]))
                s["_pause"] = None
            s["_run"] = t
        elif typ in ("step.paused", "step.completed") and s is not None:
            if s["_run"] is not None:
                s["run"].append((s["_run"], t))
                s["_run"] = None
            if typ == "step.paused":
                s["_pause"] = (t, p.get("reason"))
        elif typ == "window_step.tier_selected" and s is not None:
            s["tier"] = p.get("tier")
        elif typ == "pass_step.segment_started" and s is not None:
            s["segments"] += 1
        elif typ == "transfer.pass_started":
            open_pass = (t, p.get("ground_station"))
        elif typ == "transfer.pass_completed" and open_pass is not None:
            passes.append((open_pass[0], max(t, open_pass[0] + 1), open_pass[1]))
            open_pass = None
    for s in steps.values():
        if s["_run"] is not None and end_t is not None:
            s["run"].append((s["_run"], end_t))
        s.pop("_run")
        s.pop("_pause")
    return [(sid, steps[sid]) for sid in order], passes


def draw(plan, evs, path, title=None, executed=False):
    """Write the timeline PNG. plan: the plan document (windows, forecast), or None."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import timeutil
    times = [timeutil.parse_iso(e["timestamp"]) for e in evs]
    t0 = timeutil.parse_iso(plan["orbital_environment"]["prediction_start"]) if plan else min(times)
    t_end = max(times) if times else t0 + 3600
    span = max(600.0, t_end - t0)
    lo, hi = -0.02 * span, t_end - t0 + 0.05 * span

    def h(t):
        return (t - t0) / 3600.0

    steps, passes = spans_from_events(evs)
    fig, (ax_w, ax_s, ax_b) = plt.subplots(3, 1, figsize=(13, 3 + 0.45 * len(steps) + 4),
                                            sharex=True,
                                            gridspec_kw={"height_ratios": [1.2, 1 + 0.35 * len(steps), 2]})
    # windows
    if plan:
        for w in plan["orbital_environment"]["windows"]:
            a, b = timeutil.parse_iso(w["start"]), timeutil.parse_iso(w["end"])
            if b < t0 + lo or a > t0 + hi:
                continue
            row = {"sunlit": 2, "eclipse": 2, "contact": 1}[w["kind"]]
            ax_w.broken_barh([(h(a), h(b) - h(a))], (row - 0.4, 0.8), color=COLOURS[w["kind"]])
            if w["kind"] == "contact":
                ax_w.text(h(a), 0.35, w.get("station", ""), fontsize=6, rotation=0)
    ax_w.set_yticks([1, 2])
    ax_w.set_yticklabels(["contacts", "sun / eclipse"])
    ax_w.set_ylim(0.2, 2.6)
    # steps
    labels = []
    for i, (sid, s) in enumerate(steps):
        y = len(steps) - i
        ax_s.broken_barh([(h(a), max(h(b) - h(a), 0.002)) for a, b in s["run"]], (y - 0.35, 0.7),
                         color="#1f77b4")
        for a, b, why in s["pause"]:
            ax_s.broken_barh([(h(a), h(b) - h(a))], (y - 0.2, 0.4), facecolor="none",
                             edgecolor="#d62728", hatch="///")
        label = sid
        if s["tier"]:
            label += " [%s]" % s["tier"]
        if s["segments"]:
            label += " (%d seg)" % s["segments"]
        labels.append((y, label))
    ax_s.broken_barh([(h(a), h(b) - h(a)) for a, b, _ in passes], (-0.35, 0.7), color="#9467bd")
    labels.append((0, "downlink"))
    ax_s.set_yticks([y for y, _ in labels])
    ax_s.set_yticklabels([l for _, l in labels])
    ax_s.set_ylim(-0.8, len(steps) + 0.8)
    for ax in (ax_w, ax_s):
        ax.grid(axis="x", alpha=0.3)
    # battery and temperature
    ax_t = ax_b.twinx()
    fc = (plan or {}).get("forecast")
    if fc and fc.get("samples"):
        xs = [row[0] / 3600.0 for row in fc["samples"]]
        ax_b.plot(xs, [row[1] for row in fc["samples"]], color="#2ca02c",
                  linestyle="--" if executed else "-", label="battery % (forecast)")
        ax_t.plot(xs, [row[2] for row in fc["samples"]], color="#ff7f0e",
                  linestyle="--" if executed else "-", label="temperature °C (forecast)")
    pts = [(h(timeutil.parse_iso(e["timestamp"])), e["payload"]) for e in evs
           if "actual_battery_percent" in (e.get("payload") or {})]
    if pts:
        ax_b.plot([x for x, _ in pts], [p["actual_battery_percent"] for _, p in pts], "o",
                  color="#2ca02c", label="battery % (executed)")
        ax_t.plot([x for x, p in pts if p.get("actual_temperature_c") is not None],
                  [p["actual_temperature_c"] for _, p in pts if p.get("actual_temperature_c") is not None],
                  "s", color="#ff7f0e", label="temperature °C (executed)")
    ax_b.set_ylabel("battery %")
    ax_b.set_ylim(0, 105)
    ax_t.set_ylabel("°C")
    ax_b.set_xlabel("hours from %s" % timeutil.iso_utc(t0))
    ax_b.set_xlim(h(t0 + lo), h(t0 + hi))
    handles = ax_b.get_legend_handles_labels()
    handles2 = ax_t.get_legend_handles_labels()
    if handles[0] or handles2[0]:
        ax_b.legend(handles[0] + handles2[0], handles[1] + handles2[1], loc="lower left", fontsize=7)
    fig.suptitle(title or "timeline")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@click.command()
@click.argument("target", required=False)
@click.option("-o", "--output", default="timeline.png", show_default=True, help="PNG to write.")
@click.option("--fleet", "fleet_file", default=None,
              help="A fleet file instead of TARGET: draw its ISL links (satellite pairs x time, quality).")
@click.option("--hours", type=float, default=24.0, show_default=True, help="--fleet: horizon.")
@click.option("--db", default=None, help="A Console's SQLite file (reads plan and events directly).")
@click.option("--plan", "plan_file", default=None, help="The deployment's plan (JSON), for windows.")
@click.option("--key", envvar="UMBRA_KEY", default=None, help="User API key (or $UMBRA_KEY).")
@click.option("--console", "console_url", envvar="UMBRA_CONSOLE", default="http://127.0.0.1:8000",
              show_default=True, help="Console URL (or $UMBRA_CONSOLE).")
def plot(target, output, db, plan_file, key, console_url, fleet_file, hours):
    """Draw a deployment's or plan's timeline (TARGET: a plan file or a deployment id),
    or with --fleet FILE a fleet's ISL link windows and their quality."""
    if fleet_file:
        if target:
            raise InputError("give TARGET or --fleet, not both")
        from tools import fleet_cli
        if not 0 < hours <= fleet_cli.MAX_HOURS:
            raise InputError("--hours must be within (0, %d]" % fleet_cli.MAX_HOURS)
        _, sats, t0 = fleet_cli.load_fleet(fleet_file)
        fleet_cli.draw_links(fleet_cli.compute_plan(sats, t0, hours), sats, output)
        click.echo(output)
        return
    if not target:
        raise InputError("give TARGET (a plan file or a deployment id) or --fleet FILE")
    plan = None
    if plan_file and not _is_fleet_file(plan_file):
        plan = _plan_document(plan_file)
    if os.path.exists(target) and _is_fleet_file(target):
        from tools import fleetplot
        doc = read_json_file(target, "plan file")
        fleetplot.draw_fleet(doc, doc.get("events") or [], output, "constellation plan %s: %s "
                             "(predicted)" % (doc.get("plan_id"), (doc.get("job") or {}).get("name")
                                              or ""))
    elif os.path.exists(target):
        plan = _plan_document(target)
        try:
            draw(plan, plan["events"], output, "plan %s: %s (predicted)" % (
                plan.get("id"), (plan.get("job") or {}).get("name") or ""))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError("%s is not a plan document (umbra plan --json): %s %s"
                             % (target, type(exc).__name__, exc))
    elif target.endswith(".json") or os.sep in target:
        raise InputError("no such file: %s (a plan file, or a deployment id)" % target)
    elif db:
        from tools.console import deployments
        d = open_database(db, create=False)
        dep = deployments.get(d, target)
        if dep is None:
            raise click.ClickException("no deployment %r in %s" % (target, db))
        if dep["kind"] == "parent":
            from tools import fleetplot
            from tools.console import constellations
            evs = [e for _, e in constellations.merged_rows(d, target)]
            fleetplot.draw_fleet(deployments.get_plan(d, dep["plan_id"]), evs, output,
                                 "constellation deployment %s (%s; planned and executed)"
                                 % (target, dep["status"]))
            click.echo(output)
            return
        plan = deployments.get_plan(d, dep["plan_id"])
        evs = [e for _, e in deployments.list_events(d, target)]
        _draw_deployment(plan, evs, output, target)
    else:
        evs = _console_events(console_url, key, target)
        if any("satellite_id" in e for e in evs) or (plan is None and plan_file and
                                                      _is_fleet_file(plan_file)):
            # a constellation parent: its merged stream (lanes from --plan, if given)
            from tools import fleetplot
            fleet_plan = read_json_file(plan_file, "plan file") if plan_file else None
            fleetplot.draw_fleet(fleet_plan, evs, output,
                                 "constellation deployment %s (%s)" % (
                                     target, "planned and executed" if fleet_plan else "executed"))
        else:
            _draw_deployment(plan, evs, output, target)
    click.echo(output)


def _is_fleet_file(path):
    from tools import fleetplot
    return fleetplot.is_fleet_plan(read_json_file(path, "plan file"))


def _draw_deployment(plan, evs, output, dep_id):
    if not evs and plan is None:
        raise click.ClickException("deployment %s has no events yet (give --plan for its "
                                   "windows)" % dep_id)
    draw(plan, evs, output, "deployment %s (executed)" % dep_id, executed=True)


def _plan_document(path):
    plan = read_json_file(path, "plan file")
    if not isinstance(plan, dict) or not isinstance(plan.get("events"), list) \
            or not isinstance(plan.get("orbital_environment"), dict):
        raise InputError("%s is not a plan document (umbra plan --json)" % path)
    return plan


def _console_events(console_url, key, dep_id):
    import httpx
    if not key:
        raise InputError("a deployment needs --key (or $UMBRA_KEY), or --db")
    url = console_url.rstrip("/") + "/api/deployments/%s/events" % dep_id
    try:
        r = httpx.get(url, headers={"X-API-Key": key}, timeout=30)
    except httpx.HTTPError as exc:
        raise Unreachable("cannot reach the Console at %s: %s" % (console_url, exc))
    try:
        body = r.json()
    except ValueError:
        body = {}
    if r.status_code != 200:
        if r.status_code == 404:
            raise click.ClickException("no deployment %r at the Console %s" % (dep_id, console_url))
        raise click.ClickException("the Console refused: %d %s" % (
            r.status_code, body.get("error") or r.text[:200]))
    return body.get("events") or []
