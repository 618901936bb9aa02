"""Constellation deployments (CONSTELLATION.md "Fleet and plan"): one parent
per constellation plan, one child deployment per satellite the plan uses.

    parent  kind 'parent', satellite_id '' (no agent ever polls it), mode live
    child   kind 'child', parent_id = the parent, satellite_id = its satellite

Each agent polls its own child as for any deployment; its WorkloadSpec
carries the whole DAG (the job) and the plan's `constellation` part: who
runs each step, its alternates, the ISL route of each input from afar
(child_plan_data, compact: satellites as indices into the fleet). A child ends with `job.completed`, `job.failed`, or
`constellation.satellite_complete` (its share of the DAG is done).

The parent follows its children (parent_status): pending until one is
dispatched, running while any is unfinished; once all are finished,
`completed` when all completed, `failed` when none did, `partial` otherwise.
A closer silent past the job's deadline, whose substitute ended the job at
a higher epoch (a failover with reason "deadline"), has its child finished
`failed` with it (_fence_closers).
Cancelling the parent cancels it and its unfinished children in one
transaction (deployments.cancel).

The ground's end (end_overdue; docs/constellation.md "The ground's end"): a
parent still unfinished once the fleet's clock (fleet_clock) is past the
job's deadline (the plan's start + horizon: every child's `until`) by the
grace (GROUND_END_GRACE_S) is ended by the Console, once, in one
transaction: each child that never ended gets the Console's own record,
job.failed {status: "failed", reason: "no word from satellite ... by the
job's deadline ..."} with agent_id "ground" (origin "ground:<child>", seq
1: an id and an origin no agent can have, auth.RESERVED_AGENT_IDS), and is
failed; the parent follows (partial, or failed when no child completed).
Checked when a parent is read (its summary, its events, each round of its
stream) and by the Console's sweep (app.py, every GROUND_END_SWEEP_S).
Whatever the satellite reports later is stored once and changes no status;
a job end among it is marked `counted: false` in the merged stream.

Its event stream is the merge of its children's (merged_events): every
child event once, each with its `satellite_id`, ordered by spacecraft
timestamp, then satellite, then seq.

Exactly-once completion across satellites (step_view): the events
constellation.step_started / step_completed / failover_acknowledged carry
the step's ownership epoch in `payload.epoch` (an integer >= 1; the first
owner has 1, every failover or takeover adds one; absent = 1). A step's
completion counts only from the highest epoch seen for that step; a completion from a
lower epoch (or a second one of that epoch) is kept as an event, marked
`counted: false` in the merged stream, and counts for nothing; the first
completion of the highest epoch, in merge order, is the one that counts.
"""
import json
import time
import uuid

import timeutil

from . import eventcheck as event_catalog
from .db import dumps, lock_writes, now_iso

FINISHED = ("completed", "failed", "cancelled")
# The ground's end (docs/constellation.md "The ground's end").
GROUND_END_GRACE_S = 7200.0  # s past the job's deadline before the Console ends a parent's
#   children that never ended (>= 0; `umbra console --ground-end-grace`). Past the deadline
#   every member ends its part by its own clock and reports it at its next ground pass: the
#   grace must exceed the longest gap between a member's passes (train-4 with the default
#   stations: 1.6 h), or the ground would fail a part whose end is on its way down.
GROUND_END_SWEEP_S = 60.0    # wall s between the Console's sweeps of unfinished parents
GROUND = "ground"            # agent_id of the Console's own records (auth.RESERVED_AGENT_IDS)
EPOCH_TYPES = event_catalog.EPOCH_TYPES
# a child's share of the DAG is done (CONSTELLATION.md: "a satellite whose
# assigned steps are all done or handed off emits constellation.satellite_complete")
CHILD_TERMINAL = {"constellation.satellite_complete": "completed"}


def is_constellation_plan(plan):
    return isinstance(plan, dict) and plan.get("kind") == "constellation"


