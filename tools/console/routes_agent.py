"""The agent side of the protocol (PROTOCOL.md): register, poll for work, report
events (one, a batch, agent-level), dead letters, telemetry."""
import json
import re
import secrets
import time

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response

import signing
import timeutil

from . import auth, deployments, schemas, telemetry_history
from .api import (TELEMETRY_EXTRAS, ApiError, Console, answer, check_event, console_of,
                  read_json, reply, sync, umbra_headers, validate)
from .db import now_iso

router = APIRouter()

# The hot routes (a poll, telemetry, a batch of events: every contact of every
# satellite) read their headers and query from the request themselves rather
# than through FastAPI's parameter solving, which cost more than the poll's
# own work (docs/sim.md "A simulated day"); the OpenAPI document declares
# them as FastAPI would (_params), and a bad query is refused with the same
# 400 as FastAPI's validation gave, before anything else is looked at. Their
# Console is the app's (request.app.state.console, what api.console_of gives).
CHALLENGE = re.compile("[0-9a-f]+")


def _params(headers, query=()):
    """OpenAPI parameters: optional string headers (names lower-case, as
    FastAPI's Header() declares them) after the query parameters given as
    (name, extra schema)."""
    out = []
    for name, extra in query:
        schema = {"type": "string", "title": name.title()}
        schema.update(extra)
        out.append({"name": name, "in": "query", "required": False, "schema": schema})
    for name in headers:
        out.append({"name": name, "in": "header", "required": False,
                    "schema": {"type": "string", "title": "-".join(
                        w.capitalize() for w in name.split("-"))}})
    return out


def _with_params(extra, headers, query=()):
    doc = dict(extra or {})
    doc["parameters"] = _params(headers, query)
    return doc


def _query_text(request, name, min_length=0, max_length=None, pattern=None):
    """A string query parameter (None if absent; the last if repeated), or
    400 as FastAPI's validation words it."""
    value = request.query_params.get(name)
    if value is None:
        return None
    problem = None
    if len(value) < min_length:
        problem = "String should have at least %d characters" % min_length
    elif max_length is not None and len(value) > max_length:
        problem = "String should have at most %d characters" % max_length
    elif pattern is not None and not pattern.fullmatch(value):
        problem = "String should match pattern '^%s$'" % pattern.pattern
    if problem:
        raise ApiError(400, "query.%s: %s" % (name, problem))
    return value


@router.post("/api/agent/register", status_code=201, tags=["agent"],
             openapi_extra=schemas.openapi_body(schemas.RegisterBody))
async def register(request: Request, x_api_key: str = Header(None),
                   x_agent_id: str = Header(None),
                   console: Console = Depends(console_of)):
    """Register (upsert) the agent; sent at boot and after every reset."""
    db = console.db
    rec = await sync(console.agent, x_api_key, x_agent_id)
    body = validate(schemas.RegisterBody, await read_json(request, console))
    if body.agent_id != x_agent_id:
        raise ApiError(403, "agent_id %r is not the key's agent" % body.agent_id)
    # a (re)start: whether this agent speaks Umbra's extensions is judged
    # anew, from this request, and raised by the first extension it uses
    aware = 1 if umbra_headers(request) else 0

    def work():
        satellite_id = console.resolve_satellite(rec, x_api_key, body.agent_id,
                                                 body.satellite_id)
        now = now_iso()
        with db.write() as c:
            c.execute(
                "INSERT INTO agents (agent_id, satellite_id, satellite_name, agent_version, "
                "orbit_altitude_km, status, registered_at, updated_at, umbra_aware) "
                "VALUES (?, ?, ?, ?, ?, 'idle', ?, ?, ?) ON CONFLICT(agent_id) DO UPDATE SET "
                "satellite_id = excluded.satellite_id, satellite_name = excluded.satellite_name, "
                "agent_version = excluded.agent_version, "
                "orbit_altitude_km = excluded.orbit_altitude_km, status = 'idle', "
                "updated_at = excluded.updated_at, umbra_aware = excluded.umbra_aware",
                (body.agent_id, satellite_id, body.satellite_name, body.agent_version,
                 body.orbit_altitude_km, now, now, aware))
    await sync(work)
    # Umbra extension: what the Console already holds from this agent, so an
    # agent whose store was lost can continue its seq above it (PROTOCOL.md).
    row = await sync(db.one, "SELECT MAX(m) AS m FROM (SELECT MAX(seq) AS m FROM events "
                     "WHERE origin = ? UNION ALL SELECT MAX(seq) FROM dead_letters "
                     "WHERE agent_id = ?) AS held", (x_agent_id, x_agent_id))
    last = row["m"] if row and row["m"] is not None else 0
    acked = await sync(deployments.acked_seq, db, x_agent_id)
    return reply({"id": rec["agent_id"], "status": "idle", "last_seq": last,
                  "acked_seq": acked}, 201)


