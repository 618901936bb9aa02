"""The orbital planner (STEPS.md "The plan"): ground software, run by the
Console (`/v1/plan`) and `umbra plan` under CPython.

    make_plan(satellite, job, start, hours=12, min_elevation_deg=5,
              plan_id="plan-1", created_at=None, stations=None) -> plan dict
    PlanError(status, reason): 400 invalid job (or cycle), 422 infeasible
    (the reason names the step and the constraint)

satellite: {id|satellite_id, name, tle: [line1, line2] | elements: {...},
bus?: {overrides of sim/models.BUS_DEFAULTS}, orbit?: catalog summary}.

How: the job is validated by firmware/workload.py (one set of rules with the
agent); the environment over the horizon comes from the world models in
sim/ (orbit windows, ground stations, bus, hazards); placement uses the
decision rules of planner_rules, which the agent shares; then the agent
itself -- the unchanged firmware -- runs the job in the forecast of that
environment (forecast.py), and its run is the predicted stream, the
schedule, the downlinks and the battery forecast. Nothing here re-implements
what a step does. docs/planner.md explains the rules and the event contract.
"""
import planner_rules as rules
import timeutil
import workload
from accept import HAZARD_SUMMARY

from . import forecast

VERSION = "1.0.0"
MAX_HOURS = 48.0
WINDOW_MARGIN_S = 600.0   # windows are computed this far past the horizon (for lookups at its end)
BUS_KEYS = ("battery_wh", "solar_w", "bus_load_w", "compute_w", "memory_mb", "storage_mb",
            "downlink_mbps")


class PlanError(Exception):
    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def normalise_job(job):
    """The job validated and normalised by workload.validate_job; PlanError(400)."""
    if not isinstance(job, dict):
        raise PlanError(400, "not_object: custom_job must be an object")
    steps = job.get("steps")
    if isinstance(steps, list):
        for i, s in enumerate(steps):
            if isinstance(s, dict) and s.get("type", "standard") == "standard" \
                    and s.get("compute_s") is None and s.get("duration_s") is None:
                raise PlanError(400, "missing_field: steps[%d].compute_s" % i)
    norm, reason = workload.validate_job(job)
    if reason:
        raise PlanError(400, reason)
    order, reason = workload.topo_order(norm["steps"])
    if reason:
        raise PlanError(400, reason)
    return norm, order


def orbit_of(satellite, start):
    """An Orbit from the satellite's TLE or Keplerian elements."""
    import orbit
    import orbitio
    try:
        if satellite.get("tle"):
            tle = satellite["tle"]
            el = orbit.parse_tle(tle[0], tle[1], satellite.get("name"))
        else:
            el = orbitio.keplerian_elements(satellite["elements"], default_epoch=start)
        return orbit.Orbit(el)
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(400, "satellite: %s" % exc)


