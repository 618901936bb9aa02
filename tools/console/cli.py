"""`umbra console | keys | satellites | submit | events`.

Client commands find the Console and the user key in --console / --key or
the environment (UMBRA_CONSOLE, UMBRA_KEY). `keys` and the `--db` forms use
the database directly: bootstrapping needs a first user key. Errors are one
line and an exit status of tools/clierrors.py.
"""
import json
import sys

import click

from tools.clierrors import InputError, Unreachable, open_database

from .constellations import GROUND, GROUND_END_GRACE_S

DEFAULT_URL = "http://127.0.0.1:8000"


def _db_option(f):
    return click.option("--db", "db_path", default=None, type=click.Path(dir_okay=False),
                        help="SQLite file or postgresql://USER@HOST[:PORT]/DB "
                             "(default var/console.db, or $UMBRA_DB).")(f)


def _client_options(f):
    f = click.option("--key", envvar="UMBRA_KEY", default=None,
                     help="User API key (or $UMBRA_KEY).")(f)
    f = click.option("--console", "console_url", envvar="UMBRA_CONSOLE", default=DEFAULT_URL,
                     show_default=True, help="Console URL (or $UMBRA_CONSOLE).")(f)
    return f


def _open_db(db_path, create=False):
    """The Console database; create=True only where a first one is made (keys create)."""
    from .app import default_db_path
    return open_database(db_path or default_db_path(), create=create)


def _client(console_url, key, timeout=30.0):
    import httpx
    headers = {"User-Agent": "umbra-cli/0.1.0"}
    if key:
        headers["X-API-Key"] = key
    return httpx.Client(base_url=console_url.rstrip("/"), headers=headers,
                        timeout=httpx.Timeout(timeout))


def _call(client, method, path, **kw):
    """JSON reply of a request; ClickException with the Console's error otherwise."""
    import httpx
    try:
        r = client.request(method, path, **kw)
    except httpx.HTTPError as exc:
        raise Unreachable("cannot reach the Console at %s: %s" % (client.base_url, exc))
    try:
        body = r.json()
    except ValueError:
        body = {}
    if r.status_code >= 400:
        raise click.ClickException("%s %s -> %d: %s" % (method, path, r.status_code,
                                                        body.get("error", r.text[:200])))
    return body


# ---------------------------------------------------------------- console

@click.command()
@_db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--max-body", default=256 * 1024, show_default=True,
              type=click.IntRange(1, None),
              help="Largest request body in bytes (bigger ones get 413).")
@click.option("--access-log", is_flag=True,
              help="Log every request (off by default: a thousand agents poll every 10 s).")
@click.option("--ground-end-grace", "ground_end_grace_s", default=GROUND_END_GRACE_S,
              show_default=True, type=click.FloatRange(0, None), metavar="SECONDS",
              help="Past a constellation job's deadline by this much, the Console fails "
                   "the parts that never ended (their satellites' last downlinks had time).")
def console(db_path, host, port, max_body, access_log, ground_end_grace_s):
    """Run the ground Console (HTTP API on SQLite or PostgreSQL)."""
    import socket

    import uvicorn

    from .app import create_app, default_db_path
    from .db import shown
    path = db_path or default_db_path()
    try:  # a clear error now rather than uvicorn's log line after start-up
        with socket.create_server((host, port)):
            pass
    except (OSError, OverflowError) as exc:
        raise InputError("cannot listen on %s:%d: %s" % (host, port,
                                                         getattr(exc, "strerror", None) or exc))
    app = create_app(db=_open_db(path, create=True), max_body=max_body,
                     ground_end_grace_s=ground_end_grace_s)
    click.echo("Umbra Console on http://%s:%d  (database %s, API docs at /docs)"
               % (host, port, shown(path)), err=True)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=access_log)


# ---------------------------------------------------------------- keys

@click.group()
def keys():
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--agent", "agent_id", default=None, help="Agent id the key belongs to.")
@click.option("--satellite", "satellite_id", default=None,
              help="The satellite an agent key acts for (default: the one its agent id names, "
                   "sat-<NORAD id>).")
