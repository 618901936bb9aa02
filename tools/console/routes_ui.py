"""The operator view (docs/operator.md): the page at `/`, Open MCT and
Umbra's plugins under /ui/, and the read endpoints the plugins use under
/api/ui/ (user keys only; an agent key gets a 403 that says so).

Open MCT is a pinned npm dependency (tools/console/ui/package.json), put in
tools/console/ui/node_modules by `make setup` (`npm ci`). Without it `/`
says how to get it; the API does not depend on it.

None of these routes is in the OpenAPI document: they serve the view and are
not part of the agent/user protocol. The live feed is routes_stream.py.
"""
import json
import os
import tempfile
import threading

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import FileResponse, HTMLResponse, Response

from . import auth, constellations, deployments, telemetry_history
from .api import ApiError, Console, console_of, reply, sync
from .compare import compare, compare_fleet, with_agent_events

router = APIRouter()

UI_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ui")
OPENMCT_DIST = os.path.join(UI_DIR, "node_modules", "openmct", "dist")
OWN_FILES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html",
             ".json": "application/json"}
LOG_PAGE_MAX = 500
_plot_lock = threading.Lock()  # matplotlib's pyplot is not thread-safe


def operator(console, api_key):
    """The user key's record; 401 without a valid key, 403 for an agent key."""
    rec = console.key(api_key)
    if rec["kind"] != auth.USER:
        raise ApiError(403, "this is an agent key: the operator view takes a user key "
                            "(umbra keys create --user)")
    return rec


def openmct_installed():
    return os.path.isfile(os.path.join(OPENMCT_DIST, "openmct.js"))


NOT_INSTALLED = """<!doctype html><meta charset="utf-8"><title>Umbra operator view</title>
<body style="font-family: sans-serif; margin: 3em">
<h1>Umbra operator view</h1>
<p id="not-installed">The operator view needs Open MCT, which is not installed here:
run <code>make setup</code> (it runs <code>npm ci</code> in <code>tools/console/ui</code>).
The Console's API works without it.</p></body>"""


@router.get("/", include_in_schema=False)
async def index():
    if not openmct_installed():
        return HTMLResponse(NOT_INSTALLED, status_code=503)
    return FileResponse(os.path.join(UI_DIR, "index.html"), media_type="text/html",
                        headers={"Cache-Control": "no-cache"})


@router.get("/ui/openmct/{path:path}", include_in_schema=False)
async def openmct_file(path: str):
    return _file(OPENMCT_DIST, path, cache="public, max-age=86400")


@router.get("/ui/{name}", include_in_schema=False)
async def own_file(name: str):
    if os.path.splitext(name)[1] not in OWN_FILES:
        raise ApiError(404, "not found")
    return _file(UI_DIR, name, cache="no-cache")


def _file(top, path, cache):
    full = os.path.realpath(os.path.join(top, path))
    if not full.startswith(os.path.realpath(top) + os.sep) or not os.path.isfile(full):
        raise ApiError(404, "not found")
    media = OWN_FILES.get(os.path.splitext(full)[1])
    return FileResponse(full, media_type=media, headers={"Cache-Control": cache})


@router.get("/api/ui/whoami", include_in_schema=False)
async def whoami(x_api_key: str = Header(None), console: Console = Depends(console_of)):
    """Whether the key opens the operator view (never echoes the key)."""
    rec = await sync(operator, console, x_api_key)
    return reply({"kind": rec["kind"]})


@router.get("/api/ui/dictionary", include_in_schema=False)
async def dictionary(x_api_key: str = Header(None), console: Console = Depends(console_of)):
    """The telemetry dictionary: telemetry fields and the event catalog."""
    await sync(operator, console, x_api_key)
    return reply(telemetry_history.dictionary())


