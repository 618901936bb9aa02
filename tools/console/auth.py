"""API keys (stored as SHA-256 only), uplink signing secrets, and rate limits."""
import hashlib
import json
import re
import secrets
import threading
import time

from . import catalog
from .db import now_iso

AGENT = "agent"
USER = "user"
RESERVED_AGENT_IDS = ("sim", "ground")  # event origins the Console itself writes
# An agent id is an event origin; the Console's own origins have a colon
# ("sim:<deployment>"), which an agent id never has.
AGENT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# PROTOCOL.md rate limits, per agent: (requests, per seconds)
LIMITS = {"poll": (1, 10.0), "telemetry": (1, 30.0), "events": (100, 60.0)}


def hash_key(key):
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(db, kind, agent_id=None, uplink=False, rate_limited=True, satellite_id=None):
    """Store a new key; returns {key, kind, agent_id, satellite_id, uplink_key?}.
    The key is shown once. An agent key is bound to one satellite: the one
    given, else the one its agent id names (catalog.for_agent_id); it acts
    for that satellite only (docs/console.md, "Security model")."""
    if kind not in (AGENT, USER):
        raise ValueError("kind must be 'agent' or 'user'")
    if kind == AGENT:
        if not agent_id:
            raise ValueError("an agent key needs an agent id")
        if not AGENT_ID.match(agent_id):
            raise ValueError("agent id %r: 1-64 letters, digits, '_', '.' or '-'" % (agent_id,))
        if agent_id in RESERVED_AGENT_IDS:
            raise ValueError("agent id %r is reserved" % agent_id)
        if satellite_id is None:
            satellite_id = catalog.for_agent_id(db, agent_id)
            if satellite_id is None:
                raise ValueError("an agent key is bound to a satellite: give satellite_id "
                                 "(umbra keys create --satellite), or an agent id "
                                 "sat-<NORAD id> of a catalog satellite")
        elif catalog.get(db, satellite_id) is None:
            raise ValueError("no satellite %r in the catalog" % (satellite_id,))
    elif uplink:
        raise ValueError("uplink keys are for agents")
    elif satellite_id is not None:
        raise ValueError("a user key is bound to no satellite")
    key = "um_" + secrets.token_urlsafe(32)
    out = {"key": key, "kind": kind, "agent_id": agent_id if kind == AGENT else None,
           "satellite_id": satellite_id, "rate_limited": bool(rate_limited)}
    with db.write() as c:
        c.execute("INSERT INTO api_keys (key_hash, kind, agent_id, satellite_id, rate_limited, "
                  "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                  (hash_key(key), kind, out["agent_id"], satellite_id, 1 if rate_limited else 0,
                   now_iso()))
        if uplink:
            secret = "upk_" + secrets.token_hex(32)
            c.execute("INSERT INTO uplink_keys (agent_id, secret, created_at) VALUES (?, ?, ?) "
                      "ON CONFLICT(agent_id) DO UPDATE SET secret=excluded.secret, "
                      "created_at=excluded.created_at",
                      (agent_id, secret, now_iso()))
            out["uplink_key"] = secret
    return out


def lookup_key(db, key):
    """The stored key record (dict, with its key_hash) for a presented key, or None
    (unknown or revoked)."""
    if not key:
        return None
    row = db.one("SELECT key_hash, kind, agent_id, satellite_id, rate_limited FROM api_keys "
                 "WHERE key_hash = ? AND revoked_at IS NULL", (hash_key(key),))
    return dict(row) if row else None


def bind_satellite(db, key, satellite_id):
    """Bind a key from before bindings to the satellite its agent first registers for."""
    with db.write() as c:
        c.execute("UPDATE api_keys SET satellite_id = ? WHERE key_hash = ? "
                  "AND satellite_id IS NULL", (satellite_id, hash_key(key)))


def list_keys(db):
    """Every key's record: key_hash, kind, agent_id, satellite_id, rate_limited,
    created_at, last_used_at, revoked_at (oldest first). The keys themselves are not stored."""
    return [dict(r) for r in db.query(
        "SELECT key_hash, kind, agent_id, satellite_id, rate_limited, created_at, last_used_at, "
        "revoked_at FROM api_keys ORDER BY created_at, key_hash")]


