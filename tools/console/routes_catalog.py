"""What the ground knows of its fleet: the satellite catalog, the agents with
their latest telemetry and agent-level events, clearing an agent's safe mode."""
import json

from fastapi import APIRouter, Depends, Header, Request

from . import catalog, deployments, schemas
from .api import ApiError, Console, console_of, read_json, reply, sync, validate
from .db import now_iso

router = APIRouter()


@router.get("/api/agents/{agent_id}/events", tags=["user"])
async def agent_events(agent_id: str, x_api_key: str = Header(None),
                       console: Console = Depends(console_of)):
    """Umbra extension: an agent's latest agent-level events (boots, faults, safe mode)."""
    db = console.db
    await sync(console.user, x_api_key)
    evs = await sync(deployments.agent_events, db, agent_id)
    return reply({"agent_id": agent_id, "events": evs, "count": len(evs)})


@router.get("/api/agents/{agent_id}/dead-letters", tags=["user"])
async def agent_dead_letters(agent_id: str, x_api_key: str = Header(None),
                             console: Console = Depends(console_of)):
    """Umbra extension: the events an agent gave up sending because the Console
    refused them, as it sent them (docs/console.md "Dead letters")."""
    db = console.db
    await sync(console.user, x_api_key)
    letters = await sync(deployments.dead_letters, db, agent_id)
    return reply({"agent_id": agent_id, "dead_letters": letters, "count": len(letters)})


@router.post("/api/agents/{agent_id}/clear-safe-mode", tags=["user"])
async def clear_safe_mode(agent_id: str, x_api_key: str = Header(None),
                          console: Console = Depends(console_of)):
    """Umbra extension: the ground clears an agent's safe mode; the next poll
    reply tells it (clear_safe_mode: true) until its telemetry says normal."""
    db = console.db
    await sync(console.user, x_api_key)

    def work():
        console.registered(agent_id)
        with db.write() as c:
            c.execute("UPDATE agents SET clear_safe_mode = 1, updated_at = ? "
                      "WHERE agent_id = ?", (now_iso(), agent_id))
    await sync(work)
    return reply({"agent_id": agent_id, "clear_safe_mode": True})


@router.get("/api/agents", tags=["user"])
async def agents(x_api_key: str = Header(None),
                 console: Console = Depends(console_of)):
    """Agents with status, last heartbeat and latest telemetry."""
    db = console.db
    await sync(console.user, x_api_key)
    rows = await sync(db.query, "SELECT * FROM agents ORDER BY agent_id")
    out = []
    for r in rows:
        a = dict(r)
        a["telemetry"] = json.loads(a["telemetry"]) if a["telemetry"] else None
        out.append(a)
    return reply({"agents": out, "count": len(out)})


@router.post("/api/satellites", status_code=201, tags=["user"],
             openapi_extra=schemas.openapi_body(schemas.satellite_body_schema()))
async def add_satellite(request: Request, x_api_key: str = Header(None),
                        console: Console = Depends(console_of)):
    """Add a satellite to the catalog by TLE ([line1, line2] or one string) or
    Keplerian elements. 409 if the id exists."""
    db = console.db
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


@router.get("/api/satellites", tags=["user"])
async def list_satellites(x_api_key: str = Header(None),
                          console: Console = Depends(console_of)):
    """The satellite catalog the planner uses."""
    db = console.db
    await sync(console.user, x_api_key)
    sats = await sync(catalog.all_satellites, db)
    return reply({"satellites": sats, "count": len(sats)})
