"""The Console's HTTP API (PROTOCOL.md), as a FastAPI app.

`create_app(db_path, ...)` builds it; `umbra console` serves it with uvicorn.
Handlers parse JSON bodies themselves (size limit, strict JSON, no NaN) and
validate them with the pydantic models in schemas.py, which also describe the
bodies in the OpenAPI document. Every error is `{"error": ..., "server_time"}`;
every JSON body carries `server_time`; every reply has an `X-Server-Time` header.
"""
import asyncio
import json
import os
import secrets
import time

from starlette.requests import ClientDisconnect
from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import signing
import timeutil

from . import auth, catalog, deployments, planning, schemas
from . import eventcheck as event_catalog
from .db import Database, now_iso
from .simulate import Simulator

DEFAULT_MAX_BODY = 256 * 1024
UMBRA_USER_AGENT = "umbra-agent/"
# Telemetry fields only Umbra's agents send (PROTOCOL.md, "Telemetry extras").
TELEMETRY_EXTRAS = ("boot_count", "reset_cause", "mode", "heap_free", "outbox_depth", "seq",
                    "unexplained_resets", "seu_corrected", "seu_restored")
# Deepest JSON a body may nest (objects and arrays). Our deepest legitimate
# body (a job's step parameters, an event payload) is under 10; the limit keeps
# every recursive step after parsing (validation, planning, storing, the reply)
# far below Python's recursion limit.
MAX_JSON_DEPTH = 32
SSE_POLL_S = 0.2
SSE_KEEPALIVE_S = 15.0