@click.option("--user", "user", is_flag=True, help="A user key (plans, deployments, admin).")
@click.option("--uplink", is_flag=True, help="Also create the agent's workload signing key.")
@click.option("--no-rate-limit", is_flag=True,
              help="Lift the per-agent rate limits (agents running in simulated time).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_db_option
def keys_create(agent_id, satellite_id, user, uplink, no_rate_limit, as_json, db_path):
    """Create a key (printed once; only its SHA-256 is stored)."""
    from . import auth
    if user == bool(agent_id):
        raise click.UsageError("give exactly one of --agent ID or --user")
    try:
        out = auth.create_key(_open_db(db_path, create=True), auth.USER if user else auth.AGENT,
                              agent_id, uplink=uplink, rate_limited=not no_rate_limit,
                              satellite_id=satellite_id)
    except ValueError as exc:
        raise InputError(str(exc))
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo("key: %s" % out["key"])
    if out.get("uplink_key"):
        click.echo("uplink_key: %s" % out["uplink_key"])
    click.echo("(shown once: store it now)", err=True)


KEY_COLUMNS = (("key_hash", "hash", 16), ("kind", "kind", 5), ("agent_id", "agent", 20),
               ("satellite_id", "satellite", 12), ("created_at", "created", 24), ("last_used_at", "last used", 24),
               ("revoked_at", "revoked", 24))


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (full hashes).")
@_db_option
def keys_list(as_json, db_path):
    """List the keys: hash (first 16 hex digits), kind, agent, satellite, created,
    last used (to the minute), revoked."""
    from . import auth
    rows = auth.list_keys(_open_db(db_path))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    fmt = "  ".join("%%-%ds" % width for _, _, width in KEY_COLUMNS)
    click.echo(fmt % tuple(title for _, title, _ in KEY_COLUMNS))
    for row in rows:
        click.echo((fmt % tuple((row[col] or "-")[:width] for col, _, width in KEY_COLUMNS))
                   .rstrip())


@keys.command("revoke")
@click.argument("key")
@_db_option
def keys_revoke(key, db_path):
    """Revoke KEY (the key itself, or 8+ hex digits of its hash from `keys list`):
    a running Console refuses it (401) from its next request on."""
    from . import auth
    db = _open_db(db_path)
    try:
        key_hash = auth.find_key(db, key)
    except ValueError as exc:
        raise InputError(str(exc))
    rec = auth.revoke_key(db, key_hash)
    click.echo("revoked %s (%s%s) at %s" % (key_hash[:16], rec["kind"],
                                             " " + rec["agent_id"] if rec["agent_id"] else "",
                                             rec["revoked_at"]))


# ---------------------------------------------------------------- satellites

@click.group()
def satellites():
    """Satellite catalog on a Console."""


@satellites.command("list")
@_db_option
@_client_options
@click.option("--json", "as_json", is_flag=True)
def satellites_list(db_path, console_url, key, as_json):
    """List the catalog (from --db directly, else from the Console)."""
    if db_path:
        from . import catalog
        sats = catalog.all_satellites(_open_db(db_path))
    else:
        with _client(console_url, key) as c:
            sats = _call(c, "GET", "/api/satellites")["satellites"]
    if as_json:
        click.echo(json.dumps(sats, indent=2))
        return
    for s in sats:
        o = s["orbit"]
        click.echo("%-8s %-14s incl %6.2f°  alt %7.1f km  period %6.1f min  epoch %s"
                   % (s["satellite_id"], s["name"], o["inclination_deg"], o["altitude_km"],
                      o["period_min"], o.get("tle_epoch", "-")))


@satellites.command("add")
@click.option("--id", "satellite_id", required=True)
@click.option("--name", required=True)
@click.option("--tle-file", type=click.File("r"), help="File with the two TLE lines.")
@click.option("--elements", help='Keplerian elements as JSON, e.g. \'{"altitude_km": 500, '
                                 '"inclination_deg": 97.4}\'.')
@click.option("--bus", help="Bus parameters as JSON (battery_wh, solar_w, ...).")
@_db_option
@_client_options
def satellites_add(satellite_id, name, tle_file, elements, bus, db_path, console_url, key):
    """Add a satellite by TLE or Keplerian elements."""
    tle = None
    if tle_file is not None:
        lines = [ln.rstrip("\n") for ln in tle_file if ln.strip() and not ln.startswith("#")]
        if len(lines) < 2:
            raise click.UsageError("the TLE file needs two lines")
        tle = lines[-2:]
    try:
        elements = json.loads(elements) if elements else None
        bus = json.loads(bus) if bus else None
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise click.UsageError("bad JSON: %s" % exc)
    if db_path:
        from . import catalog
        try:
            rec = catalog.add(_open_db(db_path), satellite_id, name, tle=tle, elements=elements,
                              bus=bus)
        except KeyError:
            raise click.ClickException("satellite %r already exists" % satellite_id)
        except ValueError as exc:
            raise InputError(str(exc))
    else:
        body = {"satellite_id": satellite_id, "name": name}
        for k, v in (("tle", tle), ("elements", elements), ("bus", bus)):
            if v is not None:
                body[k] = v
        with _client(console_url, key) as c:
            rec = _call(c, "POST", "/api/satellites", json=body)
    click.echo("added %s (%s)" % (rec["satellite_id"], rec["name"]))


# ---------------------------------------------------------------- submit

@click.command()
@click.argument("job_file", type=click.File("r"), required=False)
@click.option("--fleet", "fleet_file", type=click.File("r"), default=None,
              help="A fleet file with its job (examples/fleets/): plan the job across the "
                   "fleet and deploy it, one child deployment per satellite used.")
@click.option("--satellite", "satellite_id", default=None,
              help="Satellite id (default: the job file's satellite_id).")
@click.option("--mode", type=click.Choice(["live", "simulated"]), default="live",
              show_default=True)
@click.option("--speed", type=float, default=0.0, show_default=True,
              help="Simulated mode: speed multiplier (0 = all events at once).")
@click.option("--start", default=None, help="Plan start, ISO 8601 UTC (default now).")
@_client_options
def submit(job_file, fleet_file, satellite_id, mode, speed, start, console_url, key):
    """Plan a job and create a deployment on a Console; prints the deployment id.
    With --fleet FILE: a constellation job (the fleet file's job, or JOB_FILE),
    planned across the fleet; prints the parent deployment's id."""
    if fleet_file is not None:
        return _submit_fleet(fleet_file, job_file, satellite_id, mode, speed, start, console_url,
                             key)
    if job_file is None:
        raise click.UsageError("give JOB_FILE, or --fleet FILE")
    try:
        doc = json.load(job_file)
    except (ValueError, RecursionError) as exc:
        raise click.UsageError("%s is not JSON: %s" % (job_file.name, exc))
    if isinstance(doc, dict) and "custom_job" in doc:
        job = doc["custom_job"]
        satellite_id = satellite_id or doc.get("satellite_id")
        planning = doc.get("planning")
    else:
        job, planning = doc, None
    if not satellite_id:
        raise click.UsageError("give --satellite (the job file names none)")
    planning = dict(planning or {})
    if start:
        planning["start"] = start
    body = {"satellite_id": str(satellite_id), "custom_job": job}
    if planning:
        body["planning"] = planning
    with _client(console_url, key, timeout=120) as c:
        plan = _call(c, "POST", "/v1/plan", json=body)
        dep = _call(c, "POST", "/api/deployments",
                    json={"plan_id": plan["id"], "mode": mode, "speed_multiplier": speed})
    click.echo("plan %s: %d steps, %d predicted events, %s s; deployment %s (%s)"
               % (plan["id"], len(plan["job"]["steps"]), len(plan["events"]),
                  plan["plan"]["total_duration_s"], dep["id"], mode), err=True)
    click.echo(dep["id"])


def _read_json(f):
    try:
        return json.load(f)
    except (ValueError, RecursionError) as exc:
        raise click.UsageError("%s is not JSON: %s" % (f.name, exc))


def _submit_fleet(fleet_file, job_file, satellite_id, mode, speed, start, console_url, key):
    """POST /v1/constellation/plan, then POST /api/deployments with its id
    (simulated: the Console writes the predicted fleet stream, child by child)."""
    if satellite_id:
        raise click.UsageError("--satellite does not go with --fleet (the planner assigns "
                               "the satellites)")
    doc = _read_json(fleet_file)
    if not isinstance(doc, dict) or not isinstance(doc.get("fleet"), list):
        raise click.UsageError("%s is not a fleet file ({epoch?, fleet: [...], job?})"
                               % fleet_file.name)
    job = _read_json(job_file) if job_file is not None else doc.get("job")
    if isinstance(job, dict) and "custom_job" in job:
        job = job["custom_job"]
    if job is None:
        raise click.UsageError("%s has no job: give JOB_FILE" % fleet_file.name)
    body = {"fleet": doc["fleet"], "job": job}
    if doc.get("epoch"):
        body["epoch"] = doc["epoch"]
    if start:
        body["planning"] = {"start": start}
    with _client(console_url, key, timeout=120) as c:
        plan = _call(c, "POST", "/v1/constellation/plan", json=body)
        dep = _call(c, "POST", "/api/deployments",
                    json={"plan_id": plan["id"], "mode": mode, "speed_multiplier": speed})
    m = plan["metrics"]
    click.echo("plan %s: %d steps on %d satellites, critical path %s s, %d ISL transfers, "
               "reliability %s, %d predicted events; deployment %s (%s)" % (
                   plan["id"], len(plan["steps"]), m["satellites_used"], m["critical_path_s"],
                   m["isl_transfers"], m["reliability"], len(plan.get("events") or ()),
                   dep["id"], mode), err=True)
    by_sat = {}
    for s in plan["steps"]:
        by_sat.setdefault(s["satellite"], []).append(s["step_id"])
    for ch in dep.get("children") or ():
        click.echo("  %-10s %s  %s" % (ch["satellite_id"], ch["deployment_id"],
                                       ", ".join(by_sat.get(ch["satellite_id"], []))), err=True)
    click.echo(dep["id"])


# ---------------------------------------------------------------- events

TYPE_COLOURS = (("job.completed", "green"), ("job.failed", "red"), ("job.", "bright_white"),
                ("fault.", "red"), ("agent.safe_mode", "red"), ("agent.", "magenta"),
                ("placement.", "yellow"), ("plan.", "yellow"), ("step.paused", "bright_yellow"),
                ("step.", "cyan"), ("transfer.", "blue"), ("eclipse_step.", "bright_blue"),
                ("window_step.", "bright_cyan"), ("pass_step.", "bright_magenta"),
                ("checkpoint.", "white"), ("security.", "white"), ("constellation.", "green"),
                ("isl_transfer.", "blue"))
KEY_FIELDS = ("status", "reason", "location", "percent", "duration_s", "data_output_mb",
              "total_duration_s", "name", "steps", "window_label", "tier", "kind", "action",
              "progress_fraction", "segments", "data_transferred_mb", "total_mb")


def format_event(ev):
    """One readable line: time, seq, type, step, key payload fields."""
    ts = ev.get("timestamp", "")
    clock = ts[11:19] if len(ts) >= 19 else ts
    etype = ev.get("type", "?")
    colour = "white"
    for prefix, c in TYPE_COLOURS:
        if etype.startswith(prefix):
            colour = c
            break
    payload = ev.get("payload") or {}
    fields = ["%s=%s" % (k, _short(payload[k])) for k in KEY_FIELDS
              if payload.get(k) is not None]
    fields += ["%s=%s" % (k, _short(v)) for k, v in payload.items()
               if k not in KEY_FIELDS and v is not None][:max(0, 4 - len(fields))]
    seq = ev.get("seq")
    sat = ev.get("satellite_id")  # a constellation parent's merged stream
    if sat is not None and etype == "constellation.step_completed" and ev.get("counted") is False:
        fields.insert(0, "NOT-COUNTED(epoch %s)" % (payload.get("epoch") or 1))
    elif sat is not None and ev.get("counted") is False:  # a job end after the ground's end
        fields.insert(0, "NOT-COUNTED(after the ground's end)")
    if ev.get("agent_id") == GROUND:  # the Console's own record (constellations.end_overdue)
        fields.insert(0, "BY-THE-GROUND")
    return "%s%s %s %s %s %s" % (
        click.style("%-8s " % sat, fg="bright_blue") if sat is not None else "",
        click.style(clock, dim=True),
        click.style("#%-4s" % (seq if seq is not None else "-"), dim=True),
        click.style("%-28s" % etype, fg=colour, bold=etype.startswith("job.")),
        click.style("%-14s" % (ev.get("step_id") or "-"), fg="bright_white"),
        " ".join(fields))


def _short(v):
    if isinstance(v, float):
        return ("%.3f" % v).rstrip("0").rstrip(".")
    if isinstance(v, (dict, list)):
        text = json.dumps(v)
        return text if len(text) <= 40 else text[:37] + "..."
    return str(v)


def _sse(lines):
    """(event name, data) pairs from Server-Sent Events lines."""
    name, data = None, []
    for line in lines:
        if line == "":
            if data:
                yield name or "message", "\n".join(data)
            name, data = None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))


