"""API keys: create one (shown once; only its SHA-256 is stored)."""
from fastapi import APIRouter, Depends, Header, Request

from . import auth, schemas
from .api import ApiError, Console, console_of, read_json, reply, sync, validate

router = APIRouter()


@router.post("/api/keys", status_code=201, tags=["user"],
             openapi_extra=schemas.openapi_body(schemas.key_body_schema()))
async def create_key(request: Request, x_api_key: str = Header(None),
                     console: Console = Depends(console_of)):
    """Create an API key (agent or user; optionally an uplink signing key for
    an agent). The key is shown once; only its SHA-256 is stored."""
    db = console.db
    await sync(console.user, x_api_key)
    body = validate(schemas.KeyBody, await read_json(request, console))
    try:
        out = await sync(auth.create_key, db, body.kind, body.agent_id, body.uplink,
                         body.rate_limited, body.satellite_id)
    except ValueError as exc:
        raise ApiError(400, str(exc))
    return reply(out, 201)