def save_plan(db, plan):
    """Store a constellation plan (its id is plan["id"]); satellite_id ''."""
    with db.write() as c:
        c.execute("INSERT INTO plans (id, satellite_id, created_at, data) VALUES (?, '', ?, ?)",
                  (plan["id"], plan["created_at"], dumps(plan)))


def satellites_used(plan):
    """The plan's satellites that may run a step -- its owner or one of its
    alternates (an alternate takes a step over in orbit: it needs the job
    too) -- in fleet order."""
    used = set(s["satellite"] for s in plan["steps"])
    for s in plan["steps"]:
        used.update(s.get("alternates") or ())
    return [sat for sat in plan["fleet"] if sat in used]


def create(db, plan, mode="live", speed_multiplier=0.0):
    """The parent and its children, in one transaction -> (parent id, {satellite: child id}).
    mode 'simulated': no agent polls them; the Console writes each child's
    share of the plan's predicted fleet stream (simulate.py), paced by
    speed_multiplier."""
    now = now_iso()
    parent = "dep-" + uuid.uuid4().hex[:16]
    children = {}
    speed = speed_multiplier if mode == "simulated" else 0
    with db.write() as c:
        c.execute("INSERT INTO deployments (id, plan_id, satellite_id, mode, speed_multiplier, "
                  "status, created_at, updated_at, kind) VALUES (?, ?, '', ?, ?, "
                  "'pending', ?, ?, 'parent')", (parent, plan["id"], mode, speed, now, now))
        for sat in satellites_used(plan):
            child = "dep-" + uuid.uuid4().hex[:16]
            c.execute("INSERT INTO deployments (id, plan_id, satellite_id, mode, "
                      "speed_multiplier, status, created_at, updated_at, kind, parent_id) "
                      "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, 'child', ?)",
                      (child, plan["id"], sat, mode, speed, now, now, parent))
            children[sat] = child
    return parent, children


def predicted_share(plan, dep):
    """What a child's satellite is predicted to emit (the plan's fleet stream,
    its events only, in order, without satellite_id: as its agent sends
    them), and the fleet stream's first timestamp (or None)."""
    evs = plan.get("events") or []
    mine = [dict((k, v) for k, v in e.items() if k != "satellite_id")
            for e in evs if e.get("satellite_id") == dep["satellite_id"]]
    return mine, (evs[0]["timestamp"] if evs else None)


def add_to_catalog(db, plan):
    """The satellites the plan uses that the catalog lacks, added from the
    fleet (an agent key is bound to a catalog satellite). Returns their ids."""
    from . import catalog
    added = []
    by_id = dict((s["satellite_id"], s) for s in plan.get("fleet_doc") or ())
    for sat in satellites_used(plan):
        entry = by_id.get(sat)
        if entry is None or catalog.get(db, sat) is not None:
            continue
        orb = dict(entry["orbit"])
        tle = orb.get("tle")
        if isinstance(tle, str):
            tle = tle.strip().splitlines()
        if not tle and plan.get("epoch"):
            orb.setdefault("epoch", plan["epoch"])
        try:
            catalog.add(db, sat, entry.get("name") or sat, tle=tle or None,
                        elements=None if tle else orb, bus=entry.get("bus"))
        except KeyError:
            continue  # added meanwhile
        added.append(sat)
    return added


def children(db_or_conn, parent_id):
    return [dict(r) for r in db_or_conn.execute(
        "SELECT * FROM deployments WHERE parent_id = ? ORDER BY satellite_id, id",
        (parent_id,)).fetchall()]


def parent_status(statuses):
    """The parent's status from its children's."""
    if not statuses:
        return "failed"
    if all(s in FINISHED for s in statuses):
        done = sum(1 for s in statuses if s == "completed")
        if done == len(statuses):
            return "completed"
        return "failed" if done == 0 else "partial"
    if any(s != "pending" for s in statuses):
        return "running" if any(s not in ("pending", "dispatched") for s in statuses) \
            else "dispatched"
    return "pending"


PARENT_FINISHED = ("completed", "failed", "partial", "cancelled")


