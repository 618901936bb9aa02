"""`umbra sim fleet`: a fleet's inter-satellite link windows and routes
(docs/fleet.md), and the links picture `umbra plot --fleet` draws.

    umbra sim fleet --fleet examples/fleets/train-4.json --hours 24
    umbra sim fleet --fleet examples/fleets/shell-20.json --hours 6 --at +2h26m \\
        --route 99807:99815 --data-mb 4000 --json

With --agents it also runs every satellite's unchanged firmware under the
MicroPython unix port, each as a node of its own, over the horizon against a
fresh Console (tools/fleetrun.py; its database and the nodes' flash under
--dir, default var/fleet), all on one clock through the fleet's ISL hub
(tools/islhub.py), and prints each agent's run.

A bad fleet file (duplicate satellite ids, unknown roles, orbits that do not
parse, an empty fleet) is one line naming the satellite and exit 2; nothing
is computed.
"""
import json
import re

import click

import tools  # noqa: F401  (portable folders on sys.path)
from tools.clierrors import InputError, read_json_file
import contactplan
import fleetfile
import islroute
import orbitio
import timeutil

MAX_HOURS = 24 * 7


def load_fleet(path):
    """(document, satellites, epoch) of a fleet file; InputError (exit 2) naming the
    file and the satellite when it is not a fleet."""
    doc = read_json_file(path, "fleet file")
    try:
        sats = fleetfile.load(doc)
    except ValueError as exc:
        raise InputError("fleet file %s: %s" % (path, exc))
    epoch = doc.get("epoch") if isinstance(doc, dict) else None
    if epoch is not None:
        try:
            t0 = timeutil.parse_iso(epoch) if isinstance(epoch, str) else float(epoch)
        except (ValueError, TypeError):
            raise InputError("fleet file %s: epoch %r is not an ISO time" % (path, epoch))
    else:
        t0 = min(s["orbit"].epoch for s in sats)
    return doc, sats, t0


def compute_plan(sats, t0, hours):
    return contactplan.compute([(s["satellite_id"], s["orbit"]) for s in sats], t0, t0 + hours * 3600.0)


