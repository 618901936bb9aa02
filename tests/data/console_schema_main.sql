-- The Console's SQLite schema before schema_version (version 1), as main made it.
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash     TEXT PRIMARY KEY,          -- SHA-256 hex of the key; the key itself is never stored
    kind         TEXT NOT NULL,             -- 'agent' or 'user'
    agent_id     TEXT,
    satellite_id TEXT,                      -- an agent key acts for this satellite only
    rate_limited INTEGER NOT NULL DEFAULT 1,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,                      -- to the minute (auth.KeyUsage), NULL if never used
    revoked_at   TEXT                       -- set by `umbra keys revoke`: refused from then on
);
CREATE TABLE IF NOT EXISTS uplink_keys (  -- per-agent workload signing secrets (the Console must sign)
    agent_id   TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    agent_id          TEXT PRIMARY KEY,
    satellite_id      TEXT NOT NULL,
    satellite_name    TEXT,
    agent_version     TEXT,
    orbit_altitude_km REAL,
    status            TEXT NOT NULL,
    registered_at     TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    last_heartbeat_at TEXT,
    telemetry         TEXT,
    clear_safe_mode   INTEGER NOT NULL DEFAULT 0,  -- the ground cleared safe mode; told at polls
    umbra_aware       INTEGER NOT NULL DEFAULT 0   -- speaks Umbra's extensions (docs/console.md)
);
CREATE TABLE IF NOT EXISTS satellites (
    satellite_id TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    norad_id     INTEGER,
    tle          TEXT,                      -- JSON [line1, line2] or NULL
    elements     TEXT,                      -- JSON object or NULL
    bus          TEXT,                      -- JSON object or NULL
    created_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS plans (
    id           TEXT PRIMARY KEY,
    satellite_id TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    data         TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deployments (
    id               TEXT PRIMARY KEY,
    plan_id          TEXT NOT NULL REFERENCES plans(id),
    satellite_id     TEXT NOT NULL,
    mode             TEXT NOT NULL,
    speed_multiplier REAL NOT NULL,
    status           TEXT NOT NULL,
    agent_id         TEXT,                  -- the agent it was dispatched to
    cancel_pending   INTEGER NOT NULL DEFAULT 0,  -- the agent must still be told
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    dispatched_at    TEXT,
    finished_at      TEXT,
    kind             TEXT NOT NULL DEFAULT 'single',  -- 'single', or a constellation's
                                            -- 'parent' (no satellite, never dispatched) / 'child'
    parent_id        TEXT                   -- a child: its constellation parent
);
CREATE INDEX IF NOT EXISTS deployments_queue ON deployments(satellite_id, mode, status, created_at);
-- every poll looks up what is dispatched to, or to be cancelled for, its agent
CREATE INDEX IF NOT EXISTS deployments_by_agent ON deployments(agent_id);
CREATE TABLE IF NOT EXISTS events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT NOT NULL,
    origin        TEXT NOT NULL,            -- agent_id, or 'sim:<deployment>' for simulated runs
    seq           INTEGER,
    type          TEXT NOT NULL,
    data          TEXT NOT NULL,
    received_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_once ON events(origin, seq);
CREATE INDEX IF NOT EXISTS events_by_deployment ON events(deployment_id, seq, id);
CREATE TABLE IF NOT EXISTS dead_letters (   -- events an agent gave up sending (refused for good),
    agent_id      TEXT NOT NULL,              -- kept as sent, unjudged, for the ground to read
    seq           INTEGER NOT NULL,
    deployment_id TEXT NOT NULL,              -- '' for agent-level events
    event         TEXT NOT NULL,              -- the event's text as the agent spooled it
    received_at   TEXT NOT NULL,
    PRIMARY KEY (agent_id, seq)
);
CREATE TABLE IF NOT EXISTS telemetry (      -- each agent's telemetry as received, the latest
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- telemetry_history.KEPT_PER_AGENT per agent
    agent_id    TEXT NOT NULL,                      -- (the operator view's plots; agents.telemetry
    received_at TEXT NOT NULL,                      -- holds the latest alone)
    data        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS telemetry_by_agent ON telemetry(agent_id, id);
CREATE TABLE IF NOT EXISTS acked (          -- per origin: every seq from 1 to acked_seq is stored
                                            -- (as an event, or as a dead letter)
    origin    TEXT PRIMARY KEY,
    acked_seq INTEGER NOT NULL
);