def refresh_parent(c, parent_id, now=None):
    """Inside a write transaction: set the parent's status from its children."""
    row = c.execute("SELECT status FROM deployments WHERE id = ?", (parent_id,)).fetchone()
    if row is None or row["status"] == "cancelled":
        return
    kids = children(c, parent_id)
    if _fence_closers(c, kids, now):
        kids = children(c, parent_id)
    status = parent_status([ch["status"] for ch in kids])
    if status != row["status"]:
        now = now or now_iso()
        c.execute("UPDATE deployments SET status = ?, updated_at = ?, finished_at = ? "
                  "WHERE id = ?", (status, now, now if status in PARENT_FINISHED else None,
                                   parent_id))


def _fence_closers(c, kids, now):
    """A closer silent past the job's deadline is superseded by its substitute
    (docs/constellation.md "The deadline"): a child whose job ended failed after
    its constellation.failover {reason: "deadline", from_satellite: X} holds the
    last step at a higher epoch, so X's child, still unfinished (X lost, or cut
    off), is finished too -- failed, as the highest epoch says. True when one was."""
    open_by_sat = dict((ch["satellite_id"], ch) for ch in kids if ch["status"] not in FINISHED)
    if not open_by_sat or not any(ch["status"] == "failed" for ch in kids):
        return False
    fenced = False
    for ch in kids:
        if ch["status"] != "failed":
            continue
        for (data,) in c.execute("SELECT data FROM events WHERE deployment_id = ? AND "
                                 "type = 'constellation.failover'", (ch["id"],)):
            p = json.loads(data).get("payload") or {}
            gone = open_by_sat.pop(p.get("from_satellite"), None) \
                if p.get("reason") == "deadline" else None
            if gone is not None:
                now = now or now_iso()
                c.execute("UPDATE deployments SET status = 'failed', updated_at = ?, "
                          "finished_at = ? WHERE id = ?", (now, now, gone["id"]))
                fenced = True
    return fenced


# ---------------------------------------------------------------- the ground's end

def _number(v):
    """A JSON number json_extract read: PostgreSQL's (db.PG_FUNCTIONS) gives its text."""
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            pass
    return v


def deadline(plan):
    """The job's deadline (Unix s: the plan's start + horizon, every child's
    `until`), or None for a plan without one."""
    start, horizon = plan.get("start"), plan.get("horizon_s")
    if isinstance(start, (int, float)) and isinstance(horizon, (int, float)):
        return int(start + horizon)
    return None


def ground_reason(satellite_id, until, grace_s):
    """Why the ground ended a child: the same words on the Console and in the campaign."""
    return ("no word from satellite %s by the job's deadline %s (+%d s for its last "
            "downlink): the Console ended its part" % (satellite_id, timeutil.iso_utc(until),
                                                       int(grace_s)))


def fleet_clock(c, parent, kids, wall_now):
    """The fleet's time now as the ground knows it (Unix s), or None before a
    word from it: the latest spacecraft time one of the parent's satellites
    reported -- the newest event stored in its child, the latest telemetry of
    the agent its child was dispatched to (received since the parent was made)
    -- advanced by the wall time since it arrived. A satellite in orbit keeps
    the ground's time (time_sync, at its passes): this is the Console's own
    clock then. A simulated fleet (the fleet demo, the campaign's nodes, a
    simulated deployment) keeps its own: this is the simulated time it last
    reported, later by at most the wall time since (never ahead of the fleet
    when the simulation runs faster than the wall)."""
    best = None

    def seen(stamp, received):
        nonlocal best
        try:
            t = timeutil.parse_iso_ms(stamp)
            t = t[0] + t[1] / 1000.0 + max(0.0, wall_now - timeutil.parse_iso(received))
        except (TypeError, ValueError):
            return
        best = t if best is None else max(best, t)

    for ch in kids:
        row = c.execute("SELECT data, received_at FROM events WHERE id = (SELECT MAX(id) "
                        "FROM events WHERE deployment_id = ?)", (ch["id"],)).fetchone()
        if row is not None:
            seen(json.loads(row["data"]).get("timestamp"), row["received_at"])
    for agent_id in sorted(set(ch["agent_id"] for ch in kids if ch["agent_id"])):
        row = c.execute("SELECT telemetry, last_heartbeat_at FROM agents WHERE agent_id = ?",
                        (agent_id,)).fetchone()
        if row is not None and row["telemetry"] and row["last_heartbeat_at"] and \
                row["last_heartbeat_at"] >= parent["created_at"]:
            seen(json.loads(row["telemetry"]).get("timestamp"), row["last_heartbeat_at"])
    return best


