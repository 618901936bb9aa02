"""The operator view's live feed: one Server-Sent Events stream of every new
event (deployment and agent-level), every telemetry report and every
deployment status change, for a user key.

    GET /api/ui/stream            (header Last-Event-ID: E.T, or ?after=E.T)

Each event and telemetry message carries `id: E.T`, the last event row and
telemetry row sent so far. A client that reconnects with the last id it saw
(after a dropped link or a Console restart) gets everything stored since,
and nothing twice: rows are read from the database, not from memory. Without
an id the stream starts at what is stored now (the first message, `hello`,
gives that id); the view loads history over the REST endpoints.

Not in the OpenAPI document: the operator view's own endpoints are not part
of the agent/user protocol (docs/operator.md).
"""
import asyncio
import json
import re
import time

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from . import telemetry_history
from .api import SSE_KEEPALIVE_S, SSE_POLL_S, ApiError, Console, console_of, sync
from .db import now_iso
from .routes_ui import operator

router = APIRouter()

BATCH = 500  # rows per table per round: a huge backlog streams in rounds
CURSOR = re.compile(r"^(\d{1,18})\.(\d{1,18})$")


def parse_cursor(text):
    """'E.T' -> (event row, telemetry row); 400 when malformed."""
    m = CURSOR.match(text.strip())
    if not m:
        raise ApiError(400, "stream position %r: expected <event row>.<telemetry row>"
                       % text[:40])
    return int(m.group(1)), int(m.group(2))


def now_cursor(db):
    e = db.one("SELECT COALESCE(MAX(id), 0) FROM events")[0]
    t = db.one("SELECT COALESCE(MAX(id), 0) FROM telemetry")[0]
    return e, t


def read_after(db, after_event, after_telemetry):
    """The rows stored after the cursor, at most BATCH of each."""
    evs = db.query("SELECT id, deployment_id, received_at, data FROM events WHERE id > ? "
                   "ORDER BY id LIMIT ?", (after_event, BATCH))
    tel = db.query("SELECT id, agent_id, received_at, data FROM telemetry WHERE id > ? "
                   "ORDER BY id LIMIT ?", (after_telemetry, BATCH))
    return evs, tel


def changed_deployments(db, since):
    return [dict(r) for r in db.query(
        "SELECT id, status, mode, satellite_id, agent_id, updated_at FROM deployments "
        "WHERE updated_at > ? ORDER BY updated_at, id", (since,))]


def message(name, data, cursor=None):
    head = "id: %d.%d\n" % cursor if cursor is not None else ""
    return "%sevent: %s\ndata: %s\n\n" % (head, name, json.dumps(data, ensure_ascii=False))


@router.get("/api/ui/stream", include_in_schema=False)
async def stream(request: Request, x_api_key: str = Header(None),
                 last_event_id: str = Header(None),
                 after: str = Query(None, max_length=40),
                 console: Console = Depends(console_of)):
    """New events, telemetry and deployment changes as Server-Sent Events."""
    db = console.db
    await sync(operator, console, x_api_key)
    given = last_event_id or after
    cursor = parse_cursor(given) if given else await sync(now_cursor, db)
    return StreamingResponse(feed(console, request, cursor), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def feed(console, request, cursor):
    db = console.db
    last_event, last_telemetry = cursor
    since = now_iso()
    yield "retry: 1000\n" + message("hello", {"server_time": since}, cursor)
    last_beat = time.monotonic()
    while not console.simulator.stop.is_set():  # set when the Console shuts down
        evs, tel = await sync(read_after, db, last_event, last_telemetry)
        for r in evs:  # events first: a status change follows the event that made it
            last_event = r["id"]
            yield message("event", {"row": r["id"], "deployment_id": r["deployment_id"] or None,
                                    "received_at": r["received_at"],
                                    "event": json.loads(r["data"])},
                          (last_event, last_telemetry))
        for r in tel:
            last_telemetry = r["id"]
            yield message("telemetry", telemetry_history.sample(
                r["id"], r["agent_id"], r["received_at"], json.loads(r["data"])),
                (last_event, last_telemetry))
        changed = await sync(changed_deployments, db, since)
        for d in changed:
            since = max(since, d["updated_at"])
            yield message("deployment", d)
        if await request.is_disconnected():
            return
        if evs or tel or changed:
            last_beat = time.monotonic()
        elif time.monotonic() - last_beat > SSE_KEEPALIVE_S:
            last_beat = time.monotonic()
            yield ": keep-alive %s\n\n" % now_iso()
        if len(evs) < BATCH and len(tel) < BATCH:
            await asyncio.sleep(SSE_POLL_S)