def make_plan(satellite, job, start, hours=12, min_elevation_deg=5.0, plan_id="plan-1",
              created_at=None, stations=None, cfg=None):
    import hazards as hazardlib
    import models
    import orbitio
    import spacecraft
    import stations as stationlib

    norm, order = normalise_job(job)
    norm.setdefault("id", plan_id)
    start = float(start)
    orb = orbit_of(satellite, start)
    try:
        bus = models.bus_config(satellite.get("bus"))
    except ValueError as exc:
        raise PlanError(400, "satellite.bus: %s" % exc)
    summary = dict(satellite.get("orbit") or {})
    if not summary:
        summary = orbitio.summary(orb)
        summary["id"] = satellite.get("id") or satellite.get("satellite_id")
        summary["name"] = satellite.get("name")
        nid = summary.get("norad_id")
        if isinstance(nid, str) and nid.isdigit():
            summary["norad_id"] = int(nid)
    period_s = summary["period_min"] * 60.0 if summary.get("period_min") else orb.period_s

    # the horizon, stretched to cover the deadline (48 h at most)
    hours = float(hours)
    deadline_orbits = (norm.get("policy") or {}).get("deadline_orbits")
    end = start + hours * 3600.0
    if deadline_orbits:
        deadline_s = deadline_orbits * period_s
        hours = min(MAX_HOURS, max(hours, deadline_s / 3600.0))
        end = start + min(hours * 3600.0, deadline_s)
    horizon_end = start + hours * 3600.0

    if stations is None:
        stations = stationlib.default_stations()
    timeline = spacecraft.Timeline(orb, start, hours * 3600.0 + WINDOW_MARGIN_S, stations,
                                   min_elevation_deg)
    windows = timeline.windows

    # hazards over the horizon; a checkpoint before every SAA transit
    steps = norm["steps"]
    intervals = [s["checkpoint_interval_s"] for s in steps if s.get("checkpoint_interval_s")]
    eclipses = [(w["start"], min(w["end"], horizon_end)) for w in windows
                if w["kind"] == "eclipse" and w["start"] < horizon_end]
    hz = hazardlib.predict(orb, start, horizon_end, eclipses=eclipses,
                           checkpoint_interval_s=min(intervals) if intervals else 0)

    # placement, in topological order
    by_id = {}
    for s in steps:
        by_id[s["id"]] = s
    placements = {}
    decisions = []
    for sid in order:
        s = by_id[sid]
        produced = 0.0
        for d in s["depends_on"]:
            produced += rules.step_output_mb(by_id[d])
        loc, reason = rules.placement(s, bus, produced)
        placements[sid] = {"location": loc, "reason": reason}
        decisions.append({"step_id": sid, "location": loc, "reason": reason})

    # the plan as the agent is handed it, then the agent's own run of it
    shown = [orbitio.as_iso(_clip(w, horizon_end)) for w in windows if w["start"] < horizon_end]
    draft = {"id": plan_id, "version": VERSION, "job": norm, "placement_decisions": decisions,
             "plan": {"total_duration_s": 0, "windows_used": 0, "segments": 0},
             "orbital_environment": {"bus": dict((k, _num(bus[k])) for k in BUS_KEYS),
                                     "prediction_start": _iso(start),
                                     "windows": [orbitio.as_iso(w) for w in windows]},
             "hazards": {}}
    run = _forecast(draft, plan_id, str(summary.get("id") or "forecast"), orb, start, end,
                    satellite.get("bus"), stations, timeline, cfg)
    if run.failure is not None:
        if run.accepted_at is None:  # refused at its first poll (too big for it, ...)
            raise PlanError(422, "the agent refuses the job: %s" % run.failure)
        raise PlanError(422, run.failure)
    if run.accepted_at is None:
        raise PlanError(422, "uplink: no ground contact within the horizon to receive the job")
    if run.ended_at is None:
        what = "the downlink" if run.running is None or run.running["id"] is None else \
            "step %r" % run.running["id"]
        if deadline_orbits:
            raise PlanError(422, "deadline: %s cannot finish within deadline_orbits %s (%d s "
                                 "after the plan start)"
                            % (what, _num(deadline_orbits), end - start))
        raise PlanError(422, "horizon: %s cannot finish within the %s h prediction horizon "
                             "(raise planning.prediction_hours, 48 at most)" % (what, _num(hours)))
    ev = run.events
    job_end = run.ended_at
    total_s = round(job_end - run.accepted_at, 1)

    # the schedule, the windows used and the downlinks, as the run went
    schedule, n_segments, used = _schedule(ev, order, by_id, placements, windows)
    for entry in schedule:
        if entry.get("tier") is not None:
            for d in decisions:
                if d["step_id"] == entry["step_id"]:
                    d["quality_tier"] = entry["tier"]
    transfers, downlink_total = _transfers(ev, windows, used)
    windows_used = len(used)

    # what the agent echoes from the plan it is handed: the final plan's values
    haz = _hazards_within(hz, start, max(job_end, start + 1), orbitio.iso)
    for e in ev:
        if e["type"] == "plan.created":
            e["payload"] = {"segments": n_segments, "windows_used": windows_used,
                            "total_duration_s": total_s}
        elif e["type"] == "checkpoint.predicted":
            for key in HAZARD_SUMMARY:
                e["payload"][key] = haz[key] if haz[key] is not None else \
                    (0 if key.endswith(("count", "fraction")) else None)

    ecl_s = 0.0
    pass_s = 0.0
    seen_stations = {}
    for w in windows:
        if w["start"] >= horizon_end:
            continue
        if w["kind"] == "eclipse":
            ecl_s += min(w["end"], horizon_end) - w["start"]
        elif w["kind"] == "contact":
            pass_s += min(w["end"], horizon_end) - w["start"]
            seen_stations[w["station"]] = True
    return {
        "id": plan_id,
        "created_at": _iso(created_at if created_at is not None else start),
        "version": VERSION,
        "satellite": _satellite_block(summary),
        "job": norm,
        "orbital_environment": {
            "prediction_start": _iso(start),
            "prediction_hours": round(hours, 3),
            "min_elevation_deg": min_elevation_deg,
            "eclipse_fraction": round(ecl_s / (hours * 3600.0), 4),
            "bus": dict((k, _num(bus[k])) for k in BUS_KEYS),
            "windows": shown,
            "summary": {"total_windows": len(shown),
                        "comms_windows": len([w for w in shown if w["kind"] == "contact"]),
                        "sunlit_windows": len([w for w in shown if w["kind"] == "sunlit"]),
                        "eclipse_windows": len([w for w in shown if w["kind"] == "eclipse"]),
                        "total_pass_time_s": round(pass_s, 1),
                        "ground_stations_visible": len(seen_stations)},
        },
        "placement_decisions": decisions,
        "schedule": schedule,
        "transfer_schedule": {"transfers": [dict(x, start=_iso(x["start"]), end=_iso(x["end"]))
                                            for x in transfers],
                              "total_downlink_mb": downlink_total, "passes_used": len(transfers),
                              "total_transfer_time_s": round(sum(x["end"] - x["start"]
                                                                 for x in transfers), 1)},
        "hazards": haz,
        "plan": {"total_duration_s": total_s, "windows_used": windows_used,
                 "segments": n_segments, "status": "scheduled"},
        "forecast": {"start": _iso(start), "columns": ["t_s", "battery_percent", "temperature_c"],
                     "samples": run.samples},
        "events": ev,
    }


