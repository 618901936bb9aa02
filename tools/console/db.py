"""SQLite storage of the Console (stdlib sqlite3, parameterised SQL only).

One connection per thread (the web server answers on a thread pool), WAL
mode so readers never wait for the writer, and one process-wide write lock
with BEGIN IMMEDIATE so concurrent writers queue instead of failing with
"database is locked". Everything a request writes happens in one
transaction: a rejected request stores nothing.
"""
import contextlib
import json
import os
import sqlite3
import threading
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash     TEXT PRIMARY KEY,          -- SHA-256 hex of the key; the key itself is never stored
    kind         TEXT NOT NULL,             -- 'agent' or 'user'
    agent_id     TEXT,
    satellite_id TEXT,                      -- an agent key acts for this satellite only
    rate_limited INTEGER NOT NULL DEFAULT 1,
    created_at   TEXT NOT NULL
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
    finished_at      TEXT
);
CREATE INDEX IF NOT EXISTS deployments_queue ON deployments(satellite_id, mode, status, created_at);
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
CREATE TABLE IF NOT EXISTS acked (          -- per origin: every seq from 1 to acked_seq is stored
    origin    TEXT PRIMARY KEY,
    acked_seq INTEGER NOT NULL
);
"""


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class Database:
    def __init__(self, path):
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        conn = self.conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
        cols = [r[1] for r in conn.execute("PRAGMA table_info(agents)")]
        for col in ("clear_safe_mode", "umbra_aware"):  # a database from before these columns
            if col not in cols:
                conn.execute("ALTER TABLE agents ADD COLUMN %s INTEGER NOT NULL DEFAULT 0" % col)
        if "satellite_id" not in [r[1] for r in conn.execute("PRAGMA table_info(api_keys)")]:
            # keys from before bindings: bound to the satellite their agent registered
            # for (or, if it never did, to the first it registers for)
            conn.execute("ALTER TABLE api_keys ADD COLUMN satellite_id TEXT")
            conn.execute("UPDATE api_keys SET satellite_id = (SELECT satellite_id FROM agents "
                         "WHERE agents.agent_id = api_keys.agent_id) WHERE kind = 'agent'")

    def conn(self):
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                check_same_thread=False)
            c.row_factory = sqlite3.Row
            c.execute("PRAGMA busy_timeout=30000")
            c.execute("PRAGMA synchronous=NORMAL")
            c.execute("PRAGMA foreign_keys=ON")
            self._local.conn = c
        return c

    @contextlib.contextmanager
    def write(self):
        """One write transaction (all or nothing)."""
        c = self.conn()
        with self._write_lock:
            c.execute("BEGIN IMMEDIATE")
            try:
                yield c
            except BaseException:
                c.execute("ROLLBACK")
                raise
            else:
                c.execute("COMMIT")

    def query(self, sql, params=()):
        return self.conn().execute(sql, params).fetchall()

    def one(self, sql, params=()):
        return self.conn().execute(sql, params).fetchone()

    def counts(self):
        """Row count per table (tests: nothing stored from rejected requests)."""
        out = {}
        for table in ("api_keys", "uplink_keys", "agents", "satellites", "plans", "deployments",
                      "events"):
            out[table] = self.one("SELECT COUNT(*) FROM %s" % table)[0]
        return out


def now_iso(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)