def end_overdue(db, parent_id, grace_s=GROUND_END_GRACE_S, wall_now=None):
    """End the parent from the ground if it is overdue (module docstring): its
    children that never ended failed, each with the Console's record, the parent
    refreshed -- in one transaction, once. Returns the child ids it ended ([]:
    none; not a parent, finished, no deadline, or not overdue yet)."""
    row = db.one("SELECT * FROM deployments WHERE id = ?", (parent_id,))
    if row is None or row["kind"] != "parent" or row["status"] in PARENT_FINISHED:
        return []
    # the plan's start and horizon only (SQLite reads them out of its JSON: the plan holds
    # the predicted fleet stream too, too much to parse at every round of a stream)
    plan = db.one("SELECT id, json_extract(data, '$.start') AS start, "
                  "json_extract(data, '$.horizon_s') AS horizon_s FROM plans WHERE id = ?",
                  (row["plan_id"],))
    if plan is not None:
        plan = {"id": plan["id"], "start": _number(plan["start"]),
                "horizon_s": _number(plan["horizon_s"])}
    until = deadline(plan) if plan is not None else None
    if until is None:
        return []
    wall_now = time.time() if wall_now is None else wall_now
    kids = children(db.conn(), parent_id)
    if all(ch["status"] in FINISHED for ch in kids):
        return []
    now = fleet_clock(db.conn(), row, kids, wall_now)  # a read first: most checks end here
    if now is None or now < until + grace_s:
        return []
    ended = []
    with db.write() as c:  # again inside the transaction: another thread may have ended it
        lock_writes(c)  # it stores events (db.PgDatabase)
        parent = c.execute("SELECT * FROM deployments WHERE id = ?", (parent_id,)).fetchone()
        if parent["status"] in PARENT_FINISHED:
            return []
        stamp = now_iso(wall_now)
        for ch in children(c, parent_id):
            if ch["status"] in FINISHED:
                continue
            record = {"type": "job.failed", "timestamp": timeutil.iso_utc(int(now)),
                      "job_id": plan["id"], "step_id": None, "seq": 1,
                      "payload": {"total_duration_s": round(now - plan["start"], 3),
                                  "status": "failed",
                                  "reason": ground_reason(ch["satellite_id"], until, grace_s)},
                      "agent_id": GROUND, "deployment_id": ch["id"]}
            cur = c.execute("INSERT INTO events (deployment_id, origin, seq, type, data, "
                            "received_at) VALUES (?, ?, 1, 'job.failed', ?, ?) "
                            "ON CONFLICT(origin, seq) DO NOTHING",
                            (ch["id"], GROUND + ":" + ch["id"], dumps(record), stamp))
            c.execute("UPDATE deployments SET status = 'failed', "
                      "updated_at = ?, finished_at = ? WHERE id = ?", (stamp, stamp, ch["id"]))
            if cur.rowcount:
                ended.append(ch["id"])
        refresh_parent(c, parent_id, stamp)
    return ended


def sweep(db, grace_s=GROUND_END_GRACE_S, wall_now=None):
    """end_overdue for every unfinished parent (the Console's periodic sweep):
    {parent id: [child ids ended]} of those it ended."""
    out = {}
    for r in db.query("SELECT id FROM deployments WHERE kind = 'parent' AND status NOT IN "
                      "(%s)" % ", ".join("?" * len(PARENT_FINISHED)), PARENT_FINISHED):
        ended = end_overdue(db, r["id"], grace_s, wall_now)
        if ended:
            out[r["id"]] = ended
    return out


