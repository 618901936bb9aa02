"""Plans: `POST /v1/plan` (the planner) and a plan's predicted events."""
import secrets
import time

from fastapi import APIRouter, Depends, Header, Request

from . import catalog, constellations, deployments, planning, schemas
from .api import ApiError, Console, console_of, read_json, reply, sync, validate
from .db import now_iso
import timeutil  # noqa: E402  (portable, on sys.path through tools)

router = APIRouter()


@router.post("/v1/plan", tags=["user"],
             openapi_extra=schemas.openapi_body(schemas.plan_body_schema()))
async def plan(request: Request, x_api_key: str = Header(None),
               console: Console = Depends(console_of)):
    """Plan a job on a satellite: the plan (STEPS.md) with its predicted events.
    400 invalid job, 404 unknown satellite, 422 infeasible."""
    db = console.db
    await sync(console.user, x_api_key)
    raw = await read_json(request, console)
    body = validate(schemas.PlanBody, raw)

    def work():
        sat = catalog.get(db, body.satellite_id)
        if sat is None:
            raise ApiError(404, "no satellite %r in the catalog" % body.satellite_id)
        try:
            result = planning.make_plan(sat, raw["custom_job"], raw.get("planning"),
                                        time.time())
        except planning.PlanError as exc:
            raise ApiError(exc.status, exc.reason)
        # the reply is rendered before the plan is stored: a reply that cannot be
        # built stores nothing (no plan whose id was never returned)
        response = reply(result)
        deployments.save_plan(db, result)
        return response

    return await sync(work)


@router.post("/v1/constellation/plan", tags=["user"],
             openapi_extra=schemas.openapi_body(schemas.constellation_plan_body_schema()))
async def constellation_plan(request: Request, x_api_key: str = Header(None),
                             console: Console = Depends(console_of)):
    """Plan one DAG across a fleet (CONSTELLATION.md): each step's satellite
    and alternates, the ISL route of every edge between satellites, metrics,
    each satellite's lane (eclipses, ISL windows), and `events`, the
    predicted fleet stream (each event with its satellite_id, in time
    order; the fleet's own agents flying the plan). 400 invalid fleet or job
    (naming the satellite or step), 422 cannot be planned (a cycle, no
    satellite with a step's role, an edge with no route or a step that cannot
    finish before the deadline: the step or the pair named); nothing is
    stored then. The plan is stored under its `id` (= plan_id): `POST
    /api/deployments {plan_id}` deploys it, one child per satellite used."""
    db = console.db
    await sync(console.user, x_api_key)
    raw = await read_json(request, console)
    body = validate(schemas.ConstellationPlanBody, raw)
    options = body.planning

    def work():
        from tools.planner import PlanError
        from tools.planner.constellation import make_constellation_plan
        try:
            start = timeutil.parse_iso(options.start) if options and options.start else \
                (timeutil.parse_iso(body.epoch) if body.epoch else int(time.time()))
        except ValueError:
            raise ApiError(400, "planning.start: must be ISO 8601 UTC")
        doc = {"fleet": raw["fleet"], "epoch": body.epoch or timeutil.iso_utc(start)}
        plan_id = "cplan-" + secrets.token_hex(6)
        try:
            result = make_constellation_plan(
                doc, raw["job"], start, options.prediction_hours if options else None,
                plan_id=plan_id)
        except PlanError as exc:
            raise ApiError(exc.status, exc.reason)
        result = dict(result, id=plan_id, kind="constellation", job=raw["job"],
                      epoch=doc["epoch"], fleet_doc=raw["fleet"], created_at=now_iso())
        response = reply(result)  # rendered first: a reply that cannot be built stores nothing
        constellations.save_plan(db, result)
        return response

    return await sync(work)


@router.get("/v1/plan/{plan_id}/events", tags=["user"])
async def plan_events(plan_id: str, x_api_key: str = Header(None),
                      console: Console = Depends(console_of)):
    """The plan's predicted event stream."""
    db = console.db
    await sync(console.user, x_api_key)
    plan_doc = await sync(deployments.get_plan, db, plan_id)
    if plan_doc is None:
        raise ApiError(404, "no plan %r" % plan_id)
    return reply({"plan_id": plan_id, "events": plan_doc["events"],
                  "count": len(plan_doc["events"])})
