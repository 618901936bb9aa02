"""Simulation sessions: one satellite or a fleet, stepped through time, kept
in the service's database.

A session is built from its creating request (stored as accepted) and its
state (per satellite: time, battery energy, temperature, the load in force),
which every step rewrites in one transaction. A service restarted on the
same database rebuilds a session from those two and continues exactly as an
uninterrupted one would: the physics restart from the same numbers
(SimulatedSatellite.restore), and the eclipse/contact windows are searched in
the same chunks (seams at start + n * CHUNK_S), so every boundary falls at
the same instant.

Each satellite is a sim/spacecraft.py SimulatedSatellite (battery, thermal,
memory, CPU, position, eclipse) on its own Timeline over the default ground
network; a fleet's ISL link graph comes from links.link_graph.
"""
import json
import math
import secrets
import threading

import tools  # noqa: F401  (portable folders on sys.path)
import models
import orbit as orbitlib
import spacecraft
import stations as stationlib
import timeutil
import world as worldlib

from tools.console.api import ApiError

from . import links, schemas
from .db import dumps, now_iso
from .orbitstate import (LATEST, BadInput, check_time_near_epoch, elements_from,
                         elements_from_tle, parse_time)

CHUNK_S = 86400          # windows are searched a day at a time, from the session's start
KEEP_PAST_S = 3600       # windows that ended longer ago than this are dropped
STATIONS = stationlib.default_stations()
_LATEST_T = timeutil.parse_iso(LATEST)


def iso_ms(t):
    """Unix seconds -> ISO 8601 UTC to the millisecond."""
    whole = int(math.floor(t))
    ms = int(round((t - whole) * 1000))
    if ms == 1000:
        whole, ms = whole + 1, 0
    return timeutil.iso_utc(whole, ms)


def bad(exc):
    return ApiError(400, str(exc))


