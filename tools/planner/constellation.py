"""Constellation planning (CONSTELLATION.md "Fleet and plan"): one DAG across
a fleet. Every step gets a satellite and an ordered list of alternates;
every edge whose ends sit on different satellites gets the ISL route of
earliest arrival over the fleet's contact plan (sim/contactplan.py,
sim/islroute.py).

    plan = make_constellation_plan(fleet_doc, job, start, hours=None)

The schedule model (what the assignment minimises): a satellite runs one
step at a time, in the job's topological order; a standard step computes
while its satellite is sunlit (the agent pauses it in eclipse), at full
capacity; a step starts when its satellite is free and every input has
arrived (at once from the same satellite; over the ISL route of earliest
arrival, store and forward, from another). The span is the last finish
minus the start. Orbital primitives (eclipse, window, pass steps) are
modelled by their compute time the same way.

The assignment: list scheduling (each step, in topological order, on the
satellite where it would finish first) and every step on one satellite are
the starts; from the best two, local search while the span shortens: move a step (alone, or with its descendants that share its
satellite) to another satellite, swap two steps' satellites. `tests/test_
constellation_plan.py` compares it with exhaustive search on a seeded set
of small DAGs. Objectives: `balanced` and `min_latency` minimise the span;
`max_reliability` minimises the span plus a penalty for steps on satellites
with little energy margin (below), and ranks alternates by margin.

metrics.reliability: the probability that every step completes, when each
satellite fails during a step with probability 1 - exp(-duration / MTBF)
(MTBF = 30 days, shortened in proportion to how little energy margin its
bus has: initial state of charge above critical), and a step survives if
its satellite or any of its alternates survives (the failover takes it).

A step may ask for a role (`role: "compute" | "aggregator"`): it goes only
to a satellite with that role (none in the fleet: 422 naming the step).
A cycle is a 422 too (a valid job no fleet can run); so is an input with no
ISL route before the deadline (naming the step, its input and the two
satellites). The plan carries each satellite's `lanes` entry: its eclipses
and ISL link windows (what `umbra plot` draws, tools/fleetplot.py).

The plan's `events` is the predicted fleet stream (predicted_stream): the
plan flown by the agents of every satellite that may run a step, in the
plan's own fleet world (sim/fleet.py, whose contact plan and router the
assignment used), tools/planner/fleetforecast.py. The Console deploys a
plan as a parent with one child per satellite (tools/console/constellations.py).
"""
import math

import fleet
import fleetfile
import islroute
import orbitscan
from contactplan import compute as contact_plan, sun_direction

from . import MAX_HOURS, PlanError, normalise_job

SAMPLE_S = 60              # the sunlit/eclipse grid of each satellite
MTBF_S = 30 * 86400.0      # a healthy satellite's mean time between failures
ALTERNATES = 3             # alternates listed per step
MAX_PASSES = 8             # local-search rounds
RELIABILITY_WEIGHT_S = 600.0  # max_reliability: seconds of span one unit of lost margin costs a step
STREAM_FIELDS = ("type", "timestamp", "satellite_id", "job_id", "step_id", "payload")