# ---------------------------------------------------------------- the merged stream

def _order_key(ev):
    try:
        t, ms = timeutil.parse_iso_ms(ev.get("timestamp"))
    except ValueError:
        t, ms = 2 ** 62, 0
    seq = ev.get("seq")
    return (t, ms, ev["satellite_id"], seq if isinstance(seq, int) else 2 ** 62)


def merged_rows(db, parent_id, after_id=0):
    """[(row id, event)] of every child of the parent with row id > after_id,
    each event with its satellite_id, in merge order."""
    rows = db.query(
        "SELECT e.id, e.data, d.satellite_id FROM events e JOIN deployments d "
        "ON d.id = e.deployment_id WHERE d.parent_id = ? AND e.id > ?", (parent_id, after_id))
    out = []
    for r in rows:
        ev = json.loads(r["data"])
        ev["satellite_id"] = r["satellite_id"]
        out.append((r["id"], ev))
    out.sort(key=lambda x: _order_key(x[1]))
    return out


def epoch_of(ev):
    e = (ev.get("payload") or {}).get("epoch")
    return e if isinstance(e, int) and not isinstance(e, bool) and e >= 1 else 1


def step_view(plan, evs):
    """[{step_id, satellite (planned), alternates, epoch (highest seen), owner
    (its satellite), status, completed_by {satellite_id, epoch, seq, timestamp}
    or None, ignored_completions [...]}] from the merged events, each
    step_completed marked `counted`, and a job end that a satellite reported
    on a child the ground had ended marked `counted: false`."""
    steps = {}
    for s in plan["steps"]:
        steps[s["step_id"]] = {"step_id": s["step_id"], "satellite": s["satellite"],
                               "alternates": list(s.get("alternates") or ()), "epoch": 0,
                               "owner": None, "status": "pending", "completed_by": None,
                               "ignored_completions": [], "_done": []}
    # the highest epoch seen, by every event that carries one (in any order)
    for ev in evs:
        st = steps.get(_step_of(ev))
        if st is None or ev.get("type") not in EPOCH_TYPES:
            continue
        e = epoch_of(ev)
        if e > st["epoch"]:
            st["epoch"], st["owner"] = e, _owner(ev)
        elif e == st["epoch"] and ev.get("type") == "constellation.failover_acknowledged":
            st["owner"] = _owner(ev)
        if st["status"] == "pending":
            st["status"] = "executing"
        if ev["type"] == "constellation.step_completed":
            st["_done"].append(ev)
    counted = set()
    for st in steps.values():
        for ev in st.pop("_done"):  # received order within a stream position
            ref = {"satellite_id": ev["satellite_id"], "epoch": epoch_of(ev),
                   "seq": ev.get("seq"), "timestamp": ev.get("timestamp")}
            if st["completed_by"] is None and ref["epoch"] == st["epoch"]:
                st["completed_by"] = ref
                st["status"] = "completed"
                counted.add(id(ev))
            else:
                st["ignored_completions"].append(ref)
        if st["status"] != "completed" and st["owner"] is not None \
                and st["owner"] != st["satellite"]:
            st["status"] = "failed_over"
    # a child the ground ended: a job end its satellite reports afterwards does not count
    grounded = set(ev.get("deployment_id") for ev in evs if ev.get("agent_id") == GROUND)
    for ev in evs:
        if ev.get("type") == "constellation.step_completed":
            ev["counted"] = id(ev) in counted
        elif ev.get("type") in event_catalog.TERMINAL and ev.get("agent_id") != GROUND and \
                ev.get("deployment_id") in grounded:
            ev["counted"] = False
    return [steps[s["step_id"]] for s in plan["steps"]]


def _step_of(ev):
    return ev.get("step_id") or (ev.get("payload") or {}).get("step_id")


def _owner(ev):
    p = ev.get("payload") or {}
    if ev.get("type") == "constellation.failover_acknowledged":
        return p.get("to_satellite") or ev["satellite_id"]
    return p.get("satellite_id") or ev["satellite_id"]


