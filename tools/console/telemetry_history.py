"""Each agent's telemetry as the Console received it (the `telemetry` table),
kept bounded, for the operator view's plots; and the telemetry dictionary the
view is built from (the fields below and the event catalog, firmware/events.py).

agents.telemetry keeps the latest report alone (GET /api/agents); this table
keeps the last KEPT_PER_AGENT reports of each agent. One report every 30 s
(the protocol's rate limit) is ~3.5 days per agent.
"""
import json

import events

from . import eventcheck
from .db import dumps, lock_writes

KEPT_PER_AGENT = 10000

# The telemetry fields the operator view plots, per agent (schemas.TelemetryBody
# validates them on arrival): (key, name, unit, format). format "number" is
# plotted; "string" (mode) is shown in tables.
FIELDS = (
    ("battery_percent", "Battery", "%", "number"),
    ("temperature_c", "Temperature", "°C", "number"),
    ("compute_capacity", "Compute capacity", "", "number"),
    ("heap_free", "Heap free", "B", "number"),
    ("outbox_depth", "Outbox depth", "events", "number"),
    ("mode", "Mode", "", "string"),
)

# Event payload fields that carry the spacecraft's state (EVENTS.md "Enrichment";
# eclipse steps report battery_percent): what a deployment's own plot draws.
EVENT_SAMPLES = {"battery_percent": ("actual_battery_percent", "battery_percent"),
                 "temperature_c": ("actual_temperature_c",)}


def record(c, agent_id, received_at, data):
    """Store one report (in the caller's write transaction c) and drop the
    agent's oldest beyond KEPT_PER_AGENT."""
    lock_writes(c)  # rows committed in id order (db.PgDatabase)
    c.execute("INSERT INTO telemetry (agent_id, received_at, data) VALUES (?, ?, ?)",
              (agent_id, received_at, dumps(data)))
    c.execute("DELETE FROM telemetry WHERE agent_id = ? AND id <= (SELECT id FROM telemetry "
              "WHERE agent_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
              (agent_id, agent_id, KEPT_PER_AGENT))


def history(db, agent_id, start=None, end=None, limit=5000):
    """The agent's reports received between start and end (ISO 8601 UTC,
    inclusive; None: unbounded), oldest first, at most `limit` (the latest)."""
    sql = "SELECT id, received_at, data FROM telemetry WHERE agent_id = ?"
    args = [agent_id]
    if start is not None:
        sql += " AND received_at >= ?"
        args.append(start)
    if end is not None:
        sql += " AND received_at <= ?"
        args.append(end)
    rows = db.query(sql + " ORDER BY id DESC LIMIT ?", args + [limit])
    return [sample(r["id"], agent_id, r["received_at"], json.loads(r["data"]))
            for r in reversed(rows)]


def sample(row_id, agent_id, received_at, data):
    """One report as the view gets it: the fields above, the agent's own
    timestamp (simulated time for a simulated satellite), when it arrived."""
    out = {"id": row_id, "agent_id": agent_id, "received_at": received_at,
           "timestamp": data.get("timestamp"), "status": data.get("status")}
    for key, _, _, _ in FIELDS:
        out[key] = data.get(key)
    return out


def event_samples(rows):
    """[(row id, received_at, event)] -> the spacecraft state the events carry:
    [{id, received_at, timestamp, battery_percent, temperature_c}]."""
    out = []
    for row_id, received_at, ev in rows:
        payload = ev.get("payload") or {}
        s = {"id": row_id, "received_at": received_at, "timestamp": ev.get("timestamp"),
             "type": ev.get("type")}
        found = False
        for key, sources in EVENT_SAMPLES.items():
            s[key] = next((payload[f] for f in sources
                           if isinstance(payload.get(f), (int, float))), None)
            found = found or s[key] is not None
        if found:
            out.append(s)
    return out


def dictionary():
    """The telemetry dictionary: the fields above and every event type of the
    catalog with its payload fields (optional ones apart), terminal and
    enriched marked."""
    types = []
    for etype in eventcheck.types():
        fields = events.fields(etype)
        types.append({"type": etype,
                      "fields": [f for f in fields if not f.endswith("?")],
                      "optional": [f[:-1] for f in fields if f.endswith("?")],
                      "terminal": etype in eventcheck.TERMINAL,
                      "enriched": events.is_enriched(etype)})
    return {"telemetry": [{"key": k, "name": n, "unit": u, "format": f}
                          for k, n, u, f in FIELDS],
            "event_samples": {k: list(v) for k, v in EVENT_SAMPLES.items()},
            "events": types}
