"""Plans, deployments, dispatch, cancellation and exactly-once event storage."""
import json
import uuid

from . import constellations
from . import eventcheck as event_catalog
from .db import dumps, lock_writes, now_iso

FINISHED = ("completed", "failed", "cancelled")
ACTIVE_ON_AGENT = ("dispatched", "running")


class Conflict(Exception):
    pass


def save_plan(db, plan):
    with db.write() as c:
        c.execute("INSERT INTO plans (id, satellite_id, created_at, data) VALUES (?, ?, ?, ?)",
                  (plan["id"], plan["satellite"]["id"], plan["created_at"], dumps(plan)))


def get_plan(db, plan_id):
    row = db.one("SELECT data FROM plans WHERE id = ?", (plan_id,))
    return json.loads(row["data"]) if row else None


def create(db, plan, mode, speed_multiplier):
    dep_id = "dep-" + uuid.uuid4().hex[:16]
    now = now_iso()
    with db.write() as c:
        c.execute("INSERT INTO deployments (id, plan_id, satellite_id, mode, speed_multiplier, "
                  "status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                  (dep_id, plan["id"], plan["satellite"]["id"], mode, float(speed_multiplier),
                   now, now))
    return dep_id


def get(db, dep_id):
    row = db.one("SELECT * FROM deployments WHERE id = ?", (dep_id,))
    return dict(row) if row else None


def summary(db, dep_id):
    d = get(db, dep_id)
    if d is None:
        return None
    if d["kind"] == "parent":
        return constellations.summary(db, d, get_plan(db, d["plan_id"]))
    d.pop("cancel_pending")
    stats = db.one("SELECT COUNT(*) AS n, MAX(seq) AS last_seq FROM events WHERE deployment_id = ?",
                   (dep_id,))
    last = db.one("SELECT type FROM events WHERE deployment_id = ? ORDER BY id DESC LIMIT 1",
                  (dep_id,))
    done = db.one("SELECT COUNT(*) FROM events WHERE deployment_id = ? AND type = 'step.completed'",
                  (dep_id,))[0]
    plan = get_plan(db, d["plan_id"])
    d["events_count"] = stats["n"]
    d["last_event_type"] = last["type"] if last else None
    d["steps_total"] = len(plan["job"]["steps"]) if plan else None
    d["steps_completed"] = done
    d["job_name"] = plan["job"]["name"] if plan else None
    return d


def cancel(db, dep_id):
    """Mark cancelled; Conflict if it already finished otherwise. Returns the status.
    A constellation parent: itself and its unfinished children, in one transaction."""
    with db.write() as c:
        lock_writes(c)
        row = c.execute("SELECT status, kind, parent_id FROM deployments WHERE id = ?",
                        (dep_id,)).fetchone()
        if row is None:
            raise KeyError(dep_id)
        if row["status"] == "cancelled":
            return "cancelled"
        now = now_iso()
        if row["kind"] == "parent":
            if row["status"] in constellations.PARENT_FINISHED:
                raise Conflict("deployment already %s" % row["status"])
            c.execute("UPDATE deployments SET status = 'cancelled', updated_at = ?, "
                      "finished_at = ? WHERE id = ?", (now, now, dep_id))
            for child in constellations.children(c, dep_id):
                if child["status"] not in FINISHED:
                    cancel_in(c, child["id"], now)
            return "cancelled"
        if row["status"] in FINISHED:
            raise Conflict("deployment already %s" % row["status"])
        cancel_in(c, dep_id, now)
        if row["parent_id"]:
            constellations.refresh_parent(c, row["parent_id"], now)
    return "cancelled"


def cancel_in(c, dep_id, now):
    """Inside a write transaction: cancel an unfinished deployment."""
    row = c.execute("SELECT status, agent_id FROM deployments WHERE id = ?", (dep_id,)).fetchone()
    # An Umbra-aware agent is told at its next polls until it reports the end;
    # a v0.1.0 peer has no cancel in its protocol: the Console closes it alone.
    aware = row["agent_id"] and c.execute(
        "SELECT umbra_aware FROM agents WHERE agent_id = ?", (row["agent_id"],)).fetchone()
    tell_agent = 1 if (aware and aware[0] and row["status"] in ACTIVE_ON_AGENT) else 0
    c.execute("UPDATE deployments SET status = 'cancelled', cancel_pending = ?, "
              "updated_at = ?, finished_at = ? WHERE id = ?", (tell_agent, now, now, dep_id))


