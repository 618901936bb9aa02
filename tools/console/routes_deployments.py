"""Deployments: create (live or simulated), status and summary, the stored
events (or a Server-Sent Events stream of them), cancel."""
import asyncio
import json
import time

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from . import auth, constellations, deployments, schemas
from . import eventcheck as event_catalog
from .api import (SSE_KEEPALIVE_S, SSE_POLL_S, ApiError, Console, console_of, read_json,
                  reply, sync, validate)
from .db import now_iso

router = APIRouter()


@router.post("/api/deployments", status_code=201, tags=["user"],
             openapi_extra=schemas.openapi_body(schemas.DeploymentBody))
async def create_deployment(request: Request, x_api_key: str = Header(None),
                            console: Console = Depends(console_of)):
    """Deploy a plan: live (an agent polls for it) or simulated (the Console
    writes the predicted events, paced by speed_multiplier; 0 = at once).
    A constellation plan (POST /v1/constellation/plan): a parent deployment
    and one child per satellite the plan uses (`children`); simulated, each
    child writes its satellite's share of the predicted fleet stream."""
    db = console.db
    await sync(console.user, x_api_key)
    body = validate(schemas.DeploymentBody, await read_json(request, console))

    def work():
        plan_doc = deployments.get_plan(db, body.plan_id)
        if plan_doc is None:
            raise ApiError(404, "no plan %r" % body.plan_id)
        if constellations.is_constellation_plan(plan_doc):
            if body.mode == "simulated" and not plan_doc.get("events"):
                raise ApiError(422, "plan %r has no predicted fleet stream to simulate: "
                                    "deploy it live" % body.plan_id)
            constellations.add_to_catalog(db, plan_doc)  # so their agents' keys can be made
            parent, kids = constellations.create(db, plan_doc, body.mode,
                                                 body.speed_multiplier)
            return parent, [{"deployment_id": d, "satellite_id": sat} for sat, d in kids.items()]
        return deployments.create(db, plan_doc, body.mode, body.speed_multiplier), None

    dep_id, kids = await sync(work)
    if body.mode == "simulated":
        for d in [k["deployment_id"] for k in kids] if kids is not None else [dep_id]:
            console.simulator.start(d)
    if kids is not None:  # a constellation: the parent, and one child per satellite used
        return reply({"id": dep_id, "status": "pending", "children": kids}, 201)
    return reply({"id": dep_id, "status": "pending"}, 201)


@router.get("/api/deployments/{deployment_id}", tags=["user"])
async def get_deployment(deployment_id: str, x_api_key: str = Header(None),
                         x_agent_id: str = Header(None),
                         console: Console = Depends(console_of)):
    """Status and summary (users: any; agents: their own)."""
    db = console.db
    await sync(reader, console, deployment_id, x_api_key, x_agent_id)
    await sync(ground_end, console, deployment_id)
    return reply(await sync(deployments.summary, db, deployment_id))


def ground_end(console, dep_id):
    """A constellation parent read past its job's deadline and the grace: the
    Console ends what never ended first (constellations.end_overdue)."""
    return constellations.end_overdue(console.db, dep_id, console.ground_end_grace_s)


def reader(console, dep_id, api_key, agent_id):
    rec = console.key(api_key)
    if rec["kind"] == auth.AGENT:
        console.agent(api_key, agent_id)
        console.deployment_for_agent(dep_id, agent_id)
    elif deployments.get(console.db, dep_id) is None:
        raise ApiError(404, "no deployment %r" % dep_id)


