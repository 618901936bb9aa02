"""The Console's HTTP API (PROTOCOL.md), as a FastAPI app.

`create_app(db_path, ...)` builds it -- the database, the Console object, the
middleware, the error replies, the OpenAPI document and, in its lifespan, the
sweep that ends overdue constellations (constellations.sweep) -- from the routes of
routes_agent.py (the agent protocol), routes_deployments.py, routes_plans.py,
routes_catalog.py (satellites and agents) and routes_keys.py, which share
api.py; routes_ui.py and routes_stream.py serve the operator view at `/`.
`umbra console` serves it with uvicorn.
"""
import os

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import catalog, constellations
from .api import DEFAULT_MAX_BODY, ApiError, Console, HotRoutes, ServerTimeHeader, error, sync
from .db import Unstorable, connect


def create_app(db_path=None, db=None, rate_clock=None, max_body=DEFAULT_MAX_BODY,
               rate_limits=None, seed=True, resume_simulations=True, ground_end_grace_s=None,
               ground_end_sweep_s=None):
    """The Console app on the database at db_path (a SQLite file or a PostgreSQL
    URL: db.connect), or an open Database.
    ground_end_grace_s / ground_end_sweep_s: the ground's end of a constellation
    past its deadline (constellations.GROUND_END_GRACE_S, GROUND_END_SWEEP_S)."""
    if db is None:
        db = connect(db_path)
    if seed:
        catalog.seed(db)
    console = Console(db, rate_clock=rate_clock, max_body=max_body, rate_limits=rate_limits,
                      ground_end_grace_s=ground_end_grace_s)
    sweep_s = constellations.GROUND_END_SWEEP_S if ground_end_sweep_s is None \
        else float(ground_end_sweep_s)

    import asyncio
    from contextlib import asynccontextmanager

    async def sweep():
        # a parent no one reads is ended all the same (constellations.end_overdue)
        while True:
            await asyncio.sleep(sweep_s)
            try:
                await sync(constellations.sweep, db, console.ground_end_grace_s)
            except Exception:  # a sweep must never take the Console down; the next one retries
                import traceback
                traceback.print_exc()

    @asynccontextmanager
    async def lifespan(app):
        if resume_simulations:
            console.simulator.resume_all()
        sweeper = asyncio.ensure_future(sweep())
        yield
        sweeper.cancel()
        try:
            await sweeper
        except asyncio.CancelledError:
            pass
        console.simulator.shutdown()

    app = FastAPI(title="Umbra Console", version="0.1.0", lifespan=lifespan,
                  description="Ground Console of the Umbra Operator Agent (PROTOCOL.md). "
                              "Errors are {\"error\": ...}; replies carry server_time.")
    app.state.console = console

    from . import routes_agent
    app.add_middleware(HotRoutes, routes=routes_agent.HOT)  # inside ServerTimeHeader
    app.add_middleware(ServerTimeHeader)

    install_error_handlers(app)

    # the routes, one module per area, in the order the OpenAPI document lists them
    from . import routes_catalog, routes_deployments, routes_keys, routes_plans
    for module in (routes_agent, routes_catalog, routes_plans, routes_deployments, routes_keys):
        app.include_router(module.router)
    # the operator view (docs/operator.md): its page, files and feed, not in the OpenAPI document
    from . import routes_stream, routes_ui
    for module in (routes_ui, routes_stream):
        app.include_router(module.router)

    app.openapi = lambda: describe_errors(app)
    return app


def install_error_handlers(app):
    """Every error as {"error", "server_time"} (api.error): ours (ApiError), a
    body or parameter FastAPI refuses (400, naming the field), an unknown path
    (404), a wrong method (405 with Allow), and anything unforeseen (500, never
    a traceback). Shared with the Simulation Service (tools/simservice)."""
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

    @app.exception_handler(Unstorable)
    async def unstorable(request, exc):
        return error(400, str(exc))

    @app.exception_handler(Exception)
    async def server_error(request, exc):
        return error(500, "internal error: %s" % type(exc).__name__)


def allowed_methods(app, scope):
    """The methods the routes at this request's path answer, OPTIONS included."""
    from starlette.routing import Match
    methods = {"OPTIONS"}
    for route in _routes(app.router.routes):
        match, _ = route.matches(dict(scope, method="GET"))
        if match != Match.NONE and getattr(route, "methods", None):
            methods |= set(route.methods)
    return sorted(methods)


def _routes(routes):
    """Every route, those of included routers too (included without a prefix)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes)
        else:
            yield route


ERROR_STATUSES = {"400": "invalid body, parameters or headers", "401": "missing or invalid key",
                  "403": "the key does not own the resource", "404": "not found",
                  "409": "conflict", "413": "body too large", "429": "rate limited"}


def describe_errors(app, statuses=None, special=None):
    """OpenAPI with our error replies ({"error"} with 400..429) instead of FastAPI's 422.
    statuses: {code: text} every operation may answer (default ERROR_STATUSES);
    special: {path: {code: text}} answered by one path only (default: /v1/plan's 422)."""
    if statuses is None:
        statuses = ERROR_STATUSES
    if special is None:
        special = {"/v1/plan": {"422": "the job cannot be planned"},
                   "/v1/constellation/plan": {"422": "the job cannot be planned on this fleet"}}
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
            for code, text in statuses.items():
                responses.setdefault(code, {"description": text,
                                            "content": {"application/json": {"schema": err}}})
            for code, text in special.get(path, {}).items():
                responses[code] = {"description": text,
                                   "content": {"application/json": {"schema": err}}}
    schemas_ = doc.get("components", {}).get("schemas", {})
    schemas_.pop("HTTPValidationError", None)
    schemas_.pop("ValidationError", None)
    app.openapi_schema = doc
    return doc


def default_db_path():
    from tools import ROOT
    return os.environ.get("UMBRA_DB") or os.path.join(ROOT, "var", "console.db")
