"""What every route of the Console's HTTP API shares (app.py puts them
together; routes_*.py hold the routes, one module per area): the Console
object (database, rate limiter, simulator, who may do what), ApiError and the
reply helpers, the strict JSON body reader, the event envelope check, and
the ways a route reaches them: `console_of` (a dependency: the Console of
the app serving the request), `sync` (run blocking work -- SQLite -- on
the thread pool) and `answer` (the agent's hot paths: on the event loop
while the work only reads).

Handlers parse JSON bodies themselves (size limit, strict JSON, no NaN) and
validate them with the pydantic models in schemas.py, which also describe the
bodies in the OpenAPI document. Every error is `{"error": ..., "server_time"}`;
every JSON body carries `server_time`; every reply has an `X-Server-Time` header.
"""
import json

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

import timeutil

from . import auth, catalog, constellations, deployments
from . import eventcheck as event_catalog
from .db import WouldWrite, now_iso
from .simulate import Simulator

DEFAULT_MAX_BODY = 256 * 1024
UMBRA_USER_AGENT = "umbra-agent/"
# Telemetry fields only Umbra's agents send (PROTOCOL.md, "Telemetry extras").
TELEMETRY_EXTRAS = ("boot_count", "reset_cause", "mode", "heap_free", "outbox_depth", "seq",
                    "unexplained_resets", "seu_corrected", "seu_restored", "telemetry_thinned",
                    "events_shed", "events_refused", "dead_letters")
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
    """What the handlers share: the database, the rate limiter, the simulator,
    the grace of the ground's end."""

    def __init__(self, db, rate_clock=None, max_body=DEFAULT_MAX_BODY, rate_limits=None,
                 ground_end_grace_s=None):
        self.db = db
        # past a constellation job's deadline by this much, the Console ends what never
        # ended (constellations.end_overdue)
        self.ground_end_grace_s = constellations.GROUND_END_GRACE_S \
            if ground_end_grace_s is None else float(ground_end_grace_s)
        # several Console processes on one PostgreSQL database count in it
        self.limiter = auth.SharedRateLimiter(db, rate_clock, rate_limits) \
            if db.dialect == "postgresql" else auth.RateLimiter(rate_clock, rate_limits)
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


class HotRoutes:
    """ASGI middleware: the agent's hot routes (routes_agent.HOT: a poll,
    telemetry, a batch of events -- every contact of every satellite) go
    straight to their endpoints, past FastAPI's router and its layers, which
    cost more than a poll's own work (docs/sim.md "A simulated day"). Only a
    request of exactly that method and path is taken; an ApiError becomes its
    error reply as the app's handler makes it, anything else goes on up to
    the app's 500 as before. The router keeps these routes too: the OpenAPI
    document lists them from there, and what this does not take (a HEAD, an
    OPTIONS, a mount under a root_path) reaches them there."""

    def __init__(self, app, routes):
        self.app = app
        self.exact = {}
        self.by_param = []   # (method, before, after, name, endpoint): one {name} segment
        for method, path, endpoint in routes:
            if "{" in path:
                before, rest = path.split("{", 1)
                name, after = rest.split("}", 1)
                self.by_param.append((method, before, after, name, endpoint))
            else:
                self.exact[(method, path)] = endpoint

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not scope.get("root_path"):
            method, path = scope["method"], scope["path"]
            endpoint, params = self.exact.get((method, path)), {}
            if endpoint is None:
                for m, before, after, name, ep in self.by_param:
                    if m == method and path.startswith(before) and path.endswith(after) \
                            and len(path) > len(before) + len(after):
                        value = path[len(before):len(path) - len(after)]
                        if "/" not in value:  # a path segment, as the router's {name} matches
                            endpoint, params = ep, {name: value}
                            scope = dict(scope, path_params=params)
                        break
            if endpoint is not None:
                try:
                    response = await endpoint(request=Request(scope, receive, send), **params)
                except ApiError as exc:
                    response = error(exc.status, exc.message, exc.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


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


def sync(fn, *args):
    """Blocking work (SQLite) on the thread pool, awaited."""
    return run_in_threadpool(fn, *args)


async def answer(db, fn, *args):
    """An agent request's blocking work (the hot paths: a poll, the checks
    before telemetry or events), awaited: on the event loop itself while it
    only reads -- in WAL mode a read never waits for the writer -- and on the
    thread pool (sync) as soon as it would write. A trip to a worker thread
    and back costs more than the reads of a poll with nothing to do (~0.2 ms
    of the Console's ~0.6 ms, docs/sim.md "A simulated day"). fn must be
    safe to run again after WouldWrite: nothing it does before its first
    write may count twice (Database.reading_only)."""
    try:
        with db.reading_only():
            return fn(*args)
    except WouldWrite:
        return await sync(fn, *args)


async def console_of(request: Request):
    """A route's Console (FastAPI dependency): the one of the app it serves.
    A coroutine, so FastAPI calls it on the event loop (a plain function
    dependency would cost every request a trip to the thread pool)."""
    return request.app.state.console