class _Model:
    """A fleet over a horizon: sunlit intervals per satellite, the router,
    and the schedule of an assignment."""

    def __init__(self, sats, t0, t1, world=None):
        """world: a sim/fleet.py FleetWorld over [t0, t1]: its contact plan and router."""
        self.ids = [s["satellite_id"] for s in sats]
        self.t0, self.t1 = t0, t1
        samples = None
        if world is not None:
            self.plan, self.router = world.plan, world.router
            samples = world.samples
        else:
            samples = {}
            self.plan = contact_plan([(s["satellite_id"], s["orbit"]) for s in sats], t0, t1,
                                     keep=samples)
            self.router = islroute.Router(self.plan)
        self.sunlit = {}
        suns = []  # the Sun's direction at each grid time: the same for every satellite
        for s in sats:
            self.sunlit[s["satellite_id"]] = _sunlit(s["orbit"], t0, t1, suns, samples and (
                samples["grid"], samples["pos"][s["satellite_id"]]))
        self._routes = {}

    def route(self, a, b, t, mb):
        key = (a, b, int(t), mb)
        if key not in self._routes:
            self._routes[key] = self.router.route(a, b, t, max(mb, 1e-6))
        return self._routes[key]

    def finish(self, sat, start, compute_s):
        """When `compute_s` of sunlit time from `start` on `sat` is done (None: not in the horizon)."""
        left = compute_s
        for a, b in self.sunlit[sat]:
            if b <= start:
                continue
            a = max(a, start)
            if b - a >= left:
                return a + left
            left -= b - a
        return None

    def schedule(self, order, by_id, assign, base=None):
        """{step: (sat, start, finish)} and the span (inf when infeasible).
        base: (the satellites of another assignment in order, its schedule):
        the steps before the first that differs are placed as there (a step's
        placing depends only on the steps before it and its own satellite)."""
        free = dict((sid, self.t0) for sid in self.ids)
        done = {}
        j = 0
        if base is not None:
            sats, prior = base
            n = len(order)
            while j < n and assign[order[j]] == sats[j] and order[j] in prior:
                p = done[order[j]] = prior[order[j]]
                free[p[0]] = p[2]
                j += 1
        for k in range(j, len(order)):
            sid = order[k]
            sat = assign[sid]
            placed = self.place(by_id, sid, sat, free, done)
            if placed is None:
                return done, math.inf
            free[sat] = placed[1]
            done[sid] = (sat, placed[0], placed[1])
        return done, max(f for _, _, f in done.values()) - self.t0

    def place(self, by_id, sid, sat, free, done):
        """(start, finish) of step sid on sat after the steps in `done`, with
        each satellite free from `free` (None: its input cannot arrive, or
        it cannot finish, within the horizon)."""
        step = by_id[sid]
        ready = self.t0
        for d in step["depends_on"]:
            dsat, _, dfin = done[d]
            if dsat == sat:
                arrive = dfin
            else:
                r = self.route(dsat, sat, dfin, by_id[d].get("output_mb") or 0.0)
                if r is None:
                    return None
                arrive = r["arrival"]
            ready = max(ready, arrive)
        start = max(free[sat], ready)
        fin = self.finish(sat, start, _compute_s(step))
        return None if fin is None else (start, fin)


def _compute_s(step):
    c = step.get("compute_s") or 0.0
    for t in (step.get("quality_tiers") or {}).values():
        if isinstance(t, dict):
            c = max(c, t.get("compute_s") or 0.0)
    return float(c)


def _sunlit(orb, t0, t1, suns, sampled=None):
    """[(start, end)] the satellite is in sunlight, on a SAMPLE_S grid; suns:
    the Sun's direction at each grid time, filled by the first caller;
    sampled: (times, positions) of the contact plan's search, taken where
    its time is the grid's."""
    out = []
    t = t0
    lit_since = None
    k = 0
    grid, pos = sampled or ((), ())
    while t <= t1:
        if k == len(suns):
            suns.append(sun_direction(t))
        p = pos[k] if k < len(grid) and grid[k] == t else orb.position(t)
        lit = orbitscan.shadow_margin_km(p, suns[k]) >= 0
        k += 1
        if lit and lit_since is None:
            lit_since = t
        elif not lit and lit_since is not None:
            out.append((lit_since, t))
            lit_since = None
        t += SAMPLE_S
    if lit_since is not None:
        out.append((lit_since, t1))
    return out


def _aggregator_steps(steps, order):
    """Sinks that gather two inputs or more: they go to an aggregator."""
    used = set()
    for s in steps:
        used.update(s["depends_on"])
    return set(s["id"] for s in steps if s["id"] not in used and len(s["depends_on"]) >= 2)


