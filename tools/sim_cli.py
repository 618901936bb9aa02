"""`umbra sim`: a simulated satellite's orbital windows and state timeline; the
Simulation Service (`umbra sim serve`, tools/simservice/).

    umbra sim windows --satellite ISS --tle tests/data/iss-2018-07-03.tle --hours 24
    umbra sim run --satellite ISS --tle tests/data/iss-2018-07-03.tle --hours 6 --load-w 20 --json
"""
import json
import os

import click

import tools  # noqa: F401  (portable folders on sys.path)
from tools.clierrors import InputError
import hazards as hazardlib
import orbit as orbitlib
import orbitio
import orbitscan
import stations as stationlib
import timeutil
import world as worldlib


def _orbit_options(fn):
    opts = [
        click.option("--satellite", "satellite_id", required=True, help="Satellite id to display (e.g. its NORAD number)."),
        click.option("--tle", "tle_path", type=click.Path(dir_okay=False), help="File with a TLE (2 lines, or 3 with a name)."),
        click.option("--elements", help='Keplerian elements as JSON (or a JSON file): {"altitude_km": 550, "inclination_deg": 97.6, ...}.'),
        click.option("--start", help="Start of the span, ISO 8601 UTC (default: the elements' epoch)."),
        click.option("--hours", type=float, default=24.0, show_default=True, help="Length of the span."),
        click.option("--station", "station_ids", multiple=True, help="Only these stations (repeatable; default: the whole network)."),
        click.option("--min-elevation", type=float, default=5.0, show_default=True, help="Contact threshold, degrees."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _load_setup(tle_path, elements, start, hours, station_ids, min_elevation):
    """(elements, start_epoch, stations) from the options; ValueError/UsageError on bad input."""
    if bool(tle_path) == bool(elements):
        raise click.UsageError("give exactly one of --tle FILE or --elements JSON")
    if not 0 < hours <= 24 * 14:
        raise click.BadParameter("must be within (0, 336]", param_hint="--hours")
    if not -5 <= min_elevation < 90:
        raise click.BadParameter("must be within [-5, 90)", param_hint="--min-elevation")
    start_epoch = timeutil.parse_iso(start) if start else None
    if tle_path:
        try:
            with open(tle_path) as f:
                text = f.read()
        except OSError as exc:
            raise ValueError("cannot read TLE file %s: %s" % (tle_path, exc.strerror))
        el = orbitio.read_tle_text(text)
    else:
        raw = elements
        if os.path.isfile(raw):
            with open(raw) as f:
                raw = f.read()
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise ValueError("--elements is not valid JSON: %s" % exc)
        el = orbitio.keplerian_elements(data, default_epoch=start_epoch)
    if start_epoch is None:
        start_epoch = el["epoch"]
    stations = stationlib.select_stations(list(station_ids) or None)
    return el, start_epoch, stations


def _fail_cleanly(fn):
    """Bad input is a one-line error and exit status 2, never a traceback."""
    def wrapper(*args, **kw):
        try:
            return fn(*args, **kw)
        except ValueError as exc:
            raise InputError(str(exc))
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


@click.group()
def sim():
    """Simulated satellites: windows and state timelines."""


@sim.command()
@_orbit_options
@_fail_cleanly
def windows(satellite_id, tle_path, elements, start, hours, station_ids, min_elevation, as_json):
    """Print sunlit, eclipse and ground-contact windows."""
    el, t0, stations = _load_setup(tle_path, elements, start, hours, station_ids, min_elevation)
    orb = orbitlib.Orbit(el)
    t1 = t0 + hours * 3600.0
    wins = orbitscan.find_windows(orb, t0, t1, stations, min_elevation)
    if as_json:
        out = {"satellite": dict(orbitio.summary(orb), id=satellite_id, name=el.get("name") or satellite_id),
               "prediction_start": orbitio.iso(t0), "prediction_hours": hours,
               "min_elevation_deg": min_elevation,
               "windows": [orbitio.as_iso(w) for w in wins],
               "hazards": hazardlib.predict(orb, t0, t1, [(w["start"], w["end"]) for w in wins if w["kind"] == "eclipse"])}
        click.echo(json.dumps(out, indent=1))
        return
    s = orbitio.summary(orb)
    click.echo("%s: %.1f km, %.2f deg, period %.2f min; %s + %g h; min elevation %g deg"
               % (satellite_id, s["altitude_km"], s["inclination_deg"], s["period_min"],
                  orbitio.iso(t0), hours, min_elevation))
    click.echo("%-12s %-8s %-20s %-20s %9s  %-15s %s" % ("id", "kind", "start", "end", "duration", "station", "peak el"))
    for w in wins:
        click.echo("%-12s %-8s %-20s %-20s %8.0fs  %-15s %s" % (
            w["id"], w["kind"], orbitio.iso(w["start"]), orbitio.iso(w["end"]), w["duration_s"],
            w.get("station", ""), ("%.1f" % w["elevation_peak_deg"]) if "elevation_peak_deg" in w else ""))
    n = {}
    for w in wins:
        n[w["kind"]] = n.get(w["kind"], 0) + 1
    click.echo("%d sunlit, %d eclipse, %d contact windows" % (n.get("sunlit", 0), n.get("eclipse", 0), n.get("contact", 0)))


def _event(prev, cur):
    """What changed between two states, in words."""
    what = []
    if cur["in_eclipse"] != prev["in_eclipse"]:
        what.append("eclipse entry" if cur["in_eclipse"] else "eclipse exit")
    if cur["station"] != prev["station"]:
        if prev["station"]:
            what.append("LOS " + prev["station"])
        if cur["station"]:
            what.append("AOS " + cur["station"])
    if cur["compute_capacity"] != prev["compute_capacity"]:
        what.append("capacity %.1f" % cur["compute_capacity"])
    return ", ".join(what) or "-"


@sim.command()
@_orbit_options
@click.option("--load-w", type=float, default=0.0, show_default=True, help="Compute load requested all along (a step's power_w).")
@click.option("--memory-mb", type=float, default=0.0, help="Memory of that load.")
@click.option("--bus", "bus_json", help='Bus overrides as JSON, e.g. {"battery_wh": 60, "initial_soc": 0.5}.')
@_fail_cleanly
def run(satellite_id, tle_path, elements, start, hours, station_ids, min_elevation, as_json,
        load_w, memory_mb, bus_json):
    """Step a satellite through every boundary; print its state timeline."""
    el, t0, stations = _load_setup(tle_path, elements, start, hours, station_ids, min_elevation)
    try:
        bus = json.loads(bus_json) if bus_json else None
    except (ValueError, RecursionError) as exc:
        raise ValueError("--bus is not valid JSON: %s" % exc)
    world = worldlib.World(t0, hours * 3600.0, stations, min_elevation)
    sat = world.add_satellite(satellite_id, el, bus=bus)
    sat.set_compute_load(load_w, memory_mb)
    rows = [dict(worldlib.state_of(sat), event="start")]
    for _ in world.boundaries():
        st = worldlib.state_of(sat)
        st["event"] = _event(rows[-1], st)
        rows.append(st)
    if as_json:
        keep = ("time", "event", "battery_percent", "battery_wh", "temperature_c", "in_eclipse",
                "link_up", "station", "compute_capacity", "compute_load_w", "cpu_percent",
                "memory_mb", "lat", "lon", "altitude_km")
        out = [dict((k, round(r[k], 3) if isinstance(r[k], float) else r[k]) for k in keep) for r in rows]
        click.echo(json.dumps({"satellite_id": satellite_id, "load_w": load_w, "timeline": out}, indent=1))
        return
    click.echo("%-20s %-28s %8s %8s %-7s %-15s %4s" % ("time", "event", "battery", "temp", "eclipse", "link", "cap"))
    for r in rows:
        click.echo("%-20s %-28s %7.2f%% %6.1fC %-7s %-15s %4.1f" % (
            r["time"], r["event"][:28], r["battery_percent"], r["temperature_c"],
            "yes" if r["in_eclipse"] else "no", r["station"] or "-", r["compute_capacity"]))



# `umbra sim fleet`: a fleet's link windows and routes (tools/fleet_cli.py)
from tools.fleet_cli import fleet as _fleet  # noqa: E402
sim.add_command(_fleet)
@sim.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=click.IntRange(0, 65535))
@click.option("--db", "db_path", default=None, type=click.Path(dir_okay=False),
              help="SQLite file of the sessions (default var/simservice.db, or $UMBRA_SIM_DB).")
@click.option("--access-log", is_flag=True, help="Log every request.")
def serve(host, port, db_path, access_log):
    """Run the Simulation Service (HTTP: /v1/state, /v1/sessions; docs/simservice.md)."""
    import socket

    import uvicorn

    from tools import ROOT
    from tools.console.db import Unusable
    from tools.simservice.app import create_app
    from tools.simservice.db import SimDatabase
    path = db_path or os.environ.get("UMBRA_SIM_DB") or os.path.join(ROOT, "var", "simservice.db")
    try:  # a clear error now rather than uvicorn's log line after start-up
        with socket.create_server((host, port)):
            pass
    except (OSError, OverflowError) as exc:
        raise InputError("cannot listen on %s:%d: %s" % (host, port,
                                                         getattr(exc, "strerror", None) or exc))
    try:
        db = SimDatabase(path)
    except Unusable as exc:
        raise InputError(str(exc))
    click.echo("Umbra Simulation Service on http://%s:%d  (database %s, API docs at /docs)"
               % (host, port, path), err=True)
    uvicorn.run(create_app(db=db), host=host, port=port, log_level="info", access_log=access_log)
