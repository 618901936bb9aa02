"""The Simulation Service's HTTP API, as a FastAPI app (`create_app`), built
like the Console's (tools/console/app.py): the same strict JSON body reader,
error replies ({"error", "server_time"}, 400 naming the field), X-Server-Time
header and OpenAPI document (at /openapi.json, /docs).

    POST   /v1/state                          stateless orbital state (reference agent's --sim-url)
    POST   /v1/sessions                       create a session (a satellite or a fleet)
    GET    /v1/sessions                       the sessions
    GET    /v1/sessions/{id}/state            every satellite's subsystem state + ISL links
    POST   /v1/sessions/{id}/step             advance it (until | seconds, loads?)
    PUT    /v1/sessions/{id}/constellation    store every satellite's ConstellationState
    GET    /v1/sessions/{id}/constellation    read them back
    DELETE /v1/sessions/{id}                  end it
"""
from fastapi import APIRouter, Depends, FastAPI, Request

from tools.console.api import DEFAULT_MAX_BODY, ApiError, ServerTimeHeader, read_json, reply, sync, validate
from tools.console.app import describe_errors, install_error_handlers
from tools.console.schemas import openapi_body

from . import orbitstate, schemas
from .db import SimDatabase
from .sessions import SessionStore, iso_ms

VERSION = "0.1.0"
ERROR_STATUSES = {"400": "invalid body or parameters (the field is named)",
                  "404": "not found", "413": "body too large"}
SPECIAL = {"/v1/sessions": {"409": "the service holds its maximum of sessions"}}


class SimService:
    """What the handlers share: the database, the sessions, the body limit."""

    def __init__(self, db, max_body=DEFAULT_MAX_BODY):
        self.db = db
        self.max_body = max_body
        self.sessions = SessionStore(db)


async def service_of(request: Request):
    return request.app.state.simservice


router = APIRouter()


@router.post("/v1/state", tags=["stateless"],
             openapi_extra=openapi_body(schemas.body_schema(schemas.StateBody)))
async def state(request: Request, svc: SimService = Depends(service_of)):
    """The orbital state at a time, from elements or a TLE (v0.1.0: the
    reference agent's `--sim-url` request). Defaults as the reference agent's:
    eccentricity 0.0001, arg_perigee_deg 90."""
    body = validate(schemas.StateBody, await read_json(request, svc))

    def work():
        try:
            if (body.elements is None) == (body.tle is None):
                raise orbitstate.BadInput("elements", "give exactly one of elements or tle")
            t = orbitstate.parse_time(body.timestamp, "timestamp")
            if body.elements is not None:
                el = orbitstate.elements_from(body.elements.model_dump(), "elements")
            else:
                el = orbitstate.elements_from_tle(body.tle, "tle")
            orbitstate.check_time_near_epoch(el, t, "timestamp")
        except orbitstate.BadInput as exc:
            raise ApiError(400, str(exc))
        out = orbitstate.state_at(el, t)
        out["timestamp"] = iso_ms(t)
        return out

    # ~20 us of arithmetic and no I/O: on the event loop, not the thread pool
    return reply(work())


@router.post("/v1/sessions", tags=["sessions"], status_code=201,
             openapi_extra=openapi_body(schemas.body_schema(schemas.SessionBody)))
async def create_session(request: Request, svc: SimService = Depends(service_of)):
    """Create a session: one satellite (a TLE or elements) or a fleet (a fleet
    file's entries, at most MAX_FLEET), at `start`. 201 with its state."""
    body = validate(schemas.SessionBody, await read_json(request, svc))
    return reply(await sync(svc.sessions.create, body), 201)


@router.get("/v1/sessions", tags=["sessions"])
async def list_sessions(svc: SimService = Depends(service_of)):
    """The sessions this service holds."""
    rows = await sync(svc.sessions.list)
    return reply({"sessions": rows, "count": len(rows), "max_sessions": schemas.MAX_SESSIONS})


@router.get("/v1/sessions/{session_id}/state", tags=["sessions"])
async def session_state(session_id: str, svc: SimService = Depends(service_of)):
    """Every satellite's subsystem state (battery, thermal, memory, CPU,
    position, eclipse, ground contact) and the ISL link graph at the session's time."""
    return reply(await sync(svc.sessions.state, session_id))


@router.post("/v1/sessions/{session_id}/step", tags=["sessions"],
             openapi_extra=openapi_body(schemas.body_schema(schemas.StepBody)))
async def step_session(session_id: str, request: Request, svc: SimService = Depends(service_of)):
    """Advance the session to `until` or by `seconds` (at most MAX_STEP_S);
    `loads` ({satellite_id: {power_w, memory_mb}}) take effect at the step's
    start and stay until changed. Replies with the state after the step."""
    body = validate(schemas.StepBody, await read_json(request, svc))
    return reply(await sync(svc.sessions.step, session_id, body))


@router.put("/v1/sessions/{session_id}/constellation", tags=["sessions"],
            openapi_extra=openapi_body(schemas.body_schema(schemas.ConstellationBody)))
async def put_constellation(session_id: str, request: Request,
                            svc: SimService = Depends(service_of)):
    """Store each satellite's ConstellationState (CONSTELLATION.md); replaces
    the whole set: a satellite left out has none afterwards."""
    body = validate(schemas.ConstellationBody, await read_json(request, svc))
    return reply(await sync(svc.sessions.put_constellation, session_id, body))


@router.get("/v1/sessions/{session_id}/constellation", tags=["sessions"])
async def get_constellation(session_id: str, svc: SimService = Depends(service_of)):
    """The ConstellationState documents stored for the session's satellites."""
    return reply(await sync(svc.sessions.get_constellation, session_id))


@router.delete("/v1/sessions/{session_id}", tags=["sessions"])
async def delete_session(session_id: str, svc: SimService = Depends(service_of)):
    """End the session: it and its documents are deleted."""
    return reply(await sync(svc.sessions.delete, session_id))


class CollapseSlashes:
    """ASGI middleware: `//v1/state` is `/v1/state` (the reference agent joins
    `{sim_url}/v1/state`, so a --sim-url ending in / doubles the slash)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("path", "").startswith("//"):
            path = "/" + scope["path"].lstrip("/")
            scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)


def create_app(db_path=None, db=None, max_body=DEFAULT_MAX_BODY):
    """The Simulation Service on SQLite at db_path (or an open SimDatabase)."""
    if db is None:
        db = SimDatabase(db_path)
    app = FastAPI(title="Umbra Simulation Service", version=VERSION,
                  description="Umbra's world models over HTTP (docs/simservice.md): the "
                              "stateless orbital state of the reference agent's --sim-url, "
                              "and simulation sessions kept in SQLite. Errors are "
                              "{\"error\": ...}; replies carry server_time.")
    app.state.simservice = SimService(db, max_body)
    app.add_middleware(ServerTimeHeader)
    app.add_middleware(CollapseSlashes)
    install_error_handlers(app)
    app.include_router(router)
    app.openapi = lambda: describe_errors(app, ERROR_STATUSES, SPECIAL)
    return app