def _margin(sat):
    bus = sat.get("bus") or {}
    soc, critical = bus.get("initial_soc", 0.8), bus.get("critical_soc", 0.10)
    return max(0.0, min(1.0, (soc - critical) / max(1e-9, 1.0 - critical)))


def assign(model, order, by_id, candidates, penalty=None):
    """List scheduling, then local search; returns (assignment, span)."""
    penalty = penalty or (lambda sid, sat: 0.0)
    costs = {}  # the local search comes back to assignments it has costed

    ref = []    # (satellites in order, schedule, cost) of the cheapest costed yet: the
                # local search's moves start from it, so their schedules share its first steps

    def cost(a):
        key = tuple([a[sid] for sid in order])
        c = costs.get(key)
        if c is None:
            done, span = model.schedule(order, by_id, a, ref[0][:2] if ref else None)
            c = costs[key] = span + sum(penalty(sid, a[sid]) for sid in order)
            if not ref or c < ref[0][2]:
                ref[:] = [(key, done, c)]
        return c

    # list scheduling: each step where it finishes first, after those placed
    # before it (None once one of them could not be placed)
    a = {}
    free = dict((sat, model.t0) for sat in model.ids)
    done = {}
    for sid in order:
        best = None
        for k, sat in enumerate(candidates[sid]):
            placed = model.place(by_id, sid, sat, free, done) if done is not None else None
            fin = placed[1] if placed is not None else math.inf
            key = (fin + penalty(sid, sat), k)
            if best is None or key < best[0]:
                best = (key, sat, placed)
        a[sid] = best[1]
        if best[2] is None:
            done = None
        elif done is not None:
            free[a[sid]] = best[2][1]
            done[sid] = (a[sid], best[2][0], best[2][1])
    below = {}  # a step's descendants, in order
    for sid in order:
        below[sid] = [x for x in order if sid in _ancestors(by_id, x)]
    # starts: the list schedule, and every step on one satellite (no transfer
    # at all: often best for chains); the local search runs from the best two
    starts = [dict(a)]
    for sat in candidates[order[0]]:
        one = dict((sid, sat if sat in candidates[sid] else candidates[sid][0]) for sid in order)
        if one not in starts:
            starts.append(one)
    starts.sort(key=cost)
    best = None
    for start in starts[:2]:
        a = dict(start)
        c = _improve(a, order, by_id, candidates, cost, below)
        if best is None or c < best[0]:
            best = (c, dict(a))
    a = best[1]
    return a, model.schedule(order, by_id, a)[1]


def _improve(a, order, by_id, candidates, cost, below):
    """Local search on `a` (changed in place) while the cost falls; the cost."""
    best_cost = cost(a)
    for _ in range(MAX_PASSES):
        better = False
        # moves: a step, or a step with those of its descendants on its satellite,
        # to another satellite; swaps: two steps exchange satellites
        for sid in order:
            for sat in candidates[sid]:
                if sat == a[sid]:
                    continue
                with_below = [sid] + [x for x in below[sid] if a[x] == a[sid]
                                      and sat in candidates[x]]
                for group in ([sid], with_below) if len(with_below) > 1 else ([sid],):
                    old = dict(a)
                    for x in group:
                        a[x] = sat
                    c = cost(a)
                    if c < best_cost - 1e-6:
                        best_cost, better = c, True
                        break
                    a.update(old)
        for i, x in enumerate(order):
            for y in order[i + 1:]:
                if a[x] == a[y] or a[y] not in candidates[x] or a[x] not in candidates[y]:
                    continue
                a[x], a[y] = a[y], a[x]
                c = cost(a)
                if c < best_cost - 1e-6:
                    best_cost, better = c, True
                else:
                    a[x], a[y] = a[y], a[x]
        if not better:
            break
    return best_cost