@router.get("/api/agent/workloads", tags=["agent"],
            responses={200: {"description": "a WorkloadSpec and/or {cancel: [...]}"},
                       204: {"description": "nothing to do"}},
            openapi_extra=_with_params(None, ("x-api-key", "x-agent-id", "x-umbra-compact"),
                                       (("holding", {"maxLength": 128}),
                                        ("challenge", {"maxLength": 64, "minLength": 8,
                                                       "pattern": "^[0-9a-f]+$"}))))
async def workloads(request: Request):
    """Poll: the oldest pending live deployment for the agent's satellite, or
    the one already dispatched to it; 204 when there is nothing to do.
    `holding` (Umbra extension): the deployment the agent already holds; it
    is not sent again (a board need not download and parse it at every
    poll of a contact). Without it the dispatched one comes back, as the
    protocol says, for an agent that lost it. A v0.1.0 peer gets exactly
    v0.1.0: pending deployments only, never a cancel (docs/console.md).
    `challenge` (Umbra extension): a fresh value of the agent's, carried
    back inside a signed reply, so that reply answers this poll only."""
    # a poll with nothing to write is answered on the event loop (api.answer)
    console = request.app.state.console
    holding = _query_text(request, "holding", max_length=128)
    challenge = _query_text(request, "challenge", 8, 64, CHALLENGE)
    headers = request.headers
    x_api_key, x_agent_id = headers.get("x-api-key"), headers.get("x-agent-id")
    x_umbra_compact = headers.get("x-umbra-compact")
    db = console.db
    extension = umbra_headers(request) or holding is not None or challenge is not None

    rated = []

    def work():
        rec = console.agent(x_api_key, x_agent_id)
        agent = console.registered(x_agent_id)
        if not rated:  # once: a second run (api.answer, on the pool) is the same poll
            console.rate(rec, "poll")
            rated.append(True)
        aware = console.note_aware(agent, extension)
        dep, cancels = deployments.poll(db, x_agent_id, agent["satellite_id"], aware)
        if dep is not None and holding is not None and dep["id"] == holding:
            dep = None
        clear = aware and bool(agent["clear_safe_mode"])
        if dep is None and not cancels and not clear:
            return None
        compact = x_umbra_compact not in (None, "", "0")
        body = deployments.workload_spec(db, dep, compact) if dep is not None else {}
        if cancels:
            body["cancel"] = cancels
        if clear:
            body["clear_safe_mode"] = True  # until the agent reports mode normal
        body["server_time"] = now_iso()
        secret = auth.uplink_secret(db, x_agent_id)
        if secret and dep is not None:
            if challenge is not None:
                body["challenge"] = challenge
            # the MAC covers everything the agent receives, server_time and
            # the challenge included
            body = signing.sign(body, secret, timeutil.iso_utc(time.time()),
                                secrets.token_hex(12))
        return body

    body = await answer(db, work)
    if body is None:
        return Response(status_code=204)
    return JSONResponse(body, status_code=200)


@router.post("/api/deployments/{deployment_id}/events", status_code=201, tags=["agent"],
             openapi_extra=_with_params(schemas.openapi_body(schemas.events_body_schema()),
                                        ("x-api-key", "x-agent-id")))
async def post_events(deployment_id: str, request: Request):
    """Report one event ({id}) or a batch ([...] -> {ids, acked_seq}); exactly once
    per (agent_id, seq)."""
    console = request.app.state.console
    x_api_key, x_agent_id = request.headers.get("x-api-key"), request.headers.get("x-agent-id")

    def allowed():  # the key, then the deployment (404 / 403 / 409), before the body is read
        rec = console.agent(x_api_key, x_agent_id)
        return rec, console.deployment_for_agent(deployment_id, x_agent_id, True)[1]

    return await ingest(console, request, await answer(console.db, allowed), x_agent_id,
                        deployment_id)


@router.post("/api/agent/events", status_code=201, tags=["agent"],
             openapi_extra=_with_params(schemas.openapi_body(schemas.events_body_schema()),
                                        ("x-api-key", "x-agent-id")))
async def post_agent_events(request: Request):
    """Umbra extension: agent-level events that belong to no deployment
    (agent.booted, fault.*, agent.safe_mode) -- same exactly-once rules and
    the same per-agent seq as deployment events."""
    console = request.app.state.console
    x_api_key, x_agent_id = request.headers.get("x-api-key"), request.headers.get("x-agent-id")

    def allowed():  # the key, then the agent's registration (404), before the body is read
        return console.agent(x_api_key, x_agent_id), console.registered(x_agent_id)

    return await ingest(console, request, await answer(console.db, allowed), x_agent_id, None)