@router.get("/api/deployments/{deployment_id}/events", tags=["user"],
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "events in seq order, or an SSE stream"}})
async def get_events(deployment_id: str, request: Request, x_api_key: str = Header(None),
                     x_agent_id: str = Header(None),
                     follow: bool = Query(False, description="stream as Server-Sent Events "
                                          "until the terminal event"),
                     console: Console = Depends(console_of)):
    """Stored events in seq order; ?follow=1 streams them as Server-Sent Events
    and ends after the terminal event."""
    db = console.db
    await sync(reader, console, deployment_id, x_api_key, x_agent_id)
    dep = await sync(deployments.get, db, deployment_id)
    if dep["kind"] == "parent":
        return await parent_events(console, dep, request, follow)
    if not follow:
        evs = await sync(deployments.list_events, db, deployment_id)
        dep = await sync(deployments.get, db, deployment_id)
        return reply({"deployment_id": deployment_id, "status": dep["status"],
                      "events": [e for _, e in evs], "count": len(evs)})
    return StreamingResponse(sse_stream(console, deployment_id, request),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


async def sse_stream(console, dep_id, request):
    db = console.db
    last_row = 0  # row ids only grow: each round reads only what is new
    last_beat = time.monotonic()
    while not console.simulator.stop.is_set():
        dep = await sync(deployments.get, db, dep_id)
        evs = await sync(deployments.list_events, db, dep_id, last_row)
        for row_id, ev in evs:
            last_row = max(last_row, row_id)
            yield "id: %s\nevent: %s\ndata: %s\n\n" % (
                ev.get("seq") if ev.get("seq") is not None else row_id, ev["type"],
                json.dumps(ev, ensure_ascii=False))
            if ev["type"] in event_catalog.TERMINAL:
                # re-read: the status moved with this event, after `dep` was read
                yield end_message(await sync(deployments.get, db, dep_id))
                return
        if dep["status"] in deployments.FINISHED:
            # finished without a terminal event (e.g. cancelled before dispatch)
            yield end_message(dep)
            return
        if await request.is_disconnected():
            return
        if time.monotonic() - last_beat > SSE_KEEPALIVE_S:
            last_beat = time.monotonic()
            yield ": keep-alive %s\n\n" % now_iso()
        await asyncio.sleep(SSE_POLL_S)


def _merged_with_view(db, parent_id):
    """The parent's merged events, step completions marked `counted` (one read snapshot)."""
    with db.read():
        plan = deployments.get_plan(db, deployments.get(db, parent_id)["plan_id"])
        rows = constellations.merged_rows(db, parent_id)
    constellations.step_view(plan, [e for _, e in rows])
    return rows


async def parent_events(console, dep, request, follow):
    """A constellation parent: its children's events merged in time order
    (spacecraft timestamp, then satellite, then seq), each with its
    satellite_id; ?follow=1 streams them, ending after the parent finished."""
    db = console.db
    if not follow:
        await sync(ground_end, console, dep["id"])
        rows = await sync(_merged_with_view, db, dep["id"])
        dep = await sync(deployments.get, db, dep["id"])
        return reply({"deployment_id": dep["id"], "status": dep["status"],
                      "events": [e for _, e in rows], "count": len(rows)})
    return StreamingResponse(parent_stream(console, dep["id"], request),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


async def parent_stream(console, parent_id, request):
    """Every child event once: each round sends what is new since the last
    (row ids only grow), in merge order within the round; after the round
    that finds the parent finished, the end message."""
    db = console.db
    sent = set()
    last_beat = time.monotonic()
    while not console.simulator.stop.is_set():
        # the status before the events: a round that saw it finished has every event
        await sync(ground_end, console, parent_id)
        dep = await sync(deployments.get, db, parent_id)
        rows = await sync(_merged_with_view, db, parent_id)
        for row_id, ev in rows:
            if row_id in sent:
                continue
            sent.add(row_id)
            yield "id: %s\nevent: %s\ndata: %s\n\n" % (
                row_id, ev["type"], json.dumps(ev, ensure_ascii=False))
        if dep["status"] in constellations.PARENT_FINISHED:
            yield end_message(dep)
            return
        if await request.is_disconnected():
            return
        if time.monotonic() - last_beat > SSE_KEEPALIVE_S:
            last_beat = time.monotonic()
            yield ": keep-alive %s\n\n" % now_iso()
        await asyncio.sleep(SSE_POLL_S)


def end_message(dep):
    return "event: end\ndata: %s\n\n" % json.dumps(
        {"deployment_id": dep["id"], "status": dep["status"], "server_time": now_iso()})


@router.post("/api/deployments/{deployment_id}/cancel", tags=["user"])
async def cancel_deployment(deployment_id: str, x_api_key: str = Header(None),
                     console: Console = Depends(console_of)):
    """Cancel; the agent hears of it in its next poll reply (`cancel: [...]`).
    409 when the deployment already completed or failed."""
    db = console.db
    await sync(console.user, x_api_key)

    def work():
        try:
            return deployments.cancel(db, deployment_id)
        except KeyError:
            raise ApiError(404, "no deployment %r" % deployment_id)
        except deployments.Conflict as exc:
            raise ApiError(409, str(exc))

    status = await sync(work)
    # a simulated run writes its job.failed (cancelled) before we answer (a
    # constellation's: each child's)
    kids = await sync(lambda: constellations.children(db.conn(), deployment_id))
    for d in [deployment_id] + [k["id"] for k in kids]:
        await sync(console.simulator.cancelled, d)
    return reply({"id": deployment_id, "status": status})