def _ancestors(by_id, sid, seen=None):
    seen = set() if seen is None else seen
    for d in by_id[sid]["depends_on"]:
        if d not in seen:
            seen.add(d)
            _ancestors(by_id, d, seen)
    return seen


def make_constellation_plan(fleet_doc, job, start, hours=None, plan_id="cplan-1", stream=True):
    """The plan; stream=False leaves out the predicted fleet stream (`events`
    empty: what the assignment alone costs)."""
    try:
        sats = fleetfile.load(fleet_doc)
    except fleetfile.FleetError as exc:
        raise PlanError(400, "fleet: %s" % exc)
    try:
        norm, order = normalise_job(job)
    except PlanError as exc:
        if exc.reason.startswith("dependency_cycle"):
            raise PlanError(422, exc.reason)  # a valid job that no fleet can run
        raise
    by_id = dict((s["id"], s) for s in norm["steps"])
    by_sat = dict((s["satellite_id"], s) for s in sats)
    period = sats[0]["orbit"].period_s
    policy = norm.get("policy") or {}
    objective = policy.get("objective") or "balanced"
    span_h = float(hours) if hours else 24.0
    if policy.get("deadline_orbits"):
        span_h = policy["deadline_orbits"] * period / 3600.0
    span_h = min(MAX_HOURS, span_h)
    t0 = float(start)
    t1 = t0 + span_h * 3600.0
    # the fleet world the forecast flies, over the plan's horizon: its contact
    # plan is the planner's too (computed once)
    world = fleet.FleetWorld(fleet_doc, start=t0, hours=span_h, keep_samples=True) if stream else None
    model = _Model(sats, t0, t1, world if world is not None and world.start == t0 else None)

    aggregators = [s["satellite_id"] for s in sats if s["role"] == "aggregator"]
    computers = [s["satellite_id"] for s in sats]
    agg_steps = _aggregator_steps(norm["steps"], order)
    candidates = {}
    for sid in order:
        role = by_id[sid].get("role")
        if role is not None:  # the step asks for a role: only satellites that have it
            if role not in fleetfile.ROLES:
                raise PlanError(400, "bad_field: step %r role must be one of %s"
                                % (sid, ", ".join(fleetfile.ROLES)))
            candidates[sid] = [s["satellite_id"] for s in sats if s["role"] == role]
            if not candidates[sid]:
                raise PlanError(422, "no satellite with role %r in the fleet for step %r"
                                % (role, sid))
        else:
            candidates[sid] = aggregators if (sid in agg_steps and aggregators) else computers

    penalty = None
    if objective == "max_reliability":
        def penalty(sid, sat):
            return RELIABILITY_WEIGHT_S * (1.0 - _margin(by_sat[sat]))
    a, span = assign(model, order, by_id, candidates, penalty)
    if span == math.inf:
        raise PlanError(422, _why_not(model, order, by_id, a))
    done, _ = model.schedule(order, by_id, a)

    steps, routing, transfers = [], [], 0
    for sid in order:
        step = by_id[sid]
        sat, st, fin = done[sid]
        alternates = _alternates(model, order, by_id, a, sid, candidates[sid], by_sat,
                                 objective)
        entry = {"step_id": sid, "satellite": sat, "alternates": alternates,
                 "depends_on": list(step["depends_on"]), "duration_s": round(fin - st, 1),
                 "start": round(st, 1), "finish": round(fin, 1)}
        routes = {}
        for d in step["depends_on"]:
            dsat, _, dfin = done[d]
            if dsat != sat:
                r = model.route(dsat, sat, dfin, by_id[d].get("output_mb") or 0.0)
                routes[d] = r["path"]
                transfers += 1
                for h in r["hops"]:
                    routing.append({"from": h["from"], "to": h["to"], "step_id": sid,
                                    "input": d, "latency_ms": round(h["latency_ms"], 3),
                                    "bandwidth_mbps": round(h["bandwidth_mbps"], 3),
                                    "depart": round(h["depart"], 1),
                                    "arrival": round(h["arrival"], 1)})
        if routes:
            # one input from afar: its path; several: the path of each, by input
            entry["isl_route"] = list(routes.values())[0] if len(routes) == 1 else routes
        steps.append(entry)
    metrics = {"critical_path_s": round(span, 1), "satellites_used": len(set(a.values())),
               "isl_transfers": transfers,
               "reliability": round(_reliability(steps, by_sat), 6),
               "objective": objective}
    plan = {"plan_id": plan_id, "fleet": [s["satellite_id"] for s in sats], "start": t0,
            "horizon_s": t1 - t0, "metrics": metrics, "steps": steps, "isl_routing": routing,
            "lanes": _lanes(model, sats), "events": []}
    if world is not None:
        plan["events"] = predicted_stream(world, plan, job)
    return plan


