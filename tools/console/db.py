"""Storage of the Console: SQLite (stdlib sqlite3, the default) or PostgreSQL
(psycopg 3, `umbra console --db postgresql://USER@HOST[:PORT]/DB`), behind
one interface (`connect(target)`), parameterised SQL only.

SQLite: one connection per thread (the web server answers on a thread pool),
WAL mode so readers never wait for the writer, and one process-wide write
lock with BEGIN IMMEDIATE so concurrent writers queue instead of failing with
"database is locked". Everything a request writes happens in one
transaction: a rejected request stores nothing.

PostgreSQL (PgDatabase): the same SQL, translated by a thin dialect layer
(`?` -> `%s`, INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, AUTOINCREMENT ->
IDENTITY, json_extract/json_array_length as SQL functions), one connection
per thread, READ COMMITTED write transactions and no process lock: several
Console processes share the database, and what must hold across them is
held by the database (the unique index, and one advisory lock: lock_writes,
which does nothing on SQLite).

Both backends keep a schema_version table: the schema of the first
versioned release is version 1 (a database from before it is brought to
it by its column MIGRATIONS), each later change is a step of VERSIONS, and
opening a database runs the steps it lacks -- never recreating it.
"""
import contextlib
import json
import os
import re
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


# Schema changes after version 1 (the schema above with MIGRATIONS applied):
# (version, SQL in SQLite's dialect), run in order on a database that lacks them.
VERSIONS = (
    (2, """
CREATE TABLE IF NOT EXISTS rate_windows (  -- rate limits shared by Console processes
    key  TEXT PRIMARY KEY,                 -- agent, kind, scope (auth.SharedRateLimiter)
    hits TEXT NOT NULL                     -- JSON: the times (Unix s) of the requests counted
);
"""),
)

# PostgreSQL has neither: SQLite's JSON functions as PostgreSQL SQL functions
# (text in, text out: a number comes back as its text, as json_extract's caller knows)
PG_FUNCTIONS = """
CREATE OR REPLACE FUNCTION json_extract(doc TEXT, path TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE AS $$ SELECT doc::jsonb #>> string_to_array(substr(path, 3), '.') $$;
CREATE OR REPLACE FUNCTION json_array_length(doc TEXT) RETURNS BIGINT
    LANGUAGE sql IMMUTABLE AS $$ SELECT jsonb_array_length(doc::jsonb) $$;
"""

# PostgreSQL's advisory locks: the writes that go one at a time (lock_writes),
# and a migration (two Consoles starting at once on a new database)
WRITE_LOCK = 0x756d627261  # 'umbra'
MIGRATE_LOCK = WRITE_LOCK + 1


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class WouldWrite(Exception):
    """A write began inside `Database.reading_only()`: the work writes, and
    must run where writing may wait (api.answer: on the thread pool)."""


class Unstorable(ValueError):
    """A value the database cannot hold (PostgreSQL: text with U+0000): the
    request is refused (400) and nothing it wrote is kept."""


class Unusable(Exception):
    """The path cannot hold a Console database (absent, not SQLite, not writable)."""


def is_url(target):
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def connect(target, create=True):
    """The Console database at target: a PostgreSQL URL (PgDatabase) or a SQLite
    file path (Database)."""
    return PgDatabase(target, create=create) if is_url(target) else Database(target, create)


