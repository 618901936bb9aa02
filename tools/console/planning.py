"""Planning behind ONE function, `make_plan`: the Console's options and catalog
record in, the orbital planner (tools/planner: the agent's own run of the
job in the forecast) out. The plan has the shape of STEPS.md "The plan",
with its predicted event stream.

Errors raise PlanError(status, reason): 400 for an invalid job (or a cycle) or
planning options, 404 for an unknown satellite (raised by the caller), 422 for
a job that is valid but cannot be planned (the reason names the step and the
constraint).
"""
import uuid

import timeutil
from tools import planner

PlanError = planner.PlanError
VERSION = planner.VERSION


def _bad(reason):
    raise PlanError(400, reason)


def _number(value, where, hi, lo=0):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        _bad("%s must be a number" % where)
    if not lo <= value <= hi:
        _bad("%s must be between %s and %s" % (where, lo, hi))
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


def make_plan(satellite, custom_job, planning, now_epoch):
    """The plan document (STEPS.md "The plan") for custom_job on satellite (a catalog
    record: satellite_id, name, tle | elements, bus, orbit = catalog.summary)
    starting at planning.start or now_epoch."""
    opts = validate_planning(planning)
    planner.normalise_job(custom_job)   # a bad job is a 400 before any orbit work
    start = int(opts.get("start", now_epoch))
    return planner.make_plan(satellite, custom_job, start, hours=opts["prediction_hours"],
                             min_elevation_deg=float(opts["min_elevation_deg"]),
                             plan_id="plan-" + uuid.uuid4().hex[:16], created_at=now_epoch)