# What a compact WorkloadSpec keeps of the plan: what the agent executes by
# (not the schedule: the agent decides at run time; 0.8 KB of JSON is ~3.5 KB
# of a board's heap while the workload is checked).
COMPACT_PLAN_KEYS = ("id", "version", "job", "placement_decisions", "plan")
SPARE_WINDOWS_S = 3 * 3600  # windows kept past the plan's end, for run-time deferrals


FIRST_WINDOWS_S = 8 * 3600  # the forecast first hands the agent at least this much of the windows
SPAN_PER_COMPUTE_S = 3      # ... or this many times the job's compute, if more (sunlit and
                            # eclipse waits, contacts: 50-step DAGs span ~2.3x, tools/benches/planner.py)
MAX_FORECAST_RUNS = 6       # the first guess, doubled, ..., the horizon, the least (3 h)


def _compute_s(steps):
    """The job's compute time, each step at its longest tier."""
    total = 0.0
    for s in steps:
        c = s.get("compute_s") or 0
        for t in (s.get("quality_tiers") or {}).values():
            if isinstance(t, dict):
                c = max(c, t.get("compute_s") or 0)
        total += c
    return total


def _forecast(draft, plan_id, satellite_id, orb, start, end, bus, stations, timeline, cfg):
    """The agent's run of the job, handed the spec the Console will hand a real
    agent. That spec carries the windows up to the job's end plus
    SPARE_WINDOWS_S, which only the run tells. The first run gets the windows
    of FIRST_WINDOWS_S or SPAN_PER_COMPUTE_S times the job's compute (with the
    spare), whichever is longer, and stops where they end; a run that ends
    within what it was handed is the forecast (the Console's spec is a cut of its spec after the job's end,
    which the agent never looked at: handed it, the agent emits the same
    stream, tests/test_planner_forecast.py); one that needed more is run
    again with more, up to the horizon. A job of standard steps gets no
    windows: one run. A spec too big for the agent's journal is tried again
    with the least the Console could hand out (3 h) before it counts as
    refused."""
    import spacecraft

    def spec_of(until):
        return workload_spec(draft, plan_id, forecast.DEPLOYMENT_ID, satellite_id,
                             windows_until=until)

    # a spec with windows says nothing of the orbit past its last one: a run
    # handed windows up to `until` stops there (if the job has not ended by
    # then, it is run again with more); a job of standard steps has none
    windowed = bool((spec_of(start)["plan_data"].get("orbital_environment") or {})
                    .get("windows") is not None)

    def attempt(spec):
        sat = spacecraft.SimulatedSatellite(satellite_id, orb, start, bus=bus, stations=stations,
                                            timeline=timeline)
        return forecast.run(spec, sat, start, min(end, until) if windowed else end, cfg)

    def refused(run):
        return run.accepted_at is None and (run.failure or "").startswith("too_large")

    horizon = end + SPARE_WINDOWS_S
    guess = SPAN_PER_COMPUTE_S * _compute_s(draft["job"]["steps"]) + SPARE_WINDOWS_S
    until = min(start + max(FIRST_WINDOWS_S, guess), horizon)
    spec = spec_of(until)
    run = attempt(spec)
    if refused(run) and spec_of(start + SPARE_WINDOWS_S) != spec:
        until = start + SPARE_WINDOWS_S
        spec = spec_of(until)
        run = attempt(spec)
    for _ in range(MAX_FORECAST_RUNS - 1):
        ended = run.ended_at is not None and run.failure is None
        if (ended and run.ended_at + SPARE_WINDOWS_S <= until) or refused(run) \
                or (not ended and until >= horizon):
            return run
        until = run.ended_at + SPARE_WINDOWS_S if ended else \
            min(start + 2 * (until - start), horizon)
        nxt = spec_of(until)
        if nxt == spec:
            return run
        spec = nxt
        run = attempt(spec)
    return run


