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
"""

# Columns added after the first release: (table, column, declaration), added to
# an existing database when it is opened.
MIGRATIONS = (
    ("agents", "clear_safe_mode", "INTEGER NOT NULL DEFAULT 0"),
    ("agents", "umbra_aware", "INTEGER NOT NULL DEFAULT 0"),
    ("api_keys", "satellite_id", "TEXT"),
    ("api_keys", "last_used_at", "TEXT"),
    ("api_keys", "revoked_at", "TEXT"),
    ("deployments", "kind", "TEXT NOT NULL DEFAULT 'single'"),
    ("deployments", "parent_id", "TEXT"),
)

# Indexes on migrated columns: made after the migrations (an old database has
# no such column when SCHEMA runs).
LATE_INDEXES = (
    ("deployments", "CREATE INDEX IF NOT EXISTS deployments_by_parent ON deployments(parent_id)"),
)


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class WouldWrite(Exception):
    """A write began inside `Database.reading_only()`: the work writes, and
    must run where writing may wait (api.answer: on the thread pool)."""


class Unusable(Exception):
    """The path cannot hold a Console database (absent, not SQLite, not writable)."""


class Database:
    """The Console's database. Another service on SQLite (the Simulation
    Service) subclasses it with its own SCHEMA, MIGRATIONS, TABLES and WHAT."""
    SCHEMA = SCHEMA
    MIGRATIONS = MIGRATIONS
    LATE_INDEXES = LATE_INDEXES
    TABLES = ("api_keys", "uplink_keys", "agents", "satellites", "plans", "deployments", "events")
    WHAT = "Console database"

    def __init__(self, path, create=True):
        """create=False: the database must exist already (commands that only read
        or change one never create an empty one by mistake)."""
        self.path = path
        self._local = threading.local()
        self._write_lock = threading.Lock()
        if not create and not os.path.isfile(path):
            raise Unusable("no %s at %s" % (self.WHAT, path))
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            conn = self.conn()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(self.SCHEMA)
            self._migrate(conn)
        except (OSError, sqlite3.Error) as exc:
            if getattr(self._local, "conn", None) is not None:
                self._local.conn.close()
                self._local.conn = None
            raise Unusable("cannot use %s as the %s: %s" % (path, self.WHAT, exc))

    def _migrate(self, conn):
        for table, column, decl in self.MIGRATIONS:  # columns a database from before them lacks
            if column not in [r[1] for r in conn.execute("PRAGMA table_info(%s)" % table)]:
                conn.execute("ALTER TABLE %s ADD COLUMN %s %s" % (table, column, decl))
                if (table, column) == ("api_keys", "satellite_id"):
                    # keys from before bindings: bound to the satellite their agent
                    # registered for (or, if it never did, to the first it registers for)
                    conn.execute("UPDATE api_keys SET satellite_id = (SELECT satellite_id "
                                 "FROM agents WHERE agents.agent_id = api_keys.agent_id) "
                                 "WHERE kind = 'agent'")
        for table, sql in self.LATE_INDEXES:  # (a subclass's schema may lack the table)
            if conn.execute("PRAGMA table_info(%s)" % table).fetchall():
                conn.execute(sql)

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
        """One write transaction (all or nothing). Inside reading_only():
        WouldWrite, before anything is written or waited for."""
        if getattr(self._local, "reading_only", False):
            raise WouldWrite()
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

    @contextlib.contextmanager
    def reading_only(self):
        """This thread may read but not write inside: a write() raises
        WouldWrite (the event loop's thread never waits for the write lock)."""
        self._local.reading_only = True
        try:
            yield
        finally:
            self._local.reading_only = False

    @contextlib.contextmanager
    def read(self):
        """One read transaction: every query inside sees the same snapshot."""
        c = self.conn()
        c.execute("BEGIN")
        try:
            yield c
        finally:
            c.execute("COMMIT")

    def query(self, sql, params=()):
        return self.conn().execute(sql, params).fetchall()

    def one(self, sql, params=()):
        return self.conn().execute(sql, params).fetchone()

    def counts(self):
        """Row count per table (tests: nothing stored from rejected requests)."""
        out = {}
        for table in self.TABLES:
            out[table] = self.one("SELECT COUNT(*) FROM %s" % table)[0]
        return out


def now_iso(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)