class ApiError(Exception):
    def __init__(self, status, message, headers=None):
        Exception.__init__(self, message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def reply(body, status=200, headers=None):
    body = dict(body)
    body["server_time"] = now_iso()
    return JSONResponse(body, status_code=status, headers=headers)


def error(status, message, headers=None):
    return reply({"error": message}, status, headers)


class Console:
    """What the handlers share: the database, the rate limiter, the simulator."""

    def __init__(self, db, rate_clock=None, max_body=DEFAULT_MAX_BODY, rate_limits=None):
        self.db = db
        self.limiter = auth.RateLimiter(rate_clock, rate_limits)
        self.max_body = max_body
        self.simulator = Simulator(db)
        self.key_usage = auth.KeyUsage(db)

    # ---- auth
    def key(self, api_key):
        rec = auth.lookup_key(self.db, api_key)
        if rec is None:
            raise ApiError(401, "missing or invalid API key" if api_key else "missing X-API-Key")
        self.key_usage.seen(rec["key_hash"])
        return rec

    def user(self, api_key):
        rec = self.key(api_key)
        if rec["kind"] != auth.USER:
            raise ApiError(403, "this endpoint needs a user key")
        return rec

    def agent(self, api_key, agent_id):
        rec = self.key(api_key)
        if rec["kind"] != auth.AGENT:
            raise ApiError(403, "this endpoint needs an agent key")
        if not agent_id:
            raise ApiError(400, "missing X-Agent-ID header")
        if rec["agent_id"] != agent_id:
            raise ApiError(403, "this key does not belong to agent %r" % agent_id)
        return rec

    def rate(self, rec, kind, scope=""):
        if not rec["rate_limited"]:
            return
        ok, retry = self.limiter.allow(rec["agent_id"], kind, scope)
        if not ok:
            raise ApiError(429, "rate limited: %s (%d per %d s); retry in %.0f s"
                           % ((kind,) + self.limiter.limits[kind] + (retry,)),
                           {"Retry-After": str(max(1, int(retry + 0.999)))})

    def registered(self, agent_id):
        row = self.db.one("SELECT * FROM agents WHERE agent_id = ?", (agent_id,))
        if row is None:
            raise ApiError(404, "agent %r is not registered (POST /api/agent/register first)"
                           % agent_id)
        return row

    def note_aware(self, agent, used_extension):
        """Record that a registered agent (its row) speaks Umbra's extensions,
        the first time one of its requests shows it; returns whether it does."""
        if agent["umbra_aware"]:
            return True
        if not used_extension:
            return False
        with self.db.write() as c:
            c.execute("UPDATE agents SET umbra_aware = 1 WHERE agent_id = ?", (agent["agent_id"],))
        return True

    def resolve_satellite(self, rec, api_key, agent_id, given):
        """The satellite an agent registers for: its key's binding (403 if it
        names another), else -- a key from before bindings -- the one it names
        or its agent id names (catalog.for_agent_id), which then binds the key;
        400 when none resolves."""
        bound = rec.get("satellite_id")
        if bound is not None:
            if given not in (None, bound):
                raise ApiError(403, "this key acts for satellite %r, not %r" % (bound, given))
            return bound
        satellite_id = given or catalog.for_agent_id(self.db, agent_id)
        if satellite_id is None:
            raise ApiError(400, "satellite_id: missing, and agent id %r names no satellite in "
                                "the catalog (send satellite_id, or use an agent id "
                                "sat-<NORAD id>)" % agent_id)
        auth.bind_satellite(self.db, api_key, satellite_id)
        return satellite_id

    def deployment_for_agent(self, dep_id, agent_id, writing=False):
        """(deployment, agent row) if this agent may read/write the deployment:
        404, 403 or 409 otherwise."""
        dep = deployments.get(self.db, dep_id)
        if dep is None:
            raise ApiError(404, "no deployment %r" % dep_id)
        agent = self.registered(agent_id)
        if dep["mode"] != "live" or dep["satellite_id"] != agent["satellite_id"]:
            raise ApiError(403, "deployment %r is not yours" % dep_id)
        if dep["agent_id"] not in (None, agent_id):
            if writing:
                raise ApiError(409, "deployment %r is dispatched to another agent" % dep_id)
            raise ApiError(403, "deployment %r is not yours" % dep_id)
        if writing and dep["agent_id"] is None:
            # events only for a job the agent was handed: a poll dispatches it
            raise ApiError(403, "deployment %r was not dispatched to you (poll for it)" % dep_id)
        return dep, agent


async def read_json(request, console):
    """The request's JSON body: 413 over the size limit, 400 if not strict JSON."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            if int(length) > console.max_body:
                raise ApiError(413, "body larger than %d bytes" % console.max_body)
        except ValueError:
            raise ApiError(400, "bad Content-Length")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > console.max_body:
                raise ApiError(413, "body larger than %d bytes" % console.max_body)
            chunks.append(chunk)
    except ClientDisconnect:  # the sender went away mid-body (a link cut, a reset)
        raise ApiError(400, "the client disconnected before its body arrived")
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError(400, "a JSON body is required")

    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed JSON: %s" % exc)
    except RecursionError:  # the parser recurses per level, closed or not
        raise ApiError(400, "JSON nested deeper than %d levels" % MAX_JSON_DEPTH)
    if isinstance(data, (dict, list)) and not _within_depth(data, MAX_JSON_DEPTH):
        raise ApiError(400, "JSON nested deeper than %d levels" % MAX_JSON_DEPTH)
    return data


def _within_depth(value, limit):
    """True if no object/array in value (one itself) nests deeper than limit.
    Level by level, without recursion (~0.6 us per event of a batch)."""
    level, depth = [value], 1
    while level:
        if depth > limit:
            return False
        below = []
        for node in level:
            for child in (node.values() if type(node) is dict else node):
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level, depth = below, depth + 1
    return True


def _no_constant(name):
    raise ValueError("%s is not JSON" % name)


def _finite(text):
    """A JSON number written with a fraction or an exponent. One without a
    fractional part is an integer (JSON has one number type; JSON Schema's
    "integer" is any number with a zero fraction), so `"seq": 5.0` or `1e3`
    reads as the integer an integer field expects."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number %s out of range" % text[:40])
    if value.is_integer() and -2 ** 53 <= value <= 2 ** 53:
        return int(value)
    return value


