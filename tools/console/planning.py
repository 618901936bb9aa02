"""Planning behind ONE function, `make_plan`, which the orbital planner will
replace. For now it validates and normalises the job and schedules standard
steps one after another from the plan start (no orbital windows yet), but
the plan already has the shape of STEPS.md "The plan", with its predicted
event stream.

Errors raise PlanError(status, reason): 400 for an invalid job or planning
options, 404 for an unknown satellite (raised by the caller), 422 for a job
that is valid but cannot be planned.
"""
import math
import uuid

import events
import timeutil

VERSION = "1.0.0"

# A 6U-class bus (MODELS.md); a satellite's own `bus` overrides any field.
DEFAULT_BUS = {"battery_wh": 80, "solar_w": 45, "bus_load_w": 8, "compute_w": 20,
               "memory_mb": 1024, "storage_mb": 16384, "downlink_mbps": 10}

STEP_TYPES = ("standard", "eclipse", "window", "pass")
LOCATIONS = ("onboard", "ground", "either")
OBJECTIVES = ("balanced", "max_reliability", "min_latency", "min_energy")
ENCRYPTIONS = ("none", "aes128", "aes256")
RETRY_POLICIES = ("fail", "retry_next_window", "retry_immediate")
MAX_STEPS = 100
MAX_NAME = 200
MAX_ID = 64
# Ranges that reject absurd values (a month of compute, a terabyte of output).
NUMBER_LIMITS = {"compute_s": 30 * 86400, "output_mb": 1e6, "input_mb": 1e6, "memory_mb": 1e6,
                 "power_w": 1e4, "checkpoint_interval_s": 30 * 86400, "energy_budget_wh": 1e4}
PROGRESS_POINTS = (25, 50, 75)


class PlanError(Exception):
    def __init__(self, status, reason):
        Exception.__init__(self, reason)
        self.status = status
        self.reason = reason


def _bad(reason):
    raise PlanError(400, reason)


def _number(value, where, hi, lo=0):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        _bad("%s must be a number" % where)
    if not lo <= value <= hi:
        _bad("%s must be between %s and %s" % (where, lo, hi))
    return value


def _string(value, where, limit):
    if not isinstance(value, str) or not value or len(value) > limit:
        _bad("%s must be a non-empty string of at most %d characters" % (where, limit))
    return value


def validate_planning(planning):
    """{prediction_hours, min_elevation_deg, start?} with defaults; PlanError(400) if bad."""
    if planning is None:
        planning = {}
    if not isinstance(planning, dict):
        _bad("planning must be an object")
    out = {"prediction_hours": planning.get("prediction_hours", 12),
           "min_elevation_deg": planning.get("min_elevation_deg", 5)}
    _number(out["prediction_hours"], "planning.prediction_hours", 48, 1)
    _number(out["min_elevation_deg"], "planning.min_elevation_deg", 90, 0)
    start = planning.get("start")
    if start is not None:
        try:
            out["start"] = timeutil.parse_iso(start)
        except ValueError:
            _bad("planning.start must be an ISO 8601 UTC time")
        if not 946684800 <= out["start"] <= 4102444800:  # 2000..2100
            _bad("planning.start must be between 2000 and 2100")
    return out


