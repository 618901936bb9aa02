"""The Simulation Service's SQLite database: the Console's Database (one
connection per thread, WAL, one write transaction per request: a rejected
request stores nothing) with the service's own tables."""
import hashlib

from tools.console.db import Database, dumps, now_iso  # noqa: F401  (re-exported)

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,           -- 'satellite' or 'fleet'
    spec        TEXT NOT NULL,           -- JSON: the creating request, as accepted (never changes)
    t           REAL NOT NULL,           -- the session's time, Unix s
    state       TEXT NOT NULL,           -- JSON: per satellite its physics and load at t
    steps       INTEGER NOT NULL,        -- steps taken
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS constellation (   -- a ConstellationState per satellite (PUT replaces all)
    session_id   TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    satellite_id TEXT NOT NULL,
    doc          TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (session_id, satellite_id)
);
"""


class SimDatabase(Database):
    SCHEMA = SCHEMA
    MIGRATIONS = ()
    VERSIONS = ()  # its schema is version 1 (db.Database keeps schema_version)
    TABLES = ("sessions", "constellation")
    WHAT = "Simulation Service database"

    def digest(self):
        """A hash of every stored row (tests: a refused request changes nothing)."""
        h = hashlib.sha256()
        for table in self.TABLES:
            for row in self.query("SELECT * FROM %s ORDER BY 1, 2" % table):
                h.update(repr(tuple(row)).encode())
        return h.hexdigest()