# the oldest live deployment of a satellite that no agent holds yet
PENDING = ("SELECT * FROM deployments WHERE satellite_id = ? AND mode = 'live' AND "
           "status = 'pending' AND agent_id IS NULL ORDER BY created_at, id LIMIT 1")


def poll(db, agent_id, satellite_id, aware=True):
    """(deployment dict or None, [deployment ids to cancel]) for a polling agent.
    Hands out the oldest pending live deployment of its satellite, or -- to an
    Umbra-aware agent -- the one already dispatched to it and not finished. A
    v0.1.0 peer (aware False) gets pending deployments only, and no cancels:
    a job it took is never handed to it again (its events carry no seq, so a
    replay after a restart would be stored twice)."""
    cancels, row = [], None
    if aware:
        cancels = [r["id"] for r in db.query(
            "SELECT id FROM deployments WHERE agent_id = ? AND cancel_pending = 1 "
            "ORDER BY updated_at", (agent_id,))]
        row = db.one(
            "SELECT * FROM deployments WHERE agent_id = ? AND mode = 'live' AND status IN "
            "('dispatched', 'running') ORDER BY dispatched_at, id LIMIT 1", (agent_id,))
    # Most polls find nothing new: they read and never queue for the write lock.
    if row is None and db.one(PENDING, (satellite_id,)) is not None:
        with db.write() as c:  # again inside the transaction: another agent may have won it
            lock_writes(c)
            row = c.execute(PENDING, (satellite_id,)).fetchone()
            if row is not None:
                now = now_iso()
                c.execute("UPDATE deployments SET status = 'dispatched', agent_id = ?, "
                          "dispatched_at = ?, updated_at = ? WHERE id = ?",
                          (agent_id, now, now, row["id"]))
                row = c.execute("SELECT * FROM deployments WHERE id = ?", (row["id"],)).fetchone()
                if row["parent_id"]:
                    constellations.refresh_parent(c, row["parent_id"], now)
    return (dict(row) if row else None), cancels



def workload_spec(db, dep, compact=False):
    """The WorkloadSpec (unsigned) of a deployment: its plan as the planner
    hands it to an agent (tools.planner.workload_spec; compact: Umbra
    extension, header X-Umbra-Compact: 1)."""
    from tools.planner import workload_spec as spec_of
    if dep.get("kind") == "child":
        return constellations.workload_spec(get_plan(db, dep["plan_id"]), dep)
    return spec_of(get_plan(db, dep["plan_id"]), dep["plan_id"], dep["id"], dep["satellite_id"],
                   compact)


def next_status(status, etype, child=False):
    """A deployment's status once one more of its events is stored (child: a
    constellation's, which satellite_complete ends too). The first end decides:
    a finished deployment stays finished, except that a child's job.failed
    outranks its satellite's share being done (the closer reports its share,
    then the job's end). Also the campaign's judge (tools/fleetcampaign.py)."""
    terminal = event_catalog.TERMINAL.get(etype) or \
        (constellations.CHILD_TERMINAL.get(etype) if child else None)
    if terminal and status not in FINISHED:
        return terminal
    if terminal and child and etype == "job.failed" and status == "completed":
        return "failed"
    if status in ("pending", "dispatched"):
        return "running"
    return status