def find_key(db, ref):
    """The key_hash a reference names: the key itself (um_...), its SHA-256, or a
    unique prefix of at least 8 hex digits. ValueError if none or several."""
    ref = (ref or "").strip()
    if ref.startswith("um_"):
        ref = hash_key(ref)
    ref = ref.lower()
    if len(ref) < 8 or any(ch not in "0123456789abcdef" for ch in ref):
        raise ValueError("give the key, or 8 or more hex digits of its hash (umbra keys list)")
    rows = db.query("SELECT key_hash FROM api_keys WHERE key_hash LIKE ?", (ref + "%",))
    if not rows:
        raise ValueError("no key whose hash starts with %s" % ref)
    if len(rows) > 1:
        raise ValueError("%d keys' hashes start with %s: give more digits" % (len(rows), ref))
    return rows[0]["key_hash"]


def revoke_key(db, key_hash):
    """Revoke a key: every request with it is refused (401) from now on. Returns its
    record; revoking it again changes nothing."""
    with db.write() as c:
        c.execute("UPDATE api_keys SET revoked_at = ? WHERE key_hash = ? AND revoked_at IS NULL",
                  (now_iso(), key_hash))
    return [k for k in list_keys(db) if k["key_hash"] == key_hash][0]


class KeyUsage:
    """Records when each key was last used, at most once per `interval_s` per key,
    so a busy Console does not write the database at every request."""

    def __init__(self, db, interval_s=60.0, clock=None):
        self.db = db
        self.interval_s = interval_s
        self.clock = clock or time.monotonic
        self._written = {}  # key_hash -> clock() of the last write
        self._lock = threading.Lock()

    def seen(self, key_hash):
        now = self.clock()
        with self._lock:
            last = self._written.get(key_hash)
            if last is not None and now - last < self.interval_s:
                return
        # written first, then noted: a write refused (db.WouldWrite: a request
        # answered on the event loop) is done again by the same request on the pool
        with self.db.write() as c:
            c.execute("UPDATE api_keys SET last_used_at = ? WHERE key_hash = ?",
                      (now_iso(), key_hash))
        with self._lock:
            self._written[key_hash] = now


def uplink_secret(db, agent_id):
    row = db.one("SELECT secret FROM uplink_keys WHERE agent_id = ?", (agent_id,))
    return row["secret"] if row else None


class RateLimiter:
    """Sliding-window counters keyed by (agent, kind, scope). `clock` returns
    seconds (monotonic); tests inject their own."""

    def __init__(self, clock=None, limits=None):
        self.clock = clock or time.monotonic
        self.limits = dict(LIMITS if limits is None else limits)
        self._hits = {}
        self._lock = threading.Lock()

    def allow(self, agent_id, kind, scope=""):
        """Count one request; (True, 0) if allowed, else (False, retry_after_s)."""
        count, per = self.limits[kind]
        now = self.clock()
        key = (agent_id, kind, scope)
        with self._lock:
            self._hits[key], allowed, retry = _window(self._hits.get(key, ()), now, count, per)
        return allowed, retry


def _window(hits, now, count, per):
    """A sliding window of at most `count` requests per `per` seconds, after
    one more at `now`: (the times kept, allowed?, retry_after_s)."""
    hits = [t for t in hits if now - t < per]
    if len(hits) >= count:
        return hits, False, max(0.0, per - (now - hits[0]))
    hits.append(now)
    return hits, True, 0.0


class SharedRateLimiter(RateLimiter):
    """RateLimiter's windows in the database (table rate_windows), for Console
    processes that share one (PostgreSQL): a request counts against its
    agent's window whichever Console it reaches. Each check is one write
    transaction whose upsert locks the window's row, so two Consoles counting
    the same window take turns. `clock` returns seconds shared by the
    processes (default: wall-clock time)."""

    def __init__(self, db, clock=None, limits=None):
        super().__init__(clock or time.time, limits)
        self.db = db

    def allow(self, agent_id, kind, scope=""):
        count, per = self.limits[kind]
        key = "%s\x1f%s\x1f%s" % (agent_id, kind, scope)
        with self.db.write() as c:
            now = self.clock()
            row = c.execute("INSERT INTO rate_windows (key, hits) VALUES (?, '[]') "
                            "ON CONFLICT(key) DO UPDATE SET hits = rate_windows.hits "
                            "RETURNING hits", (key,)).fetchone()
            hits, allowed, retry = _window(json.loads(row["hits"]), now, count, per)
            c.execute("UPDATE rate_windows SET hits = ? WHERE key = ?", (json.dumps(hits), key))
        return allowed, retry