class Session:
    """A live session: its satellites built and restored from the database row."""

    def __init__(self, sid, kind, spec, t, state, steps, created_at):
        self.id = sid
        self.kind = kind
        self.spec = spec
        self.start = parse_time(spec["start"], "start")
        self.t = t
        self.steps = steps
        self.created_at = created_at
        self.lock = threading.Lock()
        self.order = []         # satellite ids, as given
        self.sats = {}          # id -> SimulatedSatellite
        self.meta = {}          # id -> {name, role}
        self.epochs = {}        # id -> elements' epoch
        for sid_, el, bus, name, role in satellite_entries(spec, self.start):
            self._add(sid_, el, bus, (state or {}).get(sid_))
            self.meta[sid_] = {"name": name or sid_, "role": role}

    def _add(self, sat_id, el, bus, saved):
        orb = orbitlib.Orbit(el)
        t = self.t
        # the chunk before the one holding t: the windows near t are the ones an
        # uninterrupted session found (same seams)
        n = max(0, int((t - self.start) // CHUNK_S) - 1)
        tl = spacecraft.Timeline(orb, self.start + n * CHUNK_S, CHUNK_S, STATIONS,
                                 models.MIN_ELEVATION_DEG, windows=False)
        sat = spacecraft.SimulatedSatellite(sat_id, orb, self.start, bus=bus, stations=STATIONS,
                                            timeline=tl)
        if saved is not None:
            sat.restore(saved)
            sat.set_compute_load(saved["load_w"], saved["load_memory_mb"])
        self.order.append(sat_id)
        self.sats[sat_id] = sat
        self.epochs[sat_id] = el["epoch"]

    # --- stepping -----------------------------------------------------------------

    def target_of(self, body):
        """The time a StepBody steps to; BadInput naming the field otherwise."""
        if (body.until is None) == (body.seconds is None):
            raise BadInput("until", "give exactly one of until or seconds")
        if body.until is not None:
            field = "until"
            target = parse_time(body.until, field)
            if target <= self.t:
                raise BadInput(field, "%s is not after the session's time %s"
                               % (body.until, iso_ms(self.t)))
            if target - self.t > schemas.MAX_STEP_S:
                raise BadInput(field, "more than %d s after the session's time %s"
                               % (schemas.MAX_STEP_S, iso_ms(self.t)))
        else:
            field = "seconds"
            target = self.t + body.seconds
        if target >= _LATEST_T:
            raise BadInput(field, "the session would pass %s" % LATEST)
        for sat_id in self.order:
            check_time_near_epoch({"epoch": self.epochs[sat_id]}, target, field)
        for sat_id in body.loads or {}:
            if sat_id not in self.sats:
                raise BadInput("loads.%s" % sat_id, "no satellite %r in this session" % sat_id)
        return target

    def step_to(self, target, loads):
        for sat_id, load in (loads or {}).items():
            self.sats[sat_id].set_compute_load(load.power_w, load.memory_mb)
        for sat_id in self.order:
            sat = self.sats[sat_id]
            sat.advance_to(target)
            sat.timeline.forget_before(target - KEEP_PAST_S)
        self.t = target
        self.steps += 1

    # --- what it shows ------------------------------------------------------------

    def saved_state(self):
        out = {}
        for sat_id in self.order:
            sat = self.sats[sat_id]
            rec = sat.physical_state()
            rec["load_w"] = sat.load_w
            rec["load_memory_mb"] = sat.load_memory_mb
            out[sat_id] = rec
        return out

    def summary(self):
        return {"session_id": self.id, "kind": self.kind, "start": iso_ms(self.start),
                "time": iso_ms(self.t), "steps": self.steps,
                "satellites": len(self.order), "created_at": self.created_at}

    def state(self):
        """Every satellite's subsystem state and the ISL link graph at the session's time."""
        sats, positions = [], []
        for sat_id in self.order:
            sat = self.sats[sat_id]
            st = worldlib.state_of(sat)
            row = {"satellite_id": sat_id, "name": self.meta[sat_id]["name"],
                   "role": self.meta[sat_id]["role"]}
            for key in ("battery_wh", "battery_percent", "compute_capacity", "temperature_c",
                        "memory_mb", "cpu_percent", "compute_load_w", "in_eclipse", "link_up",
                        "station", "lat", "lon", "altitude_km"):
                row[key] = st[key]
            row["load"] = {"power_w": sat.load_w, "memory_mb": sat.load_memory_mb}
            sats.append(row)
            positions.append((sat_id, sat.orbit.position(self.t), st["in_eclipse"]))
        return dict(self.summary(), t=self.t, satellites=sats,
                    isl_links=links.link_graph(positions) if len(positions) > 1 else [])


def satellite_entries(spec, start):
    """[(satellite_id, elements, bus overrides, name, role)] of a session's
    creating request; BadInput naming the field."""
    if (spec.get("satellite") is None) == (spec.get("fleet") is None):
        raise BadInput("fleet", "give exactly one of satellite or fleet")
    if spec.get("fleet") is not None:
        entries = [("fleet[%d]" % i, e) for i, e in enumerate(spec["fleet"])]
    else:
        entries = [("satellite", spec["satellite"])]
    default_epoch = parse_time(spec["epoch"], "epoch") if spec.get("epoch") else start
    common_bus = spec.get("bus") or {}
    seen = set()
    out = []
    for field, e in entries:
        sat_id = e["satellite_id"]
        if sat_id in seen:
            raise BadInput(field + ".satellite_id", "%r appears twice" % sat_id)
        seen.add(sat_id)
        if (e.get("orbit") is None) == (e.get("tle") is None):
            raise BadInput(field + ".orbit", "give exactly one of orbit or tle")
        if e.get("orbit") is not None:
            el = elements_from(e["orbit"], field + ".orbit", default_epoch)
        else:
            el = elements_from_tle(e["tle"], field + ".tle")
        check_time_near_epoch(el, start, "start")
        bus = dict(common_bus)
        bus.update(e.get("bus") or {})
        try:
            models.bus_config(bus)
        except ValueError as exc:
            raise BadInput(field + ".bus" if e.get("bus") else "bus", str(exc))
        out.append((sat_id, el, bus, e.get("name"), e.get("role")))
    return out


class SessionStore:
    """The sessions of one service: in its database, the live ones cached."""

    def __init__(self, db):
        self.db = db
        self._cache = {}
        self._lock = threading.Lock()

    # --- lookup -------------------------------------------------------------------

    def get(self, session_id):
        with self._lock:
            s = self._cache.get(session_id)
        if s is not None:
            return s
        row = self.db.one("SELECT * FROM sessions WHERE id = ?", (session_id,))
        if row is None:
            raise ApiError(404, "no session %r" % session_id)
        s = Session(row["id"], row["kind"], json.loads(row["spec"]), row["t"],
                    json.loads(row["state"]), row["steps"], row["created_at"])
        with self._lock:
            return self._cache.setdefault(session_id, s)

    def _evict(self, session_id):
        with self._lock:
            self._cache.pop(session_id, None)

    def list(self):
        rows = self.db.query("SELECT id, kind, spec, t, steps, created_at FROM sessions "
                             "ORDER BY created_at, id")
        out = []
        for r in rows:
            spec = json.loads(r["spec"])
            out.append({"session_id": r["id"], "kind": r["kind"], "start": spec["start"],
                        "time": iso_ms(r["t"]), "steps": r["steps"],
                        "satellites": len(spec.get("fleet") or [1]),
                        "created_at": r["created_at"]})
        return out

    # --- changes ------------------------------------------------------------------

    def create(self, body):
        spec = body.model_dump(exclude_none=True)
        try:
            start = parse_time(body.start, "start")
            session = Session(None, "fleet" if body.fleet is not None else "satellite", spec,
                              start, None, 0, now_iso())
        except BadInput as exc:
            raise bad(exc)
        session.id = "sim-" + secrets.token_hex(6)
        reply = session.state()
        with self.db.write() as c:
            n = c.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
            if n >= schemas.MAX_SESSIONS:
                raise ApiError(409, "the service holds %d sessions, its maximum: delete one "
                                    "first" % n)
            c.execute("INSERT INTO sessions (id, kind, spec, t, state, steps, created_at, "
                      "updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                      (session.id, session.kind, dumps(spec), session.t,
                       dumps(session.saved_state()), session.created_at, session.created_at))
        with self._lock:
            self._cache[session.id] = session
        return reply

    def step(self, session_id, body):
        session = self.get(session_id)
        with session.lock:
            try:
                target = session.target_of(body)
            except BadInput as exc:
                raise bad(exc)
            try:
                session.step_to(target, body.loads)
                reply = session.state()
                with self.db.write() as c:
                    cur = c.execute("UPDATE sessions SET t = ?, state = ?, steps = ?, "
                                    "updated_at = ? WHERE id = ?",
                                    (session.t, dumps(session.saved_state()), session.steps,
                                     now_iso(), session_id))
                    if cur.rowcount != 1:
                        raise ApiError(404, "no session %r" % session_id)
            except BaseException:
                self._evict(session_id)   # the database holds the truth: rebuilt from it
                raise
        return reply

    def state(self, session_id):
        session = self.get(session_id)
        with session.lock:
            return session.state()

    def delete(self, session_id):
        session = self.get(session_id)
        with session.lock:
            with self.db.write() as c:
                c.execute("DELETE FROM constellation WHERE session_id = ?", (session_id,))
                cur = c.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
                if cur.rowcount != 1:
                    raise ApiError(404, "no session %r" % session_id)
            self._evict(session_id)
        return {"session_id": session_id, "deleted": True}

    def put_constellation(self, session_id, body):
        session = self.get(session_id)
        for sat_id in body.states:
            if sat_id not in session.sats:
                raise ApiError(400, "states.%s: no satellite %r in this session"
                               % (sat_id, sat_id))
        docs = {sat_id: doc.model_dump() for sat_id, doc in body.states.items()}
        now = now_iso()
        with session.lock:
            with self.db.write() as c:
                if c.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
                    raise ApiError(404, "no session %r" % session_id)
                c.execute("DELETE FROM constellation WHERE session_id = ?", (session_id,))
                for sat_id in session.order:
                    if sat_id in docs:
                        c.execute("INSERT INTO constellation (session_id, satellite_id, doc, "
                                  "updated_at) VALUES (?, ?, ?, ?)",
                                  (session_id, sat_id, dumps(docs[sat_id]), now))
        return self.get_constellation(session_id)

    def get_constellation(self, session_id):
        session = self.get(session_id)
        rows = self.db.query("SELECT satellite_id, doc, updated_at FROM constellation "
                             "WHERE session_id = ?", (session_id,))
        by_id = {r["satellite_id"]: r for r in rows}
        states = {}
        updated = None
        for sat_id in session.order:
            r = by_id.get(sat_id)
            if r is not None:
                states[sat_id] = json.loads(r["doc"])
                updated = max(updated or r["updated_at"], r["updated_at"])
        return {"session_id": session_id, "states": states, "updated_at": updated}