@click.command()
@click.argument("deployment")
@click.option("--follow", "-f", is_flag=True, help="Stream new events until the job ends.")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line.")
@click.option("--compare", is_flag=True,
              help="Predicted beside executed, aligned; divergences marked and explained.")
@_client_options
def events(deployment, follow, as_json, compare, console_url, key):
    """Print or follow a deployment's events (a constellation parent: its
    children's, merged in time order, each line led by its satellite). With
    --follow the exit status is 0 when the job completed, 1 when it failed,
    was partial or was cancelled. With --compare the
    exit status is 0 when the execution matched the plan, 1 when it diverged."""
    import httpx

    def show(ev):
        click.echo(json.dumps(ev, ensure_ascii=False) if as_json else format_event(ev))

    path = "/api/deployments/%s/events" % deployment
    if compare:
        sys.exit(_compare(deployment, as_json, console_url, key))
    if not follow:
        with _client(console_url, key) as c:
            body = _call(c, "GET", path)
        for ev in body["events"]:
            show(ev)
        return
    status = None
    with _client(console_url, key) as c:
        try:
            with c.stream("GET", path, params={"follow": 1},
                          timeout=httpx.Timeout(10.0, read=60.0)) as r:
                if r.status_code >= 400:
                    r.read()
                    try:
                        msg = r.json().get("error")
                    except ValueError:
                        msg = r.text[:200]
                    raise click.ClickException("%s -> %d: %s" % (path, r.status_code, msg))
                for name, data in _sse(r.iter_lines()):
                    if name == "end":
                        status = json.loads(data).get("status")
                        break
                    show(json.loads(data))
                    sys.stdout.flush()
        except httpx.HTTPError as exc:
            raise Unreachable("lost the Console at %s: %s" % (console_url, exc))
    if not as_json:
        click.echo(click.style("deployment %s %s" % (deployment, status),
                               fg="green" if status == "completed" else "red"), err=True)
    if status != "completed":
        sys.exit(1)