def workload_spec(plan, plan_id, deployment_id, satellite_id, compact=True, windows_until=None):
    """The WorkloadSpec (PROTOCOL.md) of a plan, unsigned. plan_data is the plan
    without its events, which travel once, in `events`.

    compact (what our agents get; X-Umbra-Compact: 1): an agent on a
    microcontroller cannot hold a 48-hour plan in its heap; it gets the plan's
    job, placements and summary, the bus, the windows its primitives act on
    (the job's span of them, plus SPARE_WINDOWS_S; windows_until, epoch s,
    instead of the span's end when given), the hazard counts, and no predicted
    events. The forecast hands the agent this same spec."""
    plan = dict(plan)
    predicted = plan.pop("events", [])
    if compact:
        env = plan.get("orbital_environment") or {}
        slim = dict((k, plan[k]) for k in COMPACT_PLAN_KEYS if k in plan)
        slim["orbital_environment"] = {"bus": env.get("bus"),
                                       "prediction_start": env.get("prediction_start")}
        steps = (plan.get("job") or {}).get("steps") or []
        if any(st.get("type", "standard") != "standard" for st in steps):
            horizon = windows_until
            if horizon is None:
                end = _plan_end(plan)
                horizon = None if end is None else timeutil.parse_iso(end) + SPARE_WINDOWS_S
            slim["orbital_environment"]["windows"] = [
                {"id": w["id"], "kind": w["kind"], "start": w["start"], "end": w["end"]}
                for w in env.get("windows") or ()
                if horizon is None or timeutil.parse_iso(w["start"]) <= horizon]
        haz = plan.get("hazards")
        if isinstance(haz, dict):  # the counts; the lists stay on the ground
            slim["hazards"] = dict((k, v) for k, v in haz.items()
                                   if k not in ("hazards", "checkpoint_schedule"))
        plan, predicted = slim, []
    return {"plan_id": plan_id, "deployment_id": deployment_id, "satellite_id": satellite_id,
            "plan_data": plan, "events": predicted}


def _plan_end(plan):
    """The latest end in the plan's schedule (ISO); None when it has none."""
    ends = []
    for e in plan.get("schedule") or ():
        if isinstance(e.get("end"), str):
            ends.append(e["end"])
        for seg in e.get("segments") or ():
            if isinstance(seg.get("end"), str):
                ends.append(seg["end"])
    return max(ends) if ends else None


def _containing(windows, t, kind=None):
    for w in windows:
        if w["start"] <= t < w["end"] and (kind is None or w["kind"] == kind):
            return w
    return None


