"""The orbital planner (STEPS.md "The plan"), portable: the Console plans with
it, and a board can run it too (MicroPython unix port and CPython give the
same plan).

    make_plan(satellite, job, start, hours=12, min_elevation_deg=5,
              plan_id="plan-1", created_at=None, stations=None) -> plan dict
    PlanError(status, reason): 400 invalid job (or cycle), 422 infeasible
    (the reason names the step and the constraint)

satellite: {id|satellite_id, name, tle: [line1, line2] | elements: {...},
bus?: {overrides of sim/models.BUS_DEFAULTS}, orbit?: catalog summary}.

How: the job is validated by firmware/workload.py (one set of rules with the
agent); the environment over the horizon comes from the world models in
sim/ (orbit windows, ground stations, bus, hazards); then planner_run replays
the agent's executor against a SimulatedSatellite to place every step in
time and predict every event, with the decision rules of planner_rules.
docs/planner.md explains the rules and the event contract.
"""
import planner_rules as rules
import timeutil
import workload
from planner_run import Infeasible, Run

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
    names = {}
    for s in stations:
        names[s["id"]] = s.get("name", s["id"])
    timeline = spacecraft.Timeline(orb, start, hours * 3600.0 + WINDOW_MARGIN_S, stations,
                                   min_elevation_deg)
    windows = timeline.windows
    sat = spacecraft.SimulatedSatellite(str(summary.get("id")), orb, start, bus=satellite.get("bus"),
                                        stations=stations, timeline=timeline)

    # hazards over the horizon; a checkpoint before every SAA transit
    steps = norm["steps"]
    intervals = [s["checkpoint_interval_s"] for s in steps if s.get("checkpoint_interval_s")]
    eclipses = [(w["start"], min(w["end"], horizon_end)) for w in windows
                if w["kind"] == "eclipse" and w["start"] < horizon_end]
    hz = hazardlib.predict(orb, start, horizon_end, eclipses=eclipses,
                           checkpoint_interval_s=min(intervals) if intervals else 0)
    saa_at = [timeutil.parse_iso(c["at"]) for c in hz["checkpoint_schedule"]
              if c["reason"] == "before_saa"]

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

    env = {"sat": sat, "windows": windows, "start": start, "end": end, "hours": hours,
           "deadline_orbits": deadline_orbits, "bus": bus, "saa_checkpoints": saa_at,
           "plan_id": plan_id, "job": norm, "placements": placements, "station_names": names}
    run = Run(env, cfg)
    try:
        ev = run.run(order)
    except Infeasible as exc:
        raise PlanError(exc.status, exc.reason)
    job_end = run.t
    total_s = round(job_end - run.accepted_at, 1)

    # the schedule, in topological order
    schedule = []
    n_segments = 0
    for sid in order:
        s = by_id[sid]
        p = placements[sid]
        e = run.schedule.get(sid)
        entry = {"step_id": sid, "type": s["type"], "location": p["location"]}
        if e is None:   # a ground step: the Console runs it once its inputs are down
            entry.update(window_id=None, start=None, end=None, compute_s=s.get("compute_s") or 0)
        else:
            entry.update(window_id=e["window_id"], start=_iso(e["start"]), end=_iso(e["end"]),
                         compute_s=e["compute_s"])
            if "tier" in e:
                entry["tier"] = e["tier"]
                for d in decisions:
                    if d["step_id"] == sid:
                        d["quality_tier"] = e["tier"]
            if "energy_wh" in e:
                entry["energy_wh"] = e["energy_wh"]
            if "segments" in e:
                entry["segments"] = [{"pass_id": g["pass_id"], "start": _iso(g["start"]),
                                      "end": _iso(g["end"]), "compute_s": g["compute_s"]}
                                     for g in e["segments"]]
                n_segments += len(e["segments"])
            else:
                n_segments += 1
        schedule.append(entry)

    haz = _hazards_within(hz, start, max(job_end, start + 1), orbitio.iso)
    for k in haz:
        run.predicted["payload"][k] = haz[k]
    windows_used = len(run.windows_used)
    pc = run.plan_created["payload"]
    pc["segments"] = n_segments
    pc["windows_used"] = windows_used
    pc["total_duration_s"] = total_s

    shown = [orbitio.as_iso(_clip(w, horizon_end)) for w in windows if w["start"] < horizon_end]
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
    transfers = [{"pass_id": x["pass_id"], "station": x["station"], "start": _iso(x["start"]),
                  "end": _iso(x["end"]), "data_mb": x["data_mb"]} for x in run.transfers]
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
        "transfer_schedule": {"transfers": transfers, "total_downlink_mb": run.downlink_total,
                              "passes_used": len(transfers),
                              "total_transfer_time_s": round(sum(x["end"] - x["start"]
                                                                 for x in run.transfers), 1)},
        "hazards": haz,
        "plan": {"total_duration_s": total_s, "windows_used": windows_used,
                 "segments": n_segments, "status": "scheduled"},
        "forecast": {"start": _iso(start), "columns": ["t_s", "battery_percent", "temperature_c"],
                     "samples": run.forecast},
        "events": ev,
    }


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