def _compare(deployment, as_json, console_url, key):
    from .compare import compare, compare_fleet, with_agent_events
    with _client(console_url, key) as c:
        dep = _call(c, "GET", "/api/deployments/%s" % deployment)
        predicted = _call(c, "GET", "/v1/plan/%s/events" % dep["plan_id"])["events"]
        executed = _call(c, "GET", "/api/deployments/%s/events" % deployment)["events"]
        if dep.get("agent_id"):
            health = _call(c, "GET", "/api/agents/%s/events" % dep["agent_id"])["events"]
            executed = with_agent_events(executed, health)
    fleet = dep.get("kind") == "parent"  # the merged stream against the fleet's prediction
    rows, summary = (compare_fleet if fleet else compare)(predicted, executed)
    if as_json:
        click.echo(json.dumps({"deployment": deployment, "summary": summary, "rows": [
            dict({"mark": r["mark"], "note": r["note"],
                  "predicted": _brief(r["predicted"]), "executed": _brief(r["executed"])},
                 **({"satellite_id": r["satellite_id"]} if fleet else {}))
            for r in rows]}, ensure_ascii=False))
        return 0 if summary["identical"] else 1
    colours = {"=": "white", "~": "yellow", "-": "red", "+": "cyan"}
    lead = "%-8s " if fleet else "%s"
    click.echo(click.style(lead % ("sat" if fleet else "") +
                           "%-1s %-8s %-28s %-12s | %-8s %-28s %-12s %s" % (
        "", "planned", "predicted", "step", "actual", "executed", "step", "why"), bold=True))
    for r in rows:
        p, e = r["predicted"] or {}, r["executed"] or {}
        click.echo(click.style(lead % (r.get("satellite_id") or "" if fleet else "") +
                               "%-1s %-8s %-28s %-12s | %-8s %-28s %-12s %s" % (
            r["mark"], (p.get("timestamp") or "")[11:19], p.get("type") or "",
            p.get("step_id") or "", (e.get("timestamp") or "")[11:19], e.get("type") or "",
            e.get("step_id") or "", r["note"]), fg=colours[r["mark"]]))
    first = summary["first_divergence"]
    click.echo("%d as predicted, %d shifted, %d missing, %d extra%s" % (
        summary["matched"], summary["shifted"], summary["missing"], summary["extra"],
        "" if first is None else "; first divergence at %s: %s %s (%s)" % (
            first["timestamp"], first["type"], first["step_id"] or "", first["note"])))
    return 0 if summary["identical"] else 1


def _brief(ev):
    if ev is None:
        return None
    return {"type": ev.get("type"), "step_id": ev.get("step_id"), "timestamp": ev.get("timestamp"),
            "seq": ev.get("seq")}


__all__ = ["console", "keys", "satellites", "submit", "events"]