@router.get("/api/ui/deployments", include_in_schema=False)
async def list_deployments(x_api_key: str = Header(None),
                           limit: int = Query(200, ge=1, le=1000),
                           console: Console = Depends(console_of)):
    """The latest deployments, newest first, with status and counts."""
    db = console.db
    await sync(operator, console, x_api_key)
    rows = await sync(db.query, (
        "SELECT d.id, d.plan_id, d.satellite_id, d.mode, d.speed_multiplier, d.status, "
        "d.agent_id, d.created_at, d.updated_at, d.finished_at, d.kind, d.parent_id, "
        "json_extract(p.data, '$.job.name') AS job_name, "
        "json_array_length(json_extract(p.data, '$.job.steps')) AS steps_total, "
        "(SELECT COUNT(*) FROM events e WHERE e.deployment_id = d.id) AS events_count "
        "FROM deployments d LEFT JOIN plans p ON p.id = d.plan_id "
        "ORDER BY d.created_at DESC, d.id LIMIT ?"), (limit,))
    out = [dict(r) for r in rows]
    return reply({"deployments": out, "count": len(out)})


async def _known(console, dep_id, api_key):
    await sync(operator, console, api_key)
    dep = await sync(deployments.get, console.db, dep_id)
    if dep is None:
        raise ApiError(404, "no deployment %r" % dep_id)
    return dep


@router.get("/api/ui/deployments/{deployment_id}/log", include_in_schema=False)
async def event_log(deployment_id: str, x_api_key: str = Header(None),
                    type: str = Query(None, max_length=64),
                    step: str = Query(None, max_length=128),
                    offset: int = Query(0, ge=0, le=2 ** 40),
                    limit: int = Query(100, ge=1, le=LOG_PAGE_MAX),
                    console: Console = Depends(console_of)):
    """One page of a deployment's events in seq order, filtered by type and
    step (step "-": events of no step), with the total that match and the
    types and steps there are to filter by."""
    db = console.db
    await _known(console, deployment_id, x_api_key)
    where, args = "deployment_id = ?", [deployment_id]
    if type:
        where += " AND type = ?"
        args.append(type)
    if step == "-":
        where += " AND json_extract(data, '$.step_id') IS NULL"
    elif step:
        where += " AND json_extract(data, '$.step_id') = ?"
        args.append(step)

    def work():
        with db.read():  # one snapshot: the page, its total and last_row agree
            return page()

    def page():
        # the newest event row this page has taken into account: the view
        # adds live events after it, and none at or before it twice
        last_row = db.one("SELECT COALESCE(MAX(id), 0) FROM events WHERE deployment_id = ?",
                          (deployment_id,))[0]
        total = db.one("SELECT COUNT(*) FROM events WHERE " + where, args)[0]
        rows = db.query("SELECT id, received_at, data FROM events WHERE " + where +
                        " ORDER BY seq IS NULL, seq, id LIMIT ? OFFSET ?",
                        args + [limit, offset])
        types = [r[0] for r in db.query("SELECT DISTINCT type FROM events WHERE "
                                        "deployment_id = ? ORDER BY type", (deployment_id,))]
        steps = [r[0] for r in db.query(
            "SELECT DISTINCT json_extract(data, '$.step_id') AS s FROM events WHERE "
            "deployment_id = ? AND json_extract(data, '$.step_id') IS NOT NULL ORDER BY s", (deployment_id,))]
        return last_row, total, rows, types, steps

    last_row, total, rows, types, steps = await sync(work)
    return reply({"deployment_id": deployment_id, "total": total, "offset": offset,
                  "last_row": last_row,
                  "limit": limit, "types": types, "steps": steps,
                  "rows": [{"row": r["id"], "received_at": r["received_at"],
                            "event": json.loads(r["data"])} for r in rows]})


@router.get("/api/ui/deployments/{deployment_id}/samples", include_in_schema=False)
async def deployment_samples(deployment_id: str, x_api_key: str = Header(None),
                             console: Console = Depends(console_of)):
    """The spacecraft state a deployment's events carry (battery, temperature),
    in seq order, and the plan's battery forecast: the view's battery plot."""
    db = console.db
    dep = await _known(console, deployment_id, x_api_key)

    def work():
        rows = db.query("SELECT id, received_at, data FROM events WHERE deployment_id = ? "
                        "AND (data LIKE '%battery_percent%' OR data LIKE '%temperature_c%') "
                        "ORDER BY seq IS NULL, seq, id", (deployment_id,))
        plan = deployments.get_plan(db, dep["plan_id"]) or {}
        return rows, plan

    rows, plan = await sync(work)
    samples = telemetry_history.event_samples(
        [(r["id"], r["received_at"], json.loads(r["data"])) for r in rows])
    forecast = plan.get("forecast") or {}
    start = (plan.get("orbital_environment") or {}).get("prediction_start")
    return reply({"deployment_id": deployment_id, "samples": samples,
                  "forecast": {"start": start,
                               "samples": [row[:3] for row in forecast.get("samples") or []]}})