def store_events(db, dep_id, origin, agent_id, evs):
    """Store events exactly once per (origin, seq), in one transaction.
    Returns (ids, acked_seq); a resent event gets the id it was stored under.
    dep_id None: agent-level events (boots, faults, safe mode) that belong to no
    deployment; they are stored under deployment_id '' and change no status."""
    ids = []
    now = now_iso()
    with db.write() as c:
        lock_writes(c)  # one at a time on every Console (db.PgDatabase)
        if dep_id is None:
            status = "none"
        else:
            dep = c.execute("SELECT status, agent_id, kind, parent_id FROM deployments "
                            "WHERE id = ?", (dep_id,)).fetchone()
            if dep is None:
                raise KeyError(dep_id)
            status = dep["status"]
        child = dep_id is not None and dep["kind"] == "child"
        new_status = status
        stored_any = False
        for ev in evs:
            ev = dict(ev)
            ev["agent_id"] = agent_id
            ev["deployment_id"] = dep_id
            if dep_id is None:
                ev["job_id"] = None
            ev.setdefault("job_id", None)
            ev.setdefault("step_id", None)
            ev.setdefault("payload", {})
            seq = ev.get("seq")
            # stored at most once per (origin, seq): the unique index decides
            row = c.execute("INSERT INTO events (deployment_id, origin, seq, type, data, "
                            "received_at) VALUES (?, ?, ?, ?, ?, ?) "
                            "ON CONFLICT(origin, seq) DO NOTHING RETURNING id",
                            (dep_id or "", origin, seq, ev["type"], dumps(ev), now)).fetchall()
            if not row:  # a resend: it keeps the id it was stored under
                ids.append(c.execute("SELECT id FROM events WHERE origin = ? AND seq = ?",
                                     (origin, seq)).fetchone()["id"])
                continue
            ids.append(row[0]["id"])
            stored_any = True
            new_status = next_status(new_status, ev["type"], child)
        if stored_any and dep_id is not None:
            finished = now if (new_status in FINISHED and status not in FINISHED) else None
            c.execute("UPDATE deployments SET status = ?, updated_at = ?, "
                      "finished_at = COALESCE(?, finished_at), "
                      "agent_id = COALESCE(agent_id, ?) WHERE id = ?",
                      (new_status, now, finished, None if origin.startswith("sim:") else agent_id,
                       dep_id))
        if any(ev.get("type") in event_catalog.TERMINAL for ev in evs):
            # the agent has reported the end: no need to tell it to cancel any more
            c.execute("UPDATE deployments SET cancel_pending = 0 WHERE id = ?", (dep_id,))
        if stored_any and dep_id is not None and dep["parent_id"]:
            constellations.refresh_parent(c, dep["parent_id"], now)
        acked = advance_acked(c, origin)
    return ids, acked


def advance_acked(c, origin):
    row = c.execute("SELECT acked_seq FROM acked WHERE origin = ?", (origin,)).fetchone()
    acked = row["acked_seq"] if row else 0
    start = acked
    # seqs the agent gave up on (dead letters) are accounted for too
    for (seq,) in c.execute("SELECT seq FROM events WHERE origin = ? AND seq > ? UNION "
                            "SELECT seq FROM dead_letters WHERE agent_id = ? AND seq > ? "
                            "ORDER BY seq", (origin, acked, origin, acked)):
        if seq != acked + 1:
            break
        acked = seq
    if acked != start or row is None:
        c.execute("INSERT INTO acked (origin, acked_seq) VALUES (?, ?) ON CONFLICT(origin) "
                  "DO UPDATE SET acked_seq = excluded.acked_seq", (origin, acked))
    return acked


def store_dead_letters(db, agent_id, letters):
    """Keep an agent's dead letters ([schemas.DeadLetter]) as sent, once per
    (agent, seq); returns (stored now, acked_seq)."""
    now = now_iso()
    stored = 0
    with db.write() as c:
        lock_writes(c)
        for d in letters:
            cur = c.execute("INSERT INTO dead_letters (agent_id, seq, deployment_id, event, "
                            "received_at) VALUES (?, ?, ?, ?, ?) "
                            "ON CONFLICT(agent_id, seq) DO NOTHING",
                            (agent_id, d.seq, d.deployment_id or "", d.event, now))
            stored += cur.rowcount
        acked = advance_acked(c, agent_id)
    return stored, acked


def dead_letters(db, agent_id, limit=1000):
    """An agent's dead letters, oldest first: {seq, deployment_id, event (the
    text as sent), parsed (the event, or None if the text is not JSON), received_at}."""
    out = []
    for r in db.query("SELECT seq, deployment_id, event, received_at FROM dead_letters "
                      "WHERE agent_id = ? ORDER BY seq LIMIT ?", (agent_id, limit)):
        d = dict(r)
        try:
            d["parsed"] = json.loads(d["event"])
        except ValueError:
            d["parsed"] = None
        out.append(d)
    return out


def acked_seq(db, origin):
    row = db.one("SELECT acked_seq FROM acked WHERE origin = ?", (origin,))
    return row["acked_seq"] if row else 0


def agent_events(db, agent_id, limit=200):
    """The latest agent-level events of an agent (deployment-less), in seq order."""
    rows = db.query("SELECT data FROM events WHERE origin = ? AND deployment_id = '' "
                    "ORDER BY seq DESC LIMIT ?", (agent_id, limit))
    return [json.loads(r["data"]) for r in reversed(rows)]


def list_events(db, dep_id, after_id=0):
    """[(row id, event)] stored for a deployment with row id > after_id, in seq order."""
    rows = db.query("SELECT id, data FROM events WHERE deployment_id = ? AND id > ? "
                    "ORDER BY seq IS NULL, seq, id", (dep_id, after_id))
    return [(r["id"], json.loads(r["data"])) for r in rows]