def validate_job(job):
    """The job normalised (aliases resolved, defaults filled, steps in a valid DAG);
    PlanError(400) with the reason otherwise."""
    if not isinstance(job, dict):
        _bad("custom_job must be an object")
    out = dict(job)
    out["name"] = _string(job.get("name", "job"), "custom_job.name", MAX_NAME)
    if "id" in job:
        out["id"] = _string(job["id"], "custom_job.id", MAX_ID)
    policy = job.get("policy", {})
    if not isinstance(policy, dict):
        _bad("custom_job.policy must be an object")
    policy = dict(policy)
    policy.setdefault("objective", "balanced")
    if policy["objective"] not in OBJECTIVES:
        _bad("policy.objective must be one of %s" % ", ".join(OBJECTIVES))
    if "deadline_orbits" in policy:
        _number(policy["deadline_orbits"], "policy.deadline_orbits", 1000, 0)
        if policy["deadline_orbits"] <= 0:
            _bad("policy.deadline_orbits must be positive")
    out["policy"] = policy
    security = job.get("security", {})
    if not isinstance(security, dict):
        _bad("custom_job.security must be an object")
    security = dict(security)
    security.setdefault("encryption", "none")
    if security["encryption"] not in ENCRYPTIONS:
        _bad("security.encryption must be one of %s" % ", ".join(ENCRYPTIONS))
    if not isinstance(security.get("require_authenticated_uplink", False), bool):
        _bad("security.require_authenticated_uplink must be a boolean")
    out["security"] = security

    steps = job.get("steps")
    if not isinstance(steps, list) or not steps:
        _bad("custom_job.steps must be a non-empty list")
    if len(steps) > MAX_STEPS:
        _bad("a job has at most %d steps" % MAX_STEPS)
    norm = []
    seen = set()
    for i, step in enumerate(steps):
        where = "steps[%d]" % i
        if not isinstance(step, dict):
            _bad("%s must be an object" % where)
        s = dict(step)
        sid = _string(step.get("id"), where + ".id", MAX_ID)
        if sid in seen:
            _bad("duplicate step id %r" % sid)
        seen.add(sid)
        s["name"] = _string(step.get("name", sid), where + ".name", MAX_NAME)
        s["type"] = step.get("type", "standard")
        if s["type"] not in STEP_TYPES:
            _bad("%s.type must be one of %s" % (where, ", ".join(STEP_TYPES)))
        s["location"] = step.get("location", "onboard")
        if s["location"] not in LOCATIONS:
            _bad("%s.location must be one of %s" % (where, ", ".join(LOCATIONS)))
        for alias, name in (("duration_s", "compute_s"), ("output_data_mb", "output_mb")):
            if alias in s:
                if name in s:
                    _bad("%s gives both %s and its alias %s" % (where, name, alias))
                s[name] = s.pop(alias)
        if s["type"] == "standard" and "compute_s" not in s:
            _bad("%s.compute_s is required" % where)
        s.setdefault("compute_s", 0)
        s.setdefault("output_mb", 0)
        for name, hi in NUMBER_LIMITS.items():
            if name in s:
                _number(s[name], "%s.%s" % (where, name), hi)
        deps = step.get("depends_on", [])
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            _bad("%s.depends_on must be a list of step ids" % where)
        if len(set(deps)) != len(deps):
            _bad("%s.depends_on lists a step twice" % where)
        s["depends_on"] = list(deps)
        s["retry_policy"] = step.get("retry_policy", "retry_immediate")
        if s["retry_policy"] not in RETRY_POLICIES:
            _bad("%s.retry_policy must be one of %s" % (where, ", ".join(RETRY_POLICIES)))
        s["max_retries"] = step.get("max_retries", 1)
        if isinstance(s["max_retries"], bool) or not isinstance(s["max_retries"], int) \
                or not 0 <= s["max_retries"] <= 100:
            _bad("%s.max_retries must be an integer between 0 and 100" % where)
        s["handler"] = _string(step.get("handler", "synthetic"), where + ".handler", MAX_ID)
        norm.append(s)
    for s in norm:
        for d in s["depends_on"]:
            if d not in seen:
                _bad("step %r depends on unknown step %r" % (s["id"], d))
            if d == s["id"]:
                _bad("step %r depends on itself" % d)
    out["steps"] = topological_order(norm)
    return out


def topological_order(steps):
    """Steps ordered so dependencies come first (stable: job order among ready steps);
    PlanError(400) on a cycle."""
    remaining = list(steps)
    done = set()
    ordered = []
    while remaining:
        ready = [s for s in remaining if all(d in done for d in s["depends_on"])]
        if not ready:
            _bad("the steps' dependencies form a cycle: %s"
                 % ", ".join(sorted(s["id"] for s in remaining)))
        step = ready[0]
        ordered.append(step)
        done.add(step["id"])
        remaining.remove(step)
    return ordered


def place(step, bus, produced_mb):
    """(location, reason) for a step (STEPS.md "Placement for either")."""
    if step["location"] != "either":
        return step["location"], "preset_defined"
    if step.get("power_w", 0) > bus["compute_w"] or step.get("memory_mb", 0) > bus["memory_mb"]:
        return "ground", "insufficient_onboard_resources"
    input_mb = step.get("input_mb", produced_mb)
    if step["output_mb"] < input_mb:
        return "onboard", "data_reduction"
    return "ground", "downlink_budget"