@router.get("/api/ui/deployments/{deployment_id}/compare", include_in_schema=False)
async def plan_versus_actual(deployment_id: str, x_api_key: str = Header(None),
                             console: Console = Depends(console_of)):
    """Plan versus actual (compare.py), as `umbra events --compare --json` prints it."""
    db = console.db
    dep = await _known(console, deployment_id, x_api_key)

    def work():
        plan = deployments.get_plan(db, dep["plan_id"]) or {"events": []}
        if dep.get("kind") == "parent":  # the merged stream against the fleet's prediction
            executed = [e for _, e in constellations.merged_rows(db, deployment_id)]
            return compare_fleet(plan["events"], executed)
        executed = [e for _, e in deployments.list_events(db, deployment_id)]
        if dep.get("agent_id"):
            executed = with_agent_events(executed, deployments.agent_events(db, dep["agent_id"]))
        return compare(plan["events"], executed)

    rows, summary = await sync(work)
    return reply({"deployment_id": deployment_id, "summary": summary,
                  "rows": [dict({"mark": r["mark"], "note": r["note"],
                                 "predicted": _brief(r["predicted"]),
                                 "executed": _brief(r["executed"])},
                                **({"satellite_id": r["satellite_id"]}
                                   if "satellite_id" in r else {})) for r in rows]})


def _brief(ev):
    if ev is None:
        return None
    return {k: ev.get(k) for k in ("type", "step_id", "timestamp", "seq")}


@router.get("/api/ui/deployments/{deployment_id}/timeline.png", include_in_schema=False)
async def timeline(deployment_id: str, x_api_key: str = Header(None),
                   console: Console = Depends(console_of)):
    """The timeline picture (tools/plot.py) of what the deployment executed so far."""
    db = console.db
    dep = await _known(console, deployment_id, x_api_key)

    def work():
        from tools.plot import draw
        plan = deployments.get_plan(db, dep["plan_id"])
        evs = [e for _, e in deployments.list_events(db, deployment_id)]
        if not evs and plan is None:
            raise ApiError(409, "deployment %r has no events yet" % deployment_id)
        with tempfile.TemporaryDirectory() as tmp, _plot_lock:
            path = os.path.join(tmp, "timeline.png")
            draw(plan, evs, path, "deployment %s (executed)" % deployment_id, executed=True)
            with open(path, "rb") as f:
                return f.read()

    return Response(await sync(work), media_type="image/png",
                    headers={"Cache-Control": "no-store"})


@router.get("/api/ui/agents/{agent_id}/telemetry", include_in_schema=False)
async def agent_telemetry(agent_id: str, x_api_key: str = Header(None),
                          start: str = Query(None, max_length=40),
                          end: str = Query(None, max_length=40),
                          limit: int = Query(5000, ge=1, le=telemetry_history.KEPT_PER_AGENT),
                          console: Console = Depends(console_of)):
    """An agent's telemetry history (received between start and end, ISO 8601 UTC)."""
    db = console.db
    await sync(operator, console, x_api_key)
    if await sync(db.one, "SELECT 1 FROM agents WHERE agent_id = ?", (agent_id,)) is None:
        raise ApiError(404, "no agent %r" % agent_id)
    samples = await sync(telemetry_history.history, db, agent_id, start, end, limit)
    return reply({"agent_id": agent_id, "samples": samples, "count": len(samples)})


@router.get("/api/ui/jobs/demo", include_in_schema=False)
async def demo_job(x_api_key: str = Header(None), console: Console = Depends(console_of)):
    """The demo's job (examples/jobs/demo-mission.json): what the view's
    "simulate" form starts from."""
    await sync(operator, console, x_api_key)
    from tools.demo import DEMO_JOB, DEMO_START
    with open(DEMO_JOB) as f:
        doc = json.load(f)
    return reply({"satellite_id": str(doc.get("satellite_id", "25544")),
                  "custom_job": doc.get("custom_job", doc), "start": DEMO_START})