def _schedule(ev, order, by_id, placements, windows):
    """(schedule entries in topological order, segment count, {window id used})
    read from the agent's run: when each step started and completed, in which
    window, at which tier, with what energy, in which pass segments."""
    runs = {}
    used = {}
    for e in ev:
        t = timeutil.parse_iso(e["timestamp"])
        p = e["payload"]
        if e["type"] == "job.accepted":
            w = _containing(windows, t, "contact")
            if w is not None:
                used[w["id"]] = True
        sid = e.get("step_id")
        if sid is None:
            continue
        r = runs.setdefault(sid, {"segments": []})
        if e["type"] == "step.started" and "start" not in r:
            r["start"] = t
            named = [w for w in windows if w["id"] == p.get("window")]
            w = named[0] if named else _containing(windows, t, p.get("window_label") or
                                                   p.get("window"))
            r["window_id"] = w["id"] if w is not None else None
            if w is not None:
                used[w["id"]] = True
        elif e["type"] == "step.completed":
            r["end"] = t
        elif e["type"] in ("window_step.tier_selected", "window_step.completed"):
            r["tier"] = p.get("tier")
            if p.get("compute_s") is not None:
                r["compute_s"] = p["compute_s"]
        elif e["type"] == "eclipse_step.completed":
            r["energy_wh"] = p.get("energy_consumed_wh")
        elif e["type"] == "pass_step.segment_started":
            r["segments"].append({"pass_id": p.get("pass_id"), "start": t})
            used[p.get("pass_id")] = True
        elif e["type"] == "pass_step.segment_completed" and r["segments"]:
            r["segments"][-1]["end"] = t
    schedule = []
    n_segments = 0
    for sid in order:
        s = by_id[sid]
        entry = {"step_id": sid, "type": s["type"], "location": placements[sid]["location"]}
        r = runs.get(sid)
        if r is None or "start" not in r:  # a ground step: the Console runs it
            entry.update(window_id=None, start=None, end=None, compute_s=s.get("compute_s") or 0)
            schedule.append(entry)
            continue
        entry.update(window_id=r.get("window_id"), start=_iso(r["start"]),
                     end=_iso(r.get("end", r["start"])),
                     compute_s=r.get("compute_s", s.get("compute_s") or 0))
        if r.get("tier") is not None:
            entry["tier"] = r["tier"]
        if r.get("energy_wh") is not None:
            entry["energy_wh"] = r["energy_wh"]
        if r["segments"]:
            segs = [{"pass_id": g["pass_id"], "start": _iso(g["start"]),
                     "end": _iso(g.get("end", g["start"])),
                     "compute_s": round(g.get("end", g["start"]) - g["start"], 1)}
                    for g in r["segments"]]
            entry["segments"] = segs
            entry["window_id"] = segs[0]["pass_id"]
            n_segments += len(segs)
        else:
            n_segments += 1
        schedule.append(entry)
    return schedule, n_segments, used


def _transfers(ev, windows, used):
    """([{pass_id, station, start, end, data_mb}], total downlink MB) of the run."""
    out = []
    total = 0.0
    open_pass = None
    for e in ev:
        t = timeutil.parse_iso(e["timestamp"])
        p = e["payload"]
        if e["type"] == "transfer.started":
            total = p.get("total_transfer_mb") or 0.0
        elif e["type"] == "transfer.pass_started":
            w = _containing(windows, t, "contact")
            open_pass = {"pass_id": w["id"] if w is not None else None,
                         "station": p.get("ground_station"), "start": t}
            if w is not None:
                used[w["id"]] = True
        elif e["type"] == "transfer.pass_completed" and open_pass is not None:
            open_pass.update(end=t, data_mb=p.get("data_transferred_mb"))
            out.append(open_pass)
            open_pass = None
    return out, total


def _satellite_block(summary):
    out = {}
    for k in ("id", "name", "norad_id", "altitude_km", "inclination_deg", "period_min", "tle_epoch"):
        if summary.get(k) is not None:
            out[k] = summary[k]
    return out


def _hazards_within(hz, t0, t1, iso):
    """The horizon's hazard prediction cut to [t0, t1] (the job's span)."""
    hs = [h for h in hz["hazards"] if timeutil.parse_iso(h["start"]) < t1
          and timeutil.parse_iso(h["end"]) > t0]
    ids = {}
    for h in hs:
        ids[h["id"]] = True
    cks = [c for c in hz["checkpoint_schedule"] if timeutil.parse_iso(c["at"]) <= t1
           and (c.get("hazard_id") is None or c["hazard_id"] in ids)]
    safe = 0.0
    cursor = t0
    for h in hs:
        a = timeutil.parse_iso(h["start"])
        if a > cursor:
            safe = max(safe, a - cursor)
        cursor = max(cursor, timeutil.parse_iso(h["end"]))
    safe = max(safe, t1 - cursor)
    span = t1 - t0
    import hazards as hazardlib
    cost = hazardlib.DEFAULT_CHECKPOINT_COST_S
    return {"hazards_count": len(hs), "checkpoints_count": len(cks),
            "next_hazard": hs[0] if hs else None, "max_safe_window_s": round(safe, 1),
            "overhead_fraction": round(len(cks) * cost / span, 6) if span > 0 else 0,
            "hazards": hs, "checkpoint_schedule": cks}


def _clip(w, t_end):
    if w["end"] <= t_end:
        return w
    c = dict(w)
    c["end"] = t_end
    c["duration_s"] = round(t_end - w["start"], 1)
    return c


def _iso(t):
    return timeutil.iso_utc(t)


def _num(x):
    return int(x) if isinstance(x, float) and x == int(x) else x