def summary(db, dep, plan):
    """GET /api/deployments/{parent}: the deployment row, its children (one the
    ground ended with `ended_by: "ground"` and its `reason`), the job's
    `deadline`, counts, and the step view."""
    d = dict(dep)
    d.pop("cancel_pending", None)
    kids = children(db.conn(), dep["id"])
    evs = [e for _, e in merged_rows(db, dep["id"])]
    steps = step_view(plan, evs)
    d["children"] = [{"deployment_id": ch["id"], "satellite_id": ch["satellite_id"],
                      "status": ch["status"], "agent_id": ch["agent_id"]} for ch in kids]
    grounded = dict((e["deployment_id"], e) for e in evs if e.get("agent_id") == GROUND)
    for ch in d["children"]:  # the ground's end: who ended it, and why
        if ch["deployment_id"] in grounded:
            ch["ended_by"] = GROUND
            ch["reason"] = grounded[ch["deployment_id"]]["payload"]["reason"]
    until = deadline(plan)
    d["deadline"] = timeutil.iso_utc(until) if until is not None else None
    d["events_count"] = len(evs)
    d["last_event_type"] = evs[-1]["type"] if evs else None
    d["steps_total"] = len(plan["steps"])
    d["steps_completed"] = sum(1 for s in steps if s["status"] == "completed")
    d["job_name"] = (plan.get("job") or {}).get("name")
    d["steps"] = steps
    return d


# ---------------------------------------------------------------- the child's workload

def child_plan_data(plan, satellite_id, parent_id):
    """What a child's agent gets as plan_data: the whole DAG (the job) and the
    plan's constellation part, compact for a board's heap (satellites as
    indices into `fleet`: small ints cost a MicroPython heap nothing, a
    repeated id string costs every time; 8.9 KB parsed for 20 steps, 20.8 KB
    as dicts of ids -- docs/console.md):

        {"parent_id", "satellite_id", "fleet": [satellite id...],
         "steps": [[step_id, owner, [alternates...], {input step: [route...]}?]...],
         "until": the job's deadline (Unix s: the plan's start + horizon)}

    one entry per step in the plan's (topological) order; owner, alternates
    and every route hop are fleet indices; the routes object, present when
    an input comes from another satellite, gives that input's ISL path from
    its producer to the owner."""
    fleet = list(plan["fleet"])
    ix = dict((sat, i) for i, sat in enumerate(fleet))
    steps = []
    for s in plan["steps"]:
        entry = [s["step_id"], ix[s["satellite"]], [ix[a] for a in s.get("alternates") or ()]]
        route = s.get("isl_route")
        if route:
            if isinstance(route, list):  # one input from afar: whose is it?
                far = [d for d in s["depends_on"] if _satellite_of(plan, d) != s["satellite"]]
                route = {far[0]: route} if far else {}
            entry.append(dict((inp, [ix[x] for x in path]) for inp, path in route.items()))
        steps.append(entry)
    part = {"parent_id": parent_id, "satellite_id": satellite_id, "fleet": fleet,
            "steps": steps}
    until = deadline(plan)
    if until is not None:
        # the job's deadline (the plan's horizon: policy deadline_orbits): past it a
        # member fails what is left and ends its part (docs/constellation.md "The deadline")
        part["until"] = until
    return {"id": plan["id"], "job": plan["job"], "constellation": part}


def _satellite_of(plan, step_id):
    for s in plan["steps"]:
        if s["step_id"] == step_id:
            return s["satellite"]
    return None


def workload_spec(plan, dep):
    """The WorkloadSpec (unsigned) of a child: plan_data as child_plan_data;
    no predicted events (the fleet's prediction stays on the ground, for
    plan versus actual: a board has no use for it, and its heap no room)."""
    return {"plan_id": plan["id"], "deployment_id": dep["id"],
            "satellite_id": dep["satellite_id"],
            "plan_data": child_plan_data(plan, dep["satellite_id"], dep["parent_id"]),
            "events": []}