def shown(target):
    """target as it may be printed (a URL's password replaced by ***)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", target) if is_url(target) else target


class Database:
    """The Console's database on SQLite. Another service on SQLite (the
    Simulation Service) subclasses it with its own SCHEMA, MIGRATIONS,
    VERSIONS, TABLES and WHAT."""
    dialect = "sqlite"
    SCHEMA = SCHEMA
    MIGRATIONS = MIGRATIONS
    LATE_INDEXES = LATE_INDEXES
    VERSIONS = VERSIONS
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
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, "
                     "applied_at TEXT NOT NULL)")
        version = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        self._check_version(version)
        if version == 0:  # new, or made before versions: its tables are there (IF NOT EXISTS)
            self._columns(conn)
            conn.execute("INSERT INTO schema_version VALUES (1, ?)", (now_iso(),))
        self._steps(conn, version, conn.executescript)

    def _steps(self, conn, version, run):
        """The VERSIONS steps above `version`, each run (its SQL) and recorded."""
        for v, sql in self.VERSIONS:
            if v > version:
                run(sql)
                conn.execute("INSERT INTO schema_version VALUES (?, ?)", (v, now_iso()))

    def schema_version(self):
        return self.one("SELECT MAX(version) FROM schema_version")[0]

    def _check_version(self, version):
        known = max([1] + [v for v, _ in self.VERSIONS])
        if version > known:
            raise Unusable("schema version %d is newer than this Umbra knows (%d): "
                           "use the Umbra that made it" % (version, known))

    def _columns(self, conn):
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

    def close(self):
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    def query(self, sql, params=()):
        return self.conn().execute(sql, params).fetchall()

    def one(self, sql, params=()):
        return self.conn().execute(sql, params).fetchone()

    def dump(self):
        """Every stored row as text (tests: what is and is not in the database)."""
        return "\n".join(self.conn().iterdump())

    def counts(self):
        """Row count per table (tests: nothing stored from rejected requests)."""
        out = {}
        for table in self.TABLES:
            out[table] = self.one("SELECT COUNT(*) FROM %s" % table)[0]
        return out


def lock_writes(c):
    """Inside a write that stores events, telemetry or dead letters, or changes a
    deployment's status: first, before any row lock. On PostgreSQL it waits for
    the same writes of every Console on the database (PgDatabase says why); on
    SQLite there is one writer at a time already and it does nothing."""
    if getattr(c, "dialect", None) == "postgresql":
        c.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))


def now_iso(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


# ---------------------------------------------------------------- PostgreSQL

def pg_schema(sql):
    """SQLite's DDL in PostgreSQL's dialect."""
    sql = re.sub(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b",
                 "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", sql)
    sql = re.sub(r"\bINTEGER\b", "BIGINT", sql)
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)


_QUOTED = re.compile(r"('[^']*')")


def pg_sql(sql):
    """A query with `?` placeholders in psycopg's form (`%s`; a literal % doubled);
    a `?` inside a quoted literal is left alone."""
    parts = _QUOTED.split(sql.replace("%", "%%"))
    return "".join(p if i % 2 else p.replace("?", "%s") for i, p in enumerate(parts))


class Row(tuple):
    """A result row as sqlite3.Row reads: by position, by column name, dict(row)."""

    def __new__(cls, values, index):
        row = tuple.__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self):
        return list(self._index)


def _rows(cursor):
    desc = cursor.description
    index = {d.name: i for i, d in enumerate(desc)} if desc else {}
    return lambda values: Row(values, index)


class PgConnection:
    """A psycopg connection that takes the Console's SQL (what the code does with
    a sqlite3 connection: execute -> cursor with fetchone/fetchall/rowcount,
    iteration; rows by position and name)."""
    dialect = "postgresql"

    def __init__(self, raw):
        self.raw = raw

    def execute(self, sql, params=()):
        for p in params:
            if isinstance(p, str) and "\x00" in p:
                raise Unstorable("text with a NUL character (U+0000) cannot be stored")
        cur = self.raw.cursor(row_factory=_rows)
        cur.execute(pg_sql(sql), tuple(params))
        return cur

    def script(self, sql):
        """DDL without parameters, several statements."""
        self.raw.execute(sql)

    def close(self):
        self.raw.close()


class PgDatabase(Database):
    """The Console's database on PostgreSQL: one interface with Database, for
    several Console processes on one database.

    Exactly-once per (origin, seq) is the unique index events_once: INSERT ...
    ON CONFLICT DO NOTHING stores a row once, and a second transaction
    inserting the same key -- the same batch sent to two Consoles, after a
    ground-station failover -- waits for the first and then stores nothing,
    whichever process it runs in. The rest of an ingest reads what others
    write: acked_seq (advance_acked scans the origin's events and dead
    letters), the deployment's status, a constellation parent's children.
    Under READ COMMITTED two such transactions could each read the other's
    work as not there yet and write a stale acked_seq or status; and event
    and telemetry ids, taken from sequences at insert time, could commit out
    of order, so a stream reading "rows after id N" (`?follow=1`,
    /api/ui/stream) would skip the id that committed late.

    So the writes that store events, telemetry or dead letters or change a
    deployment's status begin with one transaction-scoped advisory lock
    (lock_writes), taken before any row lock (no deadlock among them): they
    run one at a time across all Consoles, as on SQLite within one; every
    statement after the lock sees what the previous one committed (READ
    COMMITTED takes a snapshot per statement), and row ids are handed out and
    committed in one order. Each Console's streams poll the database every
    SSE_POLL_S, and so see in order what every Console stored. The other
    writes (keys, registrations, catalog, rate windows) go side by side.
    A Console killed mid-transaction leaves nothing: PostgreSQL rolls back
    what its connection had not committed, and the agent's resend to another
    Console is stored then, once."""
    dialect = "postgresql"

    def __init__(self, url, create=True):
        import psycopg
        self._psycopg = psycopg
        self.path = url
        self._local = threading.local()
        try:
            conn = self.conn()
            with conn.raw.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATE_LOCK,))
                self._migrate_pg(conn, create)
        except psycopg.Error as exc:
            self.close()
            raise Unusable("cannot use %s as the %s: %s" % (shown(url), self.WHAT,
                                                               str(exc).strip()))
        except Unusable:
            self.close()
            raise

    def _migrate_pg(self, conn, create):
        exists = conn.execute("SELECT to_regclass('schema_version')").fetchone()[0]
        if exists is None and not create:
            raise Unusable("no %s at %s (no schema_version table)" % (self.WHAT, shown(self.path)))
        conn.script("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL, "
                    "applied_at TEXT NOT NULL)")
        version = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        self._check_version(version)
        if version == 0:  # the first versioned schema is all there is to make
            conn.script(PG_FUNCTIONS)
            conn.script(pg_schema(self.SCHEMA))
            for _table, sql in self.LATE_INDEXES:
                conn.script(sql)
            conn.execute("INSERT INTO schema_version VALUES (1, ?)", (now_iso(),))
        self._steps(conn, version, lambda sql: conn.script(pg_schema(sql)))

    def conn(self):
        c = getattr(self._local, "conn", None)
        if c is None or c.raw.closed or c.raw.broken:  # a server restart: connect again
            raw = self._psycopg.connect(self.path, autocommit=True, connect_timeout=30)
            c = PgConnection(raw)
            self._local.conn = c
        return c

    @contextlib.contextmanager
    def write(self):
        """One write transaction (all or nothing), READ COMMITTED; no process lock."""
        if getattr(self._local, "reading_only", False):
            raise WouldWrite()
        c = self.conn()
        with c.raw.transaction():
            yield c

    @contextlib.contextmanager
    def read(self):
        """One read transaction: every query inside sees the same snapshot."""
        c = self.conn()
        with c.raw.transaction():
            c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield c

    def dump(self):
        out = []
        for (table,) in self.query("SELECT table_name FROM information_schema.tables WHERE "
                                   "table_schema = current_schema() ORDER BY table_name"):
            out += ["%s %r" % (table, tuple(r)) for r in self.query('SELECT * FROM "%s"' % table)]
        return "\n".join(out)