async def ingest(console, request, allowed, agent_id, deployment_id):
    """One event ({id}) or a batch ({ids}) from an agent allowed to send it
    (allowed: its key's record and its agent row), validated whole, stored exactly once
    per (agent_id, seq); deployment_id None: agent-level events (an Umbra
    extension). Payload fields are checked for Umbra-aware senders only."""
    db = console.db
    body = await read_json(request, console)
    batch = isinstance(body, list)
    evs = body if batch else [body]
    if batch and not evs:
        raise ApiError(400, "an empty batch")
    if len(evs) > 1000:
        raise ApiError(400, "at most 1000 events per batch")
    extension = (batch or deployment_id is None or umbra_headers(request)
                 or any(isinstance(ev, dict) and "seq" in ev for ev in evs))

    rec, agent = allowed

    def work():  # one trip to the thread pool: the Console's hottest path
        console.rate(rec, "events", deployment_id or "")
        strict = console.note_aware(agent, extension)
        for i, ev in enumerate(evs):
            problem = check_event(ev, agent_id, deployment_id, strict)
            if problem:
                raise ApiError(400, ("event %d: %s" % (i, problem)) if batch else problem)
        return deployments.store_events(db, deployment_id, agent_id, agent_id, evs)

    ids, acked = await sync(work)
    if batch:
        return reply({"ids": ids, "acked_seq": acked}, 201)
    return reply({"id": ids[0], "acked_seq": acked}, 201)


@router.post("/api/agent/dead-letters", status_code=201, tags=["agent"],
             openapi_extra=schemas.openapi_body(schemas.dead_letters_schema()))
async def post_dead_letters(request: Request, x_api_key: str = Header(None),
                            x_agent_id: str = Header(None),
                            console: Console = Depends(console_of)):
    """Umbra extension: events the agent gave up sending after the Console
    refused them (firmware/deadletter.py), [{seq, deployment_id, event}] with
    the event's text as a string. Kept as sent, without judging the event,
    once per (agent, seq), for the ground to read
    (GET /api/agents/{id}/dead-letters); their seqs count as accounted for."""
    rec = await sync(console.agent, x_api_key, x_agent_id)
    body = await read_json(request, console)
    letters = validate(schemas.DeadLetters, {"letters": body}).letters

    def work():
        agent = console.registered(x_agent_id)
        console.rate(rec, "events", "dead")
        console.note_aware(agent, True)
        return deployments.store_dead_letters(db=console.db, agent_id=x_agent_id,
                                              letters=letters)

    stored, acked = await sync(work)
    return reply({"stored": stored, "acked_seq": acked}, 201)


@router.post("/api/agent/telemetry", tags=["agent"],
             openapi_extra=_with_params(schemas.openapi_body(schemas.TelemetryBody),
                                        ("x-api-key", "x-agent-id")))
async def telemetry(request: Request):
    """Heartbeat and spacecraft state; the Console keeps the latest."""
    console = request.app.state.console
    db = console.db
    x_api_key, x_agent_id = request.headers.get("x-api-key"), request.headers.get("x-agent-id")
    rec = await answer(db, console.agent, x_api_key, x_agent_id)
    body = validate(schemas.TelemetryBody, await read_json(request, console))
    if body.agent_id != x_agent_id:
        raise ApiError(403, "telemetry for agent %r is not yours" % body.agent_id)
    try:
        timeutil.parse_iso(body.timestamp)
    except ValueError:
        raise ApiError(400, "timestamp: must be ISO 8601 UTC")

    extension = (umbra_headers(request) or body.status == "safe_mode"
                 or any(getattr(body, f) is not None for f in TELEMETRY_EXTRAS))

    def work():  # one trip to the pool: the report is written every time
        agent = console.registered(x_agent_id)
        console.rate(rec, "telemetry")
        console.note_aware(agent, extension)
        now = now_iso()
        data = body.model_dump(exclude_none=True)
        # a report of mode normal (not safe) ends the ground's word to leave safe mode
        cleared = body.status != "safe_mode" and body.mode in (None, "normal")
        with db.write() as c:
            c.execute("UPDATE agents SET status = ?, last_heartbeat_at = ?, telemetry = ?, "
                      "updated_at = ?, clear_safe_mode = CASE WHEN ? THEN 0 "
                      "ELSE clear_safe_mode END WHERE agent_id = ?",
                      (body.status, now, json.dumps(data), now, cleared, x_agent_id))
            telemetry_history.record(c, x_agent_id, now, data)  # the operator view's plots
    await sync(work)
    return reply({"ok": True})


# The routes api.HotRoutes serves ahead of the router: (method, path, endpoint).
HOT = (("GET", "/api/agent/workloads", workloads),
       ("POST", "/api/agent/telemetry", telemetry),
       ("POST", "/api/agent/events", post_agent_events),
       ("POST", "/api/deployments/{deployment_id}/events", post_events))