def predicted_stream(world, plan, job):
    """The fleet's predicted event stream: the plan flown by the agents of the
    satellites that may run a step (fleetforecast.py, nominal), merged in
    time order (timestamp, satellite, then each agent's own order), each
    event the envelope with its satellite_id. Same plan, same stream."""
    from . import fleetforecast
    out = fleetforecast.run(world, plan, job)
    return [dict([(k, e.get(k)) for k in STREAM_FIELDS]) for e in out.merged()]


def _lanes(model, sats):
    """Per satellite (fleet order): name, role, its eclipses and its ISL link
    windows [[start, end, peer]] over the horizon (Unix s; what the fleet
    picture draws)."""
    out = []
    for s in sats:
        sid = s["satellite_id"]
        dark, t = [], model.t0
        for a, b in model.sunlit[sid]:
            if a > t:
                dark.append([round(t), round(a)])
            t = b
        if t < model.t1:
            dark.append([round(t), round(model.t1)])
        links = [[round(w["start"]), round(w["end"]), w["b"] if w["a"] == sid else w["a"]]
                 for w in model.plan["windows"] if sid in (w["a"], w["b"])]
        out.append({"satellite_id": sid, "name": s["name"], "role": s["role"],
                    "eclipses": dark, "isl_windows": links})
    return out


def _alternates(model, order, by_id, a, sid, cands, by_sat, objective):
    """The other candidates that could take the step, best first: by the span
    with the step moved there (by energy margin first for max_reliability)."""
    keep = a[sid]
    ranked = []
    for sat in cands:
        if sat == keep:
            continue
        a[sid] = sat
        span = model.schedule(order, by_id, a)[1]
        if span < math.inf:
            key = (-_margin(by_sat[sat]), span) if objective == "max_reliability" else (span,)
            ranked.append((key, sat))
    a[sid] = keep
    ranked.sort()
    return [sat for _, sat in ranked[:ALTERNATES]]


def _reliability(steps, by_sat):
    p = 1.0
    for s in steps:
        fail = 1.0
        for sat in [s["satellite"]] + s["alternates"]:
            mtbf = MTBF_S * max(0.05, _margin(by_sat[sat]))
            fail *= 1.0 - math.exp(-max(s["duration_s"], 1.0) / mtbf)
        p *= 1.0 - fail
    return p


def _why_not(model, order, by_id, a):
    """The first step of the best assignment that cannot be done, and why."""
    done, _ = model.schedule(order, by_id, a)
    for sid in order:
        if sid in done:
            continue
        for d in by_id[sid]["depends_on"]:
            dsat = done[d][0] if d in done else None
            if dsat is not None and dsat != a[sid] and model.route(
                    dsat, a[sid], done[d][2], by_id[d].get("output_mb") or 0.0) is None:
                return ("no ISL route: step %r's input from %r (on %s) cannot reach %s within "
                        "the horizon" % (sid, d, dsat, a[sid]))
        return "deadline: step %r cannot finish within the horizon" % sid
    return "the job cannot be placed on this fleet"