def parse_at(text, t0):
    """An ISO time, or an offset from the start: +90s, +15m, +2h26m, +1h."""
    m = re.fullmatch(r"\+(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text.strip())
    if m and any(m.groups()):
        h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        return t0 + h * 3600 + mi * 60 + s
    try:
        return timeutil.parse_iso(text)
    except (ValueError, TypeError, IndexError):
        raise InputError("--at %r: an ISO time or an offset such as +2h26m" % text)


def _hop_doc(h):
    return {"from": h["from"], "to": h["to"], "depart": orbitio.iso(h["depart"]),
            "wait_s": round(h["wait_s"], 3), "tx_s": round(h["tx_s"], 3),
            "latency_ms": round(h["latency_ms"], 3), "arrival": orbitio.iso(h["arrival"]),
            "bandwidth_mbps": round(h["bandwidth_mbps"], 2), "quality": round(h["quality"], 3)}


def route_doc(router, src, dst, t, data_mb):
    """The earliest-arrival route and the route of the moment, side by side."""
    best = router.route(src, dst, t, data_mb)
    snap = router.snapshot(src, dst, t, data_mb)
    doc = {"from": src, "to": dst, "at": orbitio.iso(t), "data_mb": data_mb,
           "earliest": None, "snapshot": None, "gain_s": None}
    if best is not None:
        doc["earliest"] = {"path": best["path"], "duration_s": round(best["duration_s"], 3),
                           "arrival": orbitio.iso(best["arrival"]),
                           "hops": [_hop_doc(h) for h in best["hops"]]}
    if snap is not None:
        doc["snapshot"] = {"path": snap["path"], "predicted_s": round(snap["predicted_s"], 3),
                           "duration_s": None if snap["duration_s"] is None else round(snap["duration_s"], 3),
                           "arrival": None if snap["arrival"] is None else orbitio.iso(snap["arrival"])}
        if best is not None and snap["duration_s"] is not None:
            doc["gain_s"] = round(snap["duration_s"] - best["duration_s"], 3)
    return doc


def window_doc(w):
    return {"a": w["a"], "b": w["b"], "start": orbitio.iso(w["start"]), "end": orbitio.iso(w["end"]),
            "duration_s": round(w["end"] - w["start"], 1),
            "distance_km_min": round(min(w["distance_km"]), 1), "distance_km_max": round(max(w["distance_km"]), 1),
            "quality_min": round(w["quality_min"], 3), "quality_max": round(w["quality_max"], 3),
            "bandwidth_mbps_min": round(100 * w["quality_min"], 2),
            "bandwidth_mbps_max": round(100 * w["quality_max"], 2),
            "latency_ms_min": round(min(w["latency_ms"]), 3), "latency_ms_max": round(max(w["latency_ms"]), 3)}


def _routes_asked(route_opts, sats):
    ids = [s["satellite_id"] for s in sats]
    if not route_opts:
        if len(ids) < 2:
            return []
        return [(ids[0], ids[-1])]
    out = []
    for r in route_opts:
        parts = r.split(":")
        if len(parts) != 2 or not all(parts):
            raise InputError("--route %r: FROM:TO (two satellite ids)" % r)
        for p in parts:
            if p not in ids:
                raise InputError("--route %r: no satellite %s in the fleet" % (r, p))
        out.append((parts[0], parts[1]))
    return out


@click.command()
@click.option("--fleet", "fleet_file", required=True, help="Fleet file (JSON), e.g. examples/fleets/train-4.json.")
@click.option("--hours", type=float, default=24.0, show_default=True, help="Horizon of the contact plan.")
@click.option("--start", help="Start of the horizon, ISO 8601 UTC (default: the fleet's epoch).")
@click.option("--at", "at_opts", multiple=True,
              help="Route at this time: ISO, or an offset from the start (+2h26m). Repeatable; default: the start.")
@click.option("--route", "route_opts", multiple=True,
              help="FROM:TO satellite ids to route between. Repeatable; default: first to last.")
@click.option("--data-mb", type=float, default=100.0, show_default=True, help="Size of the routed transfer.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--agents", "run_agents", is_flag=True,
              help="Also run every satellite's firmware (MicroPython, .mpy) over the horizon against a fresh Console.")
@click.option("--heap-watch", is_flag=True, help="--agents: report each agent's heap high-water mark (slow).")
@click.option("--dir", "work_dir", default=None, help="--agents: folder for the Console and the nodes (default var/fleet; emptied first).")
def fleet(fleet_file, hours, start, at_opts, route_opts, data_mb, as_json, run_agents, heap_watch, work_dir):
    """A fleet's ISL link windows over the horizon, and the routes at chosen times:
    earliest arrival (store and forward) beside the route of the moment."""
    if not 0 < hours <= MAX_HOURS:
        raise InputError("--hours must be within (0, %d]" % MAX_HOURS)
    if not data_mb >= 0:
        raise InputError("--data-mb must be >= 0")
    doc, sats, t0 = load_fleet(fleet_file)
    if start:
        try:
            t0 = timeutil.parse_iso(start)
        except (ValueError, TypeError, IndexError):
            raise InputError("--start %r is not an ISO time" % start)
    asked = _routes_asked(route_opts, sats)
    times = [parse_at(a, t0) for a in at_opts] or [t0]
    for t in times:
        if not t0 <= t < t0 + hours * 3600:
            raise InputError("--at %s is outside the horizon" % orbitio.iso(t))
    plan = compute_plan(sats, t0, hours)
    router = islroute.Router(plan)
    routes = [route_doc(router, a, b, t, data_mb) for t in times for a, b in asked]
    agents = _run_agents(doc, t0, hours, heap_watch, work_dir) if run_agents else None
    if as_json:
        click.echo(json.dumps({
            "fleet": [dict(orbitio.summary(s["orbit"]), satellite_id=s["satellite_id"], name=s["name"],
                           role=s["role"]) for s in sats],
            "start": orbitio.iso(t0), "hours": hours, "step_s": plan["step_s"],
            "windows": [window_doc(w) for w in plan["windows"]], "routes": routes,
            "agents": agents}, indent=1))
        _agents_exit(agents)
        return
    click.echo("%d satellites, %s + %g h: %d link windows" % (len(sats), orbitio.iso(t0), hours, len(plan["windows"])))
    click.echo("%-8s %-8s %-20s %-20s %9s %12s %11s" % ("a", "b", "start", "end", "duration", "distance km", "quality"))
    for w in plan["windows"]:
        d = window_doc(w)
        click.echo("%-8s %-8s %-20s %-20s %8.0fs %5.0f-%-6.0f %5.3f-%-5.3f" % (
            d["a"], d["b"], d["start"], d["end"], d["duration_s"], d["distance_km_min"], d["distance_km_max"],
            d["quality_min"], d["quality_max"]))
    for r in routes:
        click.echo("\n%s -> %s at %s, %g MB" % (r["from"], r["to"], r["at"], r["data_mb"]))
        e = r["earliest"]
        if e is None:
            click.echo("  earliest arrival: no route within the horizon")
        else:
            click.echo("  earliest arrival: %s in %.1f s via %s" % (e["arrival"], e["duration_s"], " > ".join(e["path"])))
            for h in e["hops"]:
                click.echo("    %s > %s  wait %7.1f s  send %7.1f s  latency %6.2f ms  %6.1f Mbps  q %.3f" % (
                    h["from"], h["to"], h["wait_s"], h["tx_s"], h["latency_ms"], h["bandwidth_mbps"], h["quality"]))
        s = r["snapshot"]
        if s is None:
            click.echo("  route of the moment: none (the links up at that time do not join them)")
        else:
            done = "never completes" if s["duration_s"] is None else "arrives in %.1f s" % s["duration_s"]
            click.echo("  route of the moment: %s, predicted %.1f s, %s" % (" > ".join(s["path"]), s["predicted_s"], done))
        if r["gain_s"] is not None:
            click.echo("  gain of waiting: %.1f s" % r["gain_s"])
    if agents is not None:
        click.echo("\n%d agents, %g h of simulated time in %.1f s wall" % (len(agents["satellites"]), hours,
                                                                       agents["wall_s"]))
        hub = agents.get("hub")
        if hub:
            click.echo("one clock (ISL hub, lookahead %d ms): %d releases; ISL messages %d sent, %d delivered,"
                       " %d lost, %d without a route" % (hub["lookahead_ms"], hub["releases"], hub["sent"],
                                                         hub["delivered"], hub["lost"], hub["no_route"]))
        click.echo("%-10s %-8s %5s %5s %6s %7s %9s  %s" % ("agent", "outcome", "boots", "polls", "events",
                                                            "heap KiB", "ended at", ""))
        for a in agents["satellites"]:
            click.echo("%-10s %-8s %5s %5s %6s %7s %9s  %s" % (
                a["agent_id"], a["outcome"], a["boots"], a["polls"], a["events_sent"],
                "%.1f" % (a["heap_peak"] / 1024) if a["heap_peak"] else "-", (a["sim_time"] or "-")[11:],
                a["why"] or ""))
        _agents_exit(agents)


def _run_agents(doc, t0, hours, heap_watch, work_dir):
    """Every member's node against a fresh Console under work_dir (tools/fleetrun.py)."""
    import os
    import shutil
    from pathlib import Path

    from tools import ROOT, upy
    from tools.fleetrun import FleetRun
    from tools.scenario import Ground
    import fleet as fleetlib

    work = Path(work_dir or os.path.join(ROOT, "var", "fleet"))
    if work.exists():
        shutil.rmtree(str(work))
    work.mkdir(parents=True)
    world = fleetlib.FleetWorld(doc, start=t0, hours=hours)
    mpy_dir = upy.compile_portable(os.path.join(ROOT, "build", "mpy"))
    ground = Ground(work)
    try:
        return FleetRun(world, ground, work / "nodes", mpy_dir=mpy_dir, heap_watch=heap_watch).run()
    finally:
        ground.close()


def _agents_exit(agents):
    if agents is not None and any(a["outcome"] != "done" for a in agents["satellites"]):
        raise click.ClickException("not every agent ran to the end of the horizon")


def draw_links(plan, sats, path, title=None):
    """satellites x time: one row per linked pair, each window drawn with its
    quality as it changes (colour), and the link count per satellite beneath."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    t0 = plan["t0"]
    pairs = sorted({(w["a"], w["b"]) for w in plan["windows"]},
                   key=lambda p: ([s["satellite_id"] for s in sats].index(p[0]),
                                  [s["satellite_id"] for s in sats].index(p[1])))
    row = {p: k for k, p in enumerate(pairs)}
    norm = colors.Normalize(vmin=0.3, vmax=1.0)
    cmap = matplotlib.colormaps["viridis"]
    fig, ax = plt.subplots(figsize=(13, 1.5 + 0.22 * max(1, len(pairs))))
    for w in plan["windows"]:
        y = row[(w["a"], w["b"])]
        ts = w["t"]
        for m in range(len(ts) - 1):
            ax.barh(y, (ts[m + 1] - ts[m]) / 3600.0, left=(ts[m] - t0) / 3600.0, height=0.7,
                    color=cmap(norm(w["quality"][m])), linewidth=0)
    ax.set_yticks(range(len(pairs)))
    name = dict((s["satellite_id"], s["name"]) for s in sats)
    ax.set_yticklabels(["%s - %s" % (name[a], name[b]) for a, b in pairs], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, (plan["t1"] - t0) / 3600.0)
    ax.set_xlabel("hours after %s" % orbitio.iso(t0))
    ax.set_title(title or "ISL link windows and quality (%d satellites, %d windows)"
                 % (len(sats), len(plan["windows"])))
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="link quality", pad=0.01)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
