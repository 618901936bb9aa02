"""Versioned schema (db.py): a database made by an earlier Umbra is upgraded in
place, its rows kept, never recreated; one made by a newer Umbra is refused;
`--db` takes a PostgreSQL URL as well as a SQLite file."""
import os
import sqlite3
import subprocess
import sys

import httpx
import pytest

from tools import ROOT
from tools.console import auth, deployments
from tools.console.db import VERSIONS, PgDatabase, Unusable, connect
from tools.console.server import serve_in_thread

UMBRA = os.path.join(os.path.dirname(sys.executable), "umbra")
CURRENT = max(v for v, _ in VERSIONS)
KEY = "um_a-key-from-before-versions"


def umbra(*args, env=None):
    return subprocess.run([UMBRA] + [str(a) for a in args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env=dict(os.environ, **(env or {})))


def fill(execute):
    """Rows as the Console of main stored them: a user key, an agent, a plan, a
    deployment with three events and its acked row."""
    execute("INSERT INTO api_keys (key_hash, kind, agent_id, satellite_id, rate_limited, "
            "created_at) VALUES (?, 'user', NULL, NULL, 1, '2026-01-01T00:00:00.000Z')",
            (auth.hash_key(KEY),))
    execute("INSERT INTO agents (agent_id, satellite_id, status, registered_at, updated_at) "
            "VALUES ('old-agent', 'old-sat', 'idle', '2026-01-01', '2026-01-01')")
    execute("INSERT INTO plans (id, satellite_id, created_at, data) VALUES "
            "('old-plan', 'old-sat', '2026-01-01', '{\"job\": {\"name\": \"j\", \"steps\": []}}')")
    execute("INSERT INTO deployments (id, plan_id, satellite_id, mode, speed_multiplier, status, "
            "agent_id, created_at, updated_at) VALUES ('old-dep', 'old-plan', 'old-sat', 'live', "
            "1, 'running', 'old-agent', '2026-01-01', '2026-01-01')")
    for seq in (1, 2, 3):
        execute("INSERT INTO events (deployment_id, origin, seq, type, data, received_at) "
                "VALUES ('old-dep', 'old-agent', ?, 'step.progress', ?, '2026-01-01')",
                (seq, '{"type": "step.progress", "seq": %d, "payload": {}}' % seq))
    execute("INSERT INTO acked (origin, acked_seq) VALUES ('old-agent', 3)")


def check_kept_and_served(target):
    db = connect(target)
    assert db.schema_version() == CURRENT
    assert db.counts() == {"api_keys": 1, "uplink_keys": 0, "agents": 1, "satellites": 0,
                           "plans": 1, "deployments": 1, "events": 3}
    assert db.one("SELECT COUNT(*) FROM rate_windows")[0] == 0  # version 2's table is there
    assert [e["seq"] for _, e in deployments.list_events(db, "old-dep")] == [1, 2, 3]
    assert deployments.acked_seq(db, "old-agent") == 3
    versions = [r[0] for r in db.query("SELECT version FROM schema_version ORDER BY version")]
    connect(target)  # opening again changes nothing
    assert [r[0] for r in db.query("SELECT version FROM schema_version ORDER BY version")] \
        == versions
    with serve_in_thread(target, seed=False) as srv:  # and the Console serves it
        r = httpx.get(srv.url + "/api/deployments/old-dep/events", headers={"X-API-Key": KEY})
        assert r.status_code == 200 and [e["seq"] for e in r.json()["events"]] == [1, 2, 3]
    db.close()
    return versions


def test_a_sqlite_database_made_by_the_schema_before_versions_is_upgraded_with_its_rows(
        tmp_path):
    path = str(tmp_path / "main.db")
    old = sqlite3.connect(path)
    with open(os.path.join(ROOT, "tests", "data", "console_schema_main.sql")) as f:
        old.executescript(f.read())
    fill(old.execute)
    old.commit()
    old.close()
    assert check_kept_and_served(path) == list(range(1, CURRENT + 1))


class FirstVersion(PgDatabase):
    VERSIONS = ()  # the Console as of schema version 1


def test_a_postgresql_database_at_version_1_is_upgraded_with_its_rows(pg_server):
    url = pg_server.new_database("v1")
    old = FirstVersion(url)
    assert old.schema_version() == 1
    assert old.one("SELECT to_regclass('rate_windows')")[0] is None
    with old.write() as c:
        fill(c.execute)
    old.close()
    assert check_kept_and_served(url) == list(range(1, CURRENT + 1))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_from_a_newer_umbra_is_refused_and_left_alone(backend, tmp_path, request):
    target = str(tmp_path / "new.db") if backend == "sqlite" \
        else request.getfixturevalue("pg_server").new_database("newer")
    db = connect(target)
    with db.write() as c:
        c.execute("INSERT INTO schema_version VALUES (?, 'later')", (CURRENT + 5,))
    db.close()
    with pytest.raises(Unusable, match="schema version %d is newer" % (CURRENT + 5)):
        connect(target)
    r = umbra("keys", "list", "--db", target)
    assert r.returncode == 2 and "is newer than this Umbra knows" in r.stderr


def test_keys_and_console_commands_take_a_postgresql_url(pg_server):
    url = pg_server.new_database("cli")
    r = umbra("keys", "create", "--user", "--db", url)
    assert r.returncode == 0, r.stderr
    key = r.stdout.split("key: ", 1)[1].split()[0]
    listed = umbra("keys", "list", env={"UMBRA_DB": url})  # $UMBRA_DB, as --db
    assert listed.returncode == 0 and auth.hash_key(key)[:16] in listed.stdout
    assert auth.lookup_key(connect(url), key)["kind"] == "user"
    # a server that is not there: one line, exit 2, no traceback
    bad = "postgresql://postgres@127.0.0.1:%d/none" % pg_server.port
    r = umbra("keys", "list", "--db", bad)
    assert r.returncode == 2 and "cannot use postgresql://" in r.stderr
    assert "Traceback" not in r.stderr
