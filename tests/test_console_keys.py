"""`umbra keys list` / `umbra keys revoke` on a running Console's database: the
key's hash, kind, agent, created and last used; a revoked key is refused (401)
at its very next request; last-used is written at most once a minute per key,
not at every request; a database from before these columns still opens."""
import json
import os
import sqlite3
import subprocess
import sys

import httpx
import pytest

from tools import ROOT
from tools.console import auth
from tools.console.db import Database
from tools.console.server import serve_in_thread

UMBRA = os.path.join(os.path.dirname(sys.executable), "umbra")


def umbra(*args):
    return subprocess.run([UMBRA] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


@pytest.fixture
def console(db_target):
    path = db_target("keys")
    srv = serve_in_thread(path)
    yield srv, path
    srv.stop()


def test_keys_list_shows_hash_kind_agent_created_and_last_used(console):
    srv, path = console
    user = auth.create_key(srv.db, "user")["key"]
    agent = auth.create_key(srv.db, "agent", "sat-7", satellite_id="25544")["key"]
    assert httpx.get(srv.url + "/api/satellites", headers={"X-API-Key": user}).status_code == 200
    listed = umbra("keys", "list", "--db", path)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["hash", "kind", "agent", "satellite", "created", "last", "used",
                              "revoked"]
    by_hash = {row.split()[0]: row.split() for row in rows}
    u, a = by_hash[auth.hash_key(user)[:16]], by_hash[auth.hash_key(agent)[:16]]
    assert u[1:4] == ["user", "-", "-"] and a[1:4] == ["agent", "sat-7", "25544"]
    assert u[5] != "-" and a[5] == "-"          # the user key was used, the agent's not yet
    assert u[6] == "-" and a[6] == "-"          # neither revoked
    assert user not in listed.stdout and agent not in listed.stdout  # hashes only
    doc = json.loads(umbra("keys", "list", "--json", "--db", path).stdout)
    assert {k["key_hash"] for k in doc} == {auth.hash_key(user), auth.hash_key(agent)}


def test_a_revoked_key_is_refused_at_its_next_request(console):
    srv, path = console
    agent = auth.create_key(srv.db, "agent", "sat-9", rate_limited=False,
                            satellite_id="25544")["key"]
    other = auth.create_key(srv.db, "agent", "sat-10", rate_limited=False,
                            satellite_id="25544")["key"]
    body = {"agent_id": "sat-9", "satellite_id": "25544", "agent_version": "t"}
    headers = {"X-API-Key": agent, "X-Agent-ID": "sat-9"}
    r = httpx.post(srv.url + "/api/agent/register", headers=headers, json=body)
    assert r.status_code == 201
    prefix = auth.hash_key(agent)[:10]
    revoked = umbra("keys", "revoke", prefix, "--db", path)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked %s (agent sat-9)" % auth.hash_key(agent)[:16] in revoked.stdout
    r = httpx.post(srv.url + "/api/agent/register", headers=headers, json=body)
    assert r.status_code == 401 and r.json()["error"] == "missing or invalid API key"
    # the other key still works; the list says which one is revoked
    r = httpx.post(srv.url + "/api/agent/register", headers={"X-API-Key": other,
                   "X-Agent-ID": "sat-10"}, json=dict(body, agent_id="sat-10"))
    assert r.status_code == 201
    rows = {k["key_hash"]: k for k in auth.list_keys(srv.db)}
    assert rows[auth.hash_key(agent)]["revoked_at"] and not rows[auth.hash_key(other)]["revoked_at"]
    # by the key itself too; again is harmless; unknown or ambiguous references are exit 2
    assert umbra("keys", "revoke", agent, "--db", path).returncode == 0
    assert rows[auth.hash_key(agent)]["revoked_at"] == \
        {k["key_hash"]: k for k in auth.list_keys(srv.db)}[auth.hash_key(agent)]["revoked_at"]
    unknown = umbra("keys", "revoke", "00000000", "--db", path)
    assert unknown.returncode == 2 and "no key whose hash starts with 00000000" in unknown.stderr
    short = umbra("keys", "revoke", "abc", "--db", path)
    assert short.returncode == 2 and "8 or more hex digits" in short.stderr


def test_last_used_is_not_written_at_every_request(console):
    srv, _ = console
    user = auth.create_key(srv.db, "user")["key"]
    with httpx.Client(base_url=srv.url, headers={"X-API-Key": user}) as http:
        assert http.get("/api/agents").status_code == 200
        first = auth.list_keys(srv.db)[0]["last_used_at"]
        for _ in range(30):
            assert http.get("/api/agents").status_code == 200
    assert auth.list_keys(srv.db)[0]["last_used_at"] == first  # one write, not 31


def test_a_key_first_used_by_a_poll_has_its_use_recorded(console):
    # a poll is answered on the event loop while it only reads; the key's
    # last use is a write, done for the same poll on the thread pool
    srv, _ = console
    agent = auth.create_key(srv.db, "agent", "sat-11", rate_limited=False,
                            satellite_id="25544")["key"]
    r = httpx.get(srv.url + "/api/agent/workloads",
                  headers={"X-API-Key": agent, "X-Agent-ID": "sat-11"})
    assert r.status_code == 404  # not registered: the key was still used
    used = {k["key_hash"]: k for k in auth.list_keys(srv.db)}[auth.hash_key(agent)]
    assert used["last_used_at"] is not None


def test_last_used_moves_once_its_interval_has_passed(tmp_path):
    db = Database(str(tmp_path / "c.db"))
    key_hash = auth.hash_key(auth.create_key(db, "user")["key"])
    now = [1000.0]
    usage = auth.KeyUsage(db, interval_s=60, clock=lambda: now[0])

    def last_used():
        return db.one("SELECT last_used_at FROM api_keys")[0]

    usage.seen(key_hash)
    first = last_used()
    assert first is not None
    db.conn().execute("UPDATE api_keys SET last_used_at = 'old'")
    now[0] += 59
    usage.seen(key_hash)
    assert last_used() == "old"          # within the minute: no write
    now[0] += 1
    usage.seen(key_hash)
    assert last_used() not in ("old", None)  # a minute on: written again


def test_a_database_from_before_revocation_opens_and_its_keys_still_work(tmp_path):
    path = str(tmp_path / "old.db")
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE api_keys (key_hash TEXT PRIMARY KEY, kind TEXT NOT NULL, agent_id TEXT,
                               rate_limited INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL);
    """)
    key = "um_an-old-key"
    old.execute("INSERT INTO api_keys VALUES (?, 'user', NULL, 1, '2026-01-01T00:00:00.000Z')",
                (auth.hash_key(key),))
    old.commit()
    old.close()
    srv = serve_in_thread(path)
    try:
        assert httpx.get(srv.url + "/api/agents", headers={"X-API-Key": key}).status_code == 200
        listed = umbra("keys", "list", "--db", path)
        assert listed.returncode == 0 and auth.hash_key(key)[:16] in listed.stdout
        assert umbra("keys", "revoke", key, "--db", path).returncode == 0
        assert httpx.get(srv.url + "/api/agents", headers={"X-API-Key": key}).status_code == 401
    finally:
        srv.stop()