def make_plan(satellite, custom_job, planning, now_epoch):
    """The plan document (STEPS.md "The plan") for custom_job on satellite (a catalog
    record with `orbit` = catalog.summary) starting at planning.start or now_epoch."""
    job = validate_job(custom_job)
    opts = validate_planning(planning)
    for s in job["steps"]:
        if s["type"] != "standard":
            raise PlanError(422, "step %r is a %s step; orbital primitives need the orbital "
                                 "planner, which is not built yet" % (s["id"], s["type"]))
    orbit = satellite["orbit"]
    bus = dict(DEFAULT_BUS)
    bus.update(satellite.get("bus") or {})
    plan_id = "plan-" + uuid.uuid4().hex[:16]
    job.setdefault("id", plan_id)
    start = int(opts.get("start", now_epoch))
    period_s = orbit["period_min"] * 60.0

    horizon_h = opts["prediction_hours"]
    deadline_orbits = job["policy"].get("deadline_orbits")
    if deadline_orbits:
        horizon_h = min(48.0, max(horizon_h, deadline_orbits * period_s / 3600.0))

    # Sequential schedule, dependencies first.
    placements, schedule = [], []
    output_of = {}
    t = start
    for s in job["steps"]:
        produced = sum(output_of.get(d, 0) for d in s["depends_on"])
        location, reason = place(s, bus, produced)
        placements.append({"step_id": s["id"], "location": location, "reason": reason})
        end = t + s["compute_s"]
        schedule.append({"step_id": s["id"], "type": s["type"], "location": location,
                         "window_id": None, "start": timeutil.iso_utc(t),
                         "end": timeutil.iso_utc(end), "compute_s": s["compute_s"],
                         "_t0": t, "_t1": end})
        output_of[s["id"]] = s["output_mb"]
        t = end
    total_s = t - start
    if deadline_orbits and total_s > deadline_orbits * period_s:
        raise PlanError(422, "the job needs %d s but its deadline is %s orbits (%d s)"
                        % (total_s, deadline_orbits, deadline_orbits * period_s))
    if total_s > horizon_h * 3600:
        raise PlanError(422, "the job needs %d s, more than the %s h prediction horizon"
                        % (total_s, horizon_h))

    ev = []

    def emit(etype, at, step_id=None, **payload):
        ev.append(events.make(etype, timeutil.iso_utc(at), job["id"], step_id, payload))

    accepted = {"name": job["name"], "steps": len(job["steps"])}
    if job["security"]["encryption"] != "none":
        accepted["security"] = job["security"]["encryption"]
    emit("job.accepted", start, **accepted)
    for p in placements:
        emit("placement.decided", start, p["step_id"], location=p["location"], reason=p["reason"])
    emit("plan.created", start, segments=len(schedule), windows_used=0, total_duration_s=total_s)
    for entry in schedule:
        t0, t1 = entry.pop("_t0"), entry.pop("_t1")
        sid = entry["step_id"]
        emit("step.started", t0, sid, location=entry["location"], window=None,
             window_label="sequential")
        for pct in PROGRESS_POINTS:
            emit("step.progress", t0 + (t1 - t0) * pct / 100.0, sid, percent=pct)
        step = [s for s in job["steps"] if s["id"] == sid][0]
        emit("step.completed", t1, sid, duration_s=t1 - t0, location=entry["location"],
             data_output_mb=step["output_mb"])
    emit("job.completed", t, total_duration_s=total_s, status="completed")

    alt = orbit["altitude_km"]
    eclipse_fraction = math.asin(min(1.0, 6378.137 / (6378.137 + alt))) / math.pi
    return {
        "id": plan_id,
        "created_at": timeutil.iso_utc(now_epoch),
        "version": VERSION,
        "satellite": {k: orbit[k] for k in ("id", "name", "norad_id", "altitude_km",
                                             "inclination_deg", "period_min", "tle_epoch")
                      if k in orbit},
        "job": job,
        "orbital_environment": {
            "prediction_start": timeutil.iso_utc(start),
            "prediction_hours": horizon_h,
            "min_elevation_deg": opts["min_elevation_deg"],
            "eclipse_fraction": round(eclipse_fraction, 4),
            "bus": bus,
            "windows": [],
            "summary": {"total_windows": 0, "comms_windows": 0, "sunlit_windows": 0,
                        "eclipse_windows": 0, "total_pass_time_s": 0,
                        "ground_stations_visible": 0},
        },
        "placement_decisions": placements,
        "schedule": schedule,
        "transfer_schedule": {"transfers": [], "total_downlink_mb": 0, "passes_used": 0,
                              "total_transfer_time_s": 0},
        "hazards": {"hazards_count": 0, "checkpoints_count": 0, "next_hazard": None,
                    "max_safe_window_s": None, "overhead_fraction": 0, "hazards": [],
                    "checkpoint_schedule": []},
        "plan": {"total_duration_s": total_s, "windows_used": 0, "segments": len(schedule),
                 "status": "scheduled"},
        "events": ev,
    }