class ServerTimeHeader:
    """ASGI middleware: every reply carries X-Server-Time (ISO 8601 UTC)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_time(message):
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + [
                    (b"x-server-time", now_iso().encode())]
            await send(message)

        await self.app(scope, receive, send_with_time)


def umbra_headers(request):
    """Whether a request names itself Umbra's (User-Agent umbra-agent/...) or
    carries an Umbra header (X-Umbra-Compact): docs/console.md, "v0.1.0 peers"."""
    headers = request.headers
    return (headers.get("user-agent", "").startswith(UMBRA_USER_AGENT)
            or "x-umbra-compact" in headers)


def validate(model, data):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(400, "%s: %s" % (where, first["msg"]))


def check_event(ev, agent_id, dep_id, strict=True):
    """Envelope + catalog check of one incoming event (None if fine); strict:
    payload fields too (an Umbra-aware sender)."""
    problem = event_catalog.check(ev, strict)
    if problem:
        return problem
    try:
        timeutil.parse_iso(ev["timestamp"])
    except ValueError:
        return "'timestamp' must be ISO 8601 UTC"
    seq = ev.get("seq")
    if seq is not None and (seq < 1 or seq > 2 ** 62):
        return "'seq' starts at 1"
    if ev.get("agent_id") not in (None, agent_id):
        return "event agent_id %r is not the sender %r" % (ev.get("agent_id"), agent_id)
    if ev.get("deployment_id") not in (None, dep_id):
        return "event deployment_id %r does not match the URL" % (ev.get("deployment_id"),)
    return None


def create_app(db_path=None, db=None, rate_clock=None, max_body=DEFAULT_MAX_BODY,
               rate_limits=None, seed=True, resume_simulations=True):
    """The Console app on SQLite at db_path (or an open Database)."""
    if db is None:
        db = Database(db_path)
    if seed:
        catalog.seed(db)
    console = Console(db, rate_clock=rate_clock, max_body=max_body, rate_limits=rate_limits)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        if resume_simulations:
            console.simulator.resume_all()
        yield
        console.simulator.shutdown()

    app = FastAPI(title="Umbra Console", version="0.1.0", lifespan=lifespan,
                  description="Ground Console of the Umbra Operator Agent (PROTOCOL.md). "
                              "Errors are {\"error\": ...}; replies carry server_time.")
    app.state.console = console

    app.add_middleware(ServerTimeHeader)

    @app.exception_handler(ApiError)
    async def api_error(request, exc):
        return error(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc):
        errs = exc.errors()
        msg = "invalid request"
        if errs:
            msg = "%s: %s" % (".".join(str(p) for p in errs[0].get("loc", ())), errs[0].get("msg"))
        return error(400, msg)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        msg = exc.detail if isinstance(exc.detail, str) else "error"
        headers = getattr(exc, "headers", None)
        if exc.status_code == 404:
            msg = "not found"
        if exc.status_code == 405:
            # the router names only the first route of the path; Allow lists them all
            allow = ", ".join(allowed_methods(app, request.scope))
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": allow})
            headers = {"Allow": allow}
            msg = "method %s not allowed here (allowed: %s)" % (request.method, allow)
        return error(exc.status_code, msg, headers)

    @app.exception_handler(Exception)
    async def server_error(request, exc):
        return error(500, "internal error: %s" % type(exc).__name__)

    def sync(fn, *args):
        return run_in_threadpool(fn, *args)

    # ------------------------------------------------------------------ agent side

    @app.post("/api/agent/register", status_code=201, tags=["agent"],
              openapi_extra=schemas.openapi_body(schemas.RegisterBody))
    async def register(request: Request, x_api_key: str = Header(None),
                       x_agent_id: str = Header(None)):
        """Register (upsert) the agent; sent at boot and after every reset."""
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
        row = await sync(db.one, "SELECT MAX(seq) AS m FROM events WHERE origin = ?", (x_agent_id,))
        last = row["m"] if row and row["m"] is not None else 0
        acked = await sync(deployments.acked_seq, db, x_agent_id)
        return reply({"id": rec["agent_id"], "status": "idle", "last_seq": last,
                      "acked_seq": acked}, 201)

    @app.get("/api/agent/workloads", tags=["agent"],
             responses={200: {"description": "a WorkloadSpec and/or {cancel: [...]}"},
                        204: {"description": "nothing to do"}})
    async def workloads(request: Request, x_api_key: str = Header(None),
                        x_agent_id: str = Header(None), x_umbra_compact: str = Header(None),
                        holding: str = Query(None, max_length=128),
                        challenge: str = Query(None, min_length=8, max_length=64,
                                               pattern="^[0-9a-f]+$")):
        """Poll: the oldest pending live deployment for the agent's satellite, or
        the one already dispatched to it; 204 when there is nothing to do.
        `holding` (Umbra extension): the deployment the agent already holds; it
        is not sent again (a board need not download and parse it at every
        poll of a contact). Without it the dispatched one comes back, as the
        protocol says, for an agent that lost it. A v0.1.0 peer gets exactly
        v0.1.0: pending deployments only, never a cancel (docs/console.md).
        `challenge` (Umbra extension): a fresh value of the agent's, carried
        back inside a signed reply, so that reply answers this poll only."""
        extension = umbra_headers(request) or holding is not None or challenge is not None

        def work():
            rec = console.agent(x_api_key, x_agent_id)
            agent = console.registered(x_agent_id)
            console.rate(rec, "poll")
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

        body = await sync(work)
        if body is None:
            return Response(status_code=204)
        return JSONResponse(body, status_code=200)

    @app.post("/api/deployments/{deployment_id}/events", status_code=201, tags=["agent"],
              openapi_extra=schemas.openapi_body(schemas.events_body_schema()))
    async def post_events(deployment_id: str, request: Request, x_api_key: str = Header(None),
                          x_agent_id: str = Header(None)):
        """Report one event ({id}) or a batch ([...] -> {ids, acked_seq}); exactly once
        per (agent_id, seq)."""
        rec = await sync(console.agent, x_api_key, x_agent_id)
        return await ingest(request, rec, x_agent_id, deployment_id)

    @app.post("/api/agent/events", status_code=201, tags=["agent"],
              openapi_extra=schemas.openapi_body(schemas.events_body_schema()))
    async def post_agent_events(request: Request, x_api_key: str = Header(None),
                                x_agent_id: str = Header(None)):
        """Umbra extension: agent-level events that belong to no deployment
        (agent.booted, fault.*, agent.safe_mode) -- same exactly-once rules and
        the same per-agent seq as deployment events."""
        rec = await sync(console.agent, x_api_key, x_agent_id)
        return await ingest(request, rec, x_agent_id, None)

    async def ingest(request, rec, agent_id, deployment_id):
        """One event ({id}) or a batch ({ids}), validated whole, stored exactly once
        per (agent_id, seq); deployment_id None: agent-level events (an Umbra
        extension). Payload fields are checked for Umbra-aware senders only."""
        if deployment_id is not None:  # 404 / 403 / 409 before the body is read
            await sync(console.deployment_for_agent, deployment_id, agent_id, True)
        body = await read_json(request, console)
        batch = isinstance(body, list)
        evs = body if batch else [body]
        if batch and not evs:
            raise ApiError(400, "an empty batch")
        if len(evs) > 1000:
            raise ApiError(400, "at most 1000 events per batch")
        extension = (batch or deployment_id is None or umbra_headers(request)
                     or any(isinstance(ev, dict) and "seq" in ev for ev in evs))

        def work():  # one trip to the thread pool: the Console's hottest path
            console.rate(rec, "events", deployment_id or "")
            agent = console.registered(agent_id)
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

    @app.get("/api/agents/{agent_id}/events", tags=["user"])
    async def agent_events(agent_id: str, x_api_key: str = Header(None)):
        """Umbra extension: an agent's latest agent-level events (boots, faults, safe mode)."""
        await sync(console.user, x_api_key)
        evs = await sync(deployments.agent_events, db, agent_id)
        return reply({"agent_id": agent_id, "events": evs, "count": len(evs)})

    @app.post("/api/agent/telemetry", tags=["agent"],
              openapi_extra=schemas.openapi_body(schemas.TelemetryBody))
    async def telemetry(request: Request, x_api_key: str = Header(None),
                        x_agent_id: str = Header(None)):
        """Heartbeat and spacecraft state; the Console keeps the latest."""
        rec = await sync(console.agent, x_api_key, x_agent_id)
        body = validate(schemas.TelemetryBody, await read_json(request, console))
        if body.agent_id != x_agent_id:
            raise ApiError(403, "telemetry for agent %r is not yours" % body.agent_id)
        try:
            timeutil.parse_iso(body.timestamp)
        except ValueError:
            raise ApiError(400, "timestamp: must be ISO 8601 UTC")

        extension = (umbra_headers(request) or body.status == "safe_mode"
                     or any(getattr(body, f) is not None for f in TELEMETRY_EXTRAS))

        def work():
            agent = console.registered(x_agent_id)
            console.rate(rec, "telemetry")
            console.note_aware(agent, extension)
            now = now_iso()
            data = body.model_dump(exclude_none=True)
            with db.write() as c:
                c.execute("UPDATE agents SET status = ?, last_heartbeat_at = ?, telemetry = ?, "
                          "updated_at = ? WHERE agent_id = ?",
                          (body.status, now, json.dumps(data), now, x_agent_id))
                if body.status != "safe_mode" and body.mode in (None, "normal"):
                    c.execute("UPDATE agents SET clear_safe_mode = 0 WHERE agent_id = ?",
                              (x_agent_id,))
        await sync(work)
        return reply({"ok": True})

    @app.post("/api/agents/{agent_id}/clear-safe-mode", tags=["user"])
    async def clear_safe_mode(agent_id: str, x_api_key: str = Header(None)):
        """Umbra extension: the ground clears an agent's safe mode; the next poll
        reply tells it (clear_safe_mode: true) until its telemetry says normal."""
        await sync(console.user, x_api_key)

        def work():
            console.registered(agent_id)
            with db.write() as c:
                c.execute("UPDATE agents SET clear_safe_mode = 1, updated_at = ? "
                          "WHERE agent_id = ?", (now_iso(), agent_id))
        await sync(work)
        return reply({"agent_id": agent_id, "clear_safe_mode": True})

    # ------------------------------------------------------------------ user side

    @app.post("/v1/plan", tags=["user"],
              openapi_extra=schemas.openapi_body(schemas.plan_body_schema()))
    async def plan(request: Request, x_api_key: str = Header(None)):
        """Plan a job on a satellite: the plan (STEPS.md) with its predicted events.
        400 invalid job, 404 unknown satellite, 422 infeasible."""
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

    @app.get("/v1/plan/{plan_id}/events", tags=["user"])
    async def plan_events(plan_id: str, x_api_key: str = Header(None)):
        """The plan's predicted event stream."""
        await sync(console.user, x_api_key)
        plan_doc = await sync(deployments.get_plan, db, plan_id)
        if plan_doc is None:
            raise ApiError(404, "no plan %r" % plan_id)
        return reply({"plan_id": plan_id, "events": plan_doc["events"],
                      "count": len(plan_doc["events"])})

    @app.post("/api/deployments", status_code=201, tags=["user"],
              openapi_extra=schemas.openapi_body(schemas.DeploymentBody))
    async def create_deployment(request: Request, x_api_key: str = Header(None)):
        """Deploy a plan: live (an agent polls for it) or simulated (the Console
        writes the predicted events, paced by speed_multiplier; 0 = at once)."""
        await sync(console.user, x_api_key)
        body = validate(schemas.DeploymentBody, await read_json(request, console))

        def work():
            plan_doc = deployments.get_plan(db, body.plan_id)
            if plan_doc is None:
                raise ApiError(404, "no plan %r" % body.plan_id)
            return deployments.create(db, plan_doc, body.mode, body.speed_multiplier)

        dep_id = await sync(work)
        if body.mode == "simulated":
            console.simulator.start(dep_id)
        return reply({"id": dep_id, "status": "pending"}, 201)

    @app.get("/api/deployments/{deployment_id}", tags=["user"])
    async def get_deployment(deployment_id: str, x_api_key: str = Header(None),
                             x_agent_id: str = Header(None)):
        """Status and summary (users: any; agents: their own)."""
        await sync(reader, deployment_id, x_api_key, x_agent_id)
        return reply(await sync(deployments.summary, db, deployment_id))

    def reader(dep_id, api_key, agent_id):
        rec = console.key(api_key)
        if rec["kind"] == auth.AGENT:
            console.agent(api_key, agent_id)
            console.deployment_for_agent(dep_id, agent_id)
        elif deployments.get(db, dep_id) is None:
            raise ApiError(404, "no deployment %r" % dep_id)

    @app.get("/api/deployments/{deployment_id}/events", tags=["user"],
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "events in seq order, or an SSE stream"}})
    async def get_events(deployment_id: str, request: Request, x_api_key: str = Header(None),
                         x_agent_id: str = Header(None),
                         follow: bool = Query(False, description="stream as Server-Sent Events "
                                              "until the terminal event")):
        """Stored events in seq order; ?follow=1 streams them as Server-Sent Events
        and ends after the terminal event."""
        await sync(reader, deployment_id, x_api_key, x_agent_id)
        if not follow:
            evs = await sync(deployments.list_events, db, deployment_id)
            dep = await sync(deployments.get, db, deployment_id)
            return reply({"deployment_id": deployment_id, "status": dep["status"],
                          "events": [e for _, e in evs], "count": len(evs)})
        return StreamingResponse(sse_stream(deployment_id, request),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def sse_stream(dep_id, request):
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

    def end_message(dep):
        return "event: end\ndata: %s\n\n" % json.dumps(
            {"deployment_id": dep["id"], "status": dep["status"], "server_time": now_iso()})

    @app.post("/api/deployments/{deployment_id}/cancel", tags=["user"])
    async def cancel_deployment(deployment_id: str, x_api_key: str = Header(None)):
        """Cancel; the agent hears of it in its next poll reply (`cancel: [...]`).
        409 when the deployment already completed or failed."""
        await sync(console.user, x_api_key)

        def work():
            try:
                return deployments.cancel(db, deployment_id)
            except KeyError:
                raise ApiError(404, "no deployment %r" % deployment_id)
            except deployments.Conflict as exc:
                raise ApiError(409, str(exc))

        status = await sync(work)
        # a simulated run writes its job.failed (cancelled) before we answer
        await sync(console.simulator.cancelled, deployment_id)
        return reply({"id": deployment_id, "status": status})

    @app.get("/api/agents", tags=["user"])
    async def agents(x_api_key: str = Header(None)):
        """Agents with status, last heartbeat and latest telemetry."""
        await sync(console.user, x_api_key)
        rows = await sync(db.query, "SELECT * FROM agents ORDER BY agent_id")
        out = []
        for r in rows:
            a = dict(r)
            a["telemetry"] = json.loads(a["telemetry"]) if a["telemetry"] else None
            out.append(a)
        return reply({"agents": out, "count": len(out)})

    @app.post("/api/keys", status_code=201, tags=["user"],
              openapi_extra=schemas.openapi_body(schemas.key_body_schema()))
    async def create_key(request: Request, x_api_key: str = Header(None)):
        """Create an API key (agent or user; optionally an uplink signing key for
        an agent). The key is shown once; only its SHA-256 is stored."""
        await sync(console.user, x_api_key)
        body = validate(schemas.KeyBody, await read_json(request, console))
        try:
            out = await sync(auth.create_key, db, body.kind, body.agent_id, body.uplink,
                             body.rate_limited, body.satellite_id)
        except ValueError as exc:
            raise ApiError(400, str(exc))
        return reply(out, 201)

    @app.post("/api/satellites", status_code=201, tags=["user"],
              openapi_extra=schemas.openapi_body(schemas.satellite_body_schema()))
    async def add_satellite(request: Request, x_api_key: str = Header(None)):
        """Add a satellite to the catalog by TLE ([line1, line2] or one string) or
        Keplerian elements. 409 if the id exists."""
        await sync(console.user, x_api_key)
        body = validate(schemas.SatelliteBody, await read_json(request, console))
        tle = body.tle
        if isinstance(tle, str):
            tle = [ln for ln in tle.splitlines() if ln.strip()]
            tle = tle[-2:] if len(tle) >= 2 else tle
        if tle is not None and len(tle) != 2:
            raise ApiError(400, "tle: two lines are needed")
        if (tle is None) == (body.elements is None):
            raise ApiError(400, "give exactly one of tle or elements")
        elements = body.elements.model_dump(exclude_none=True) if body.elements else None
        bus = body.bus.model_dump(exclude_none=True) if body.bus else None

        def work():
            try:
                return catalog.add(db, body.satellite_id, body.name, tle=tle, elements=elements,
                                   bus=bus)
            except KeyError:
                raise ApiError(409, "satellite %r already exists" % body.satellite_id)
            except ValueError as exc:
                raise ApiError(400, str(exc))

        return reply(await sync(work), 201)

    @app.get("/api/satellites", tags=["user"])
    async def list_satellites(x_api_key: str = Header(None)):
        """The satellite catalog the planner uses."""
        await sync(console.user, x_api_key)
        sats = await sync(catalog.all_satellites, db)
        return reply({"satellites": sats, "count": len(sats)})

    app.openapi = lambda: describe_errors(app)
    return app


def allowed_methods(app, scope):
    """The methods the routes at this request's path answer, OPTIONS included."""
    from starlette.routing import Match
    methods = {"OPTIONS"}
    for route in app.router.routes:
        match, _ = route.matches(dict(scope, method="GET"))
        if match != Match.NONE and getattr(route, "methods", None):
            methods |= set(route.methods)
    return sorted(methods)


ERROR_STATUSES = {"400": "invalid body, parameters or headers", "401": "missing or invalid key",
                  "403": "the key does not own the resource", "404": "not found",
                  "409": "conflict", "413": "body too large", "429": "rate limited"}


def describe_errors(app):
    """OpenAPI with our error replies ({"error"} with 400..429) instead of FastAPI's 422."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes)
    err = {"type": "object", "required": ["error", "server_time"],
           "properties": {"error": {"type": "string"}, "server_time": {"type": "string"}}}
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            for code, text in ERROR_STATUSES.items():
                responses.setdefault(code, {"description": text,
                                            "content": {"application/json": {"schema": err}}})
            if path == "/v1/plan":
                responses["422"] = {"description": "the job cannot be planned",
                                    "content": {"application/json": {"schema": err}}}
    schemas_ = doc.get("components", {}).get("schemas", {})
    schemas_.pop("HTTPValidationError", None)
    schemas_.pop("ValidationError", None)
    app.openapi_schema = doc
    return doc


def default_db_path():
    from tools import ROOT
    return os.environ.get("UMBRA_DB") or os.path.join(ROOT, "var", "console.db")
