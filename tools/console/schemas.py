"""Request bodies of the Console API (PROTOCOL.md), as pydantic models: they
validate bodies and give the OpenAPI document its request schemas."""
from typing import List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

import events
import workload

from . import eventcheck as event_catalog

ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"


# free text stored as it came: anything but U+0000, which PostgreSQL's text cannot
# hold (the same rule on both backends, db.py)
TEXT_PATTERN = r"^[^\x00]*$"


def Id(default=...):
    return Field(default, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class Body(BaseModel):
    # strict: no "12" -> 12 coercion; NaN/inf are refused; unknown fields ignored
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


class RegisterBody(Body):
    agent_id: str = Id()
    # optional, as in v0.1.0: the Console resolves it when missing (PROTOCOL.md)
    satellite_id: Optional[str] = Id(None)
    satellite_name: Optional[str] = Field(None, max_length=200, pattern=TEXT_PATTERN)
    agent_version: str = Field(min_length=1, max_length=64, pattern=TEXT_PATTERN)
    orbit_altitude_km: Optional[float] = Field(None, ge=0, le=100000)


class Position(Body):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-360, le=360)
    altitude_km: float = Field(ge=-100, le=100000)
    in_eclipse: bool


class TelemetryBody(Body):
    agent_id: str = Id()
    status: Literal["idle", "executing", "transferring", "offline", "safe_mode"]
    timestamp: str = Field(min_length=19, max_length=40, json_schema_extra={"format": "date-time"})
    cpu_percent: Optional[float] = Field(None, ge=0, le=100)
    memory_mb: Optional[float] = Field(None, ge=0, le=1e7)
    battery_percent: Optional[float] = Field(None, ge=0, le=100)
    temperature_c: Optional[float] = Field(None, ge=-273.15, le=1000)
    position: Optional[Position] = None
    compute_capacity: Optional[float] = Field(None, ge=0, le=1e6)
    # Umbra extras
    boot_count: Optional[int] = Field(None, ge=0, le=2 ** 53)
    reset_cause: Optional[str] = Field(None, max_length=64)
    mode: Optional[str] = Field(None, max_length=64)
    heap_free: Optional[int] = Field(None, ge=0, le=2 ** 53)
    outbox_depth: Optional[int] = Field(None, ge=0, le=2 ** 53)
    seq: Optional[int] = Field(None, ge=0, le=2 ** 53)
    unexplained_resets: Optional[int] = Field(None, ge=0, le=2 ** 53)
    seu_corrected: Optional[int] = Field(None, ge=0, le=2 ** 53)
    seu_restored: Optional[int] = Field(None, ge=0, le=2 ** 53)
    telemetry_thinned: Optional[int] = Field(None, ge=0, le=2 ** 53)
    events_shed: Optional[int] = Field(None, ge=0, le=2 ** 53)
    events_refused: Optional[int] = Field(None, ge=0, le=2 ** 53)
    dead_letters: Optional[int] = Field(None, ge=0, le=2 ** 53)


class DeadLetter(Body):
    seq: int = Field(ge=1, le=2 ** 53)
    deployment_id: Optional[str] = Field(None, max_length=64, pattern=TEXT_PATTERN)
    # an event's text as the agent spooled it: a few hundred bytes (a report
    # batch holds report_batch_bytes, 2 KiB, of them)
    event: str = Field(max_length=4096, pattern=TEXT_PATTERN)


class DeadLetters(BaseModel):
    model_config = ConfigDict(strict=True)
    letters: List[DeadLetter] = Field(min_length=1, max_length=50)  # the agent sends 20 at most


class PlanningOptions(Body):
    prediction_hours: float = Field(12, ge=1, le=48)
    min_elevation_deg: float = Field(5, ge=0, le=90)
    start: Optional[str] = Field(None, min_length=19, max_length=40,
                                 json_schema_extra={"format": "date-time"})


class PlanBody(Body):
    satellite_id: str = Id()
    custom_job: dict
    planning: Optional[PlanningOptions] = None


class DeploymentBody(Body):
    plan_id: str = Id()
    mode: Literal["live", "simulated"] = "live"
    speed_multiplier: float = Field(1.0, ge=0, le=1e6)


class KeyBody(Body):
    kind: Literal["agent", "user"] = "agent"
    agent_id: Optional[str] = Field(None, min_length=1, max_length=64,
                                    pattern=r"^[A-Za-z0-9_.-]+$")  # no ':' (the Console's origins)
    satellite_id: Optional[str] = Id(None)  # an agent key's satellite (default: from agent_id)
    uplink: bool = False
    rate_limited: bool = True


class Elements(Body):
    altitude_km: float = Field(ge=150, le=40000)
    inclination_deg: float = Field(ge=0, le=180)
    eccentricity: float = Field(0, ge=0, le=0.9)
    raan_deg: float = Field(0, ge=0, le=360)
    arg_perigee_deg: float = Field(0, ge=0, le=360)
    mean_anomaly_deg: float = Field(0, ge=0, le=360)
    epoch: Optional[str] = Field(None, min_length=19, max_length=40,
                                 json_schema_extra={"format": "date-time"})


class Bus(Body):
    battery_wh: Optional[float] = Field(None, gt=0, le=1e5)
    solar_w: Optional[float] = Field(None, ge=0, le=1e5)
    bus_load_w: Optional[float] = Field(None, ge=0, le=1e5)
    compute_w: Optional[float] = Field(None, ge=0, le=1e5)
    memory_mb: Optional[float] = Field(None, ge=0, le=1e7)
    storage_mb: Optional[float] = Field(None, ge=0, le=1e9)
    downlink_mbps: Optional[float] = Field(None, ge=0, le=1e5)


MAX_FLEET = 24  # satellites in one constellation plan (the contact plan grows as their square)


class FleetTle(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    tle: Union[List[str], str] = Field(json_schema_extra={"description": "two TLE lines"})


class FleetElements(Elements):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


def _fleet_bus():
    """The bus a fleet's satellite may override (sim/busdefaults.py), every key a number."""
    from pydantic import create_model
    import busdefaults
    keys = busdefaults.bus_config()
    return create_model("FleetBus", __config__=ConfigDict(strict=True, extra="forbid",
                                                          allow_inf_nan=False),
                        **dict((k, (Optional[float], Field(None, ge=0, le=1e9))) for k in keys))


FleetBus = _fleet_bus()


class FleetSatellite(BaseModel):
    # checked in full by sim/fleetfile.py (the orbit parses, the bus adds up)
    model_config = ConfigDict(strict=True, extra="forbid")
    satellite_id: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")
    name: Optional[str] = Field(None, max_length=200)
    role: Literal["compute", "aggregator"] = "compute"
    orbit: Union[FleetElements, FleetTle]
    bus: Optional[FleetBus] = None


class ConstellationPlanBody(Body):
    fleet: List[FleetSatellite] = Field(min_length=1, max_length=MAX_FLEET)
    epoch: Optional[str] = Field(None, min_length=19, max_length=40,
                                 json_schema_extra={"format": "date-time"})
    job: dict
    planning: Optional[PlanningOptions] = None


class SatelliteBody(Body):
    satellite_id: str = Id()
    name: str = Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)
    tle: Optional[Union[List[str], str]] = None
    elements: Optional[Elements] = None
    bus: Optional[Bus] = None


# ---- request schemas the pydantic models cannot state (the OpenAPI document
# must say what the server does: schemathesis checks it, tests/test_console_fuzz.py)

def key_body_schema():
    """POST /api/keys: an agent key names its (unreserved) agent; a user key has
    no uplink key."""
    from .auth import RESERVED_AGENT_IDS
    flags = {"uplink": {"type": "boolean", "default": False},
             "rate_limited": {"type": "boolean", "default": True}}
    from .auth import AGENT_ID
    agent_id = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": AGENT_ID.pattern,
                "description": "no ':' (the Console's own event origins have one)"}
    unreserved = dict(agent_id, **{"not": {"enum": list(RESERVED_AGENT_IDS)}})
    satellite = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": ID_PATTERN,
                 "description": "the catalog satellite the key acts for (default: the one "
                                "the agent id names, sat-<NORAD id>; 400 when none)"}
    return {"oneOf": [
        {"title": "AgentKey", "type": "object", "required": ["agent_id"],
         "properties": dict(flags, kind={"enum": ["agent"], "default": "agent"},
                            agent_id=unreserved,
                            satellite_id={"anyOf": [satellite, {"type": "null"}]})},
        {"title": "UserKey", "type": "object", "required": ["kind"],
         "properties": dict(flags, kind={"enum": ["user"]}, uplink={"enum": [False]},
                            agent_id={"anyOf": [dict(agent_id, pattern=ID_PATTERN),
                                                {"type": "null"}],
                                      "description": "ignored"},
                            satellite_id={"type": "null"})},
    ]}


def satellite_body_schema():
    """POST /api/satellites: exactly one of tle (two lines) or elements."""
    schema = model_schema(SatelliteBody)
    tle_text = {"type": "string", "maxLength": 1000, "pattern": r"\S[\s\S]*\n[\s\S]*\S",
                "description": "the TLE's lines (a name line before them is skipped)"}
    tle_lines = {"type": "array", "items": {"type": "string", "maxLength": 200},
                 "minItems": 2, "maxItems": 2}
    schema["properties"]["tle"] = {"anyOf": [tle_lines, tle_text, {"type": "null"}],
                                   "description": "checked like any TLE: its checksums and "
                                                  "fields (400 'malformed TLE' otherwise)"}
    null = {"type": "null"}
    schema["oneOf"] = [
        {"required": ["tle"], "properties": {"tle": {"not": null}, "elements": null}},
        {"required": ["elements"], "properties": {"elements": {"not": null}, "tle": null}},
    ]
    return schema


def job_schema():
    """A job's shape (STEPS.md; the limits are firmware/workload.py's). The rules
    JSON Schema cannot state -- unique step ids, known dependencies, no cycle,
    what each step type needs -- are checked by the planner: 400 with its reason
    code (e.g. `unknown_dependency: steps[1] ...`). A null where a field is
    optional means the field is absent (as firmware/workload.py reads it)."""
    w = workload

    def nullable(schema):
        return {"anyOf": [schema, {"type": "null"}]}
    step_id = {"type": "string", "minLength": 1, "maxLength": w.MAX_ID, "pattern": ID_PATTERN}
    step = {"type": "object", "required": ["id"], "properties": {
        "id": step_id,
        "name": nullable({"type": "string", "maxLength": w.MAX_NAME}),
        "type": {"enum": list(w.STEP_TYPES) + [None], "default": "standard"},
        "location": {"enum": list(w.LOCATIONS) + [None], "default": "onboard"},
        "compute_s": nullable({"type": "number", "minimum": 0, "maximum": w.MAX_COMPUTE_S}),
        "depends_on": nullable({"type": "array", "items": step_id, "maxItems": w.MAX_STEPS}),
    }}
    return {"type": "object", "required": ["steps"], "properties": {
        "name": nullable({"type": "string", "maxLength": w.MAX_NAME}),
        "steps": {"type": "array", "minItems": 1, "maxItems": w.MAX_STEPS, "items": step},
        "policy": {"type": "object", "properties": {
            "objective": {"enum": list(w.OBJECTIVES) + [None]},
            "deadline_orbits": nullable({"type": "number", "exclusiveMinimum": 0,
                                         "maximum": w.MAX_DEADLINE_ORBITS})}},
        "security": {"type": "object", "properties": {
            "encryption": {"enum": list(w.ENCRYPTIONS) + [None]},
            "require_authenticated_uplink": {"type": "boolean"}}},
    }}


def constellation_plan_body_schema():
    schema = model_schema(ConstellationPlanBody)
    schema["properties"]["job"] = job_schema()
    return schema


def plan_body_schema():
    schema = model_schema(PlanBody)
    schema["properties"]["custom_job"] = job_schema()
    return schema


def event_schema():
    """One event: the envelope, and per type the payload fields the catalog
    requires (firmware/events.py). agent_id and deployment_id, when given, must
    be the sender's and the URL's."""
    by_type = []
    for etype in event_catalog.types():
        required = [f for f in events.fields(etype) if not f.endswith("?")]
        by_type.append({"properties": {"type": {"const": etype},
                                       "payload": {"type": "object", "required": required}}})
    return {
        "type": "object",
        "required": ["type", "timestamp", "payload"],
        "properties": {
            "type": {"type": "string", "enum": event_catalog.types()},
            "timestamp": {"type": "string", "format": "date-time"},
            "job_id": {"type": ["string", "null"]},
            "step_id": {"type": ["string", "null"]},
            "payload": {"type": "object"},
            "agent_id": {"type": "string", "description": "the sender's (X-Agent-ID)"},
            "seq": {"type": "integer", "minimum": 1, "maximum": 2 ** 62},
            "deployment_id": {"type": "string", "description": "the URL's"},
        },
        "oneOf": by_type,
    }


def dead_letters_schema():
    return {"type": "array", "items": model_schema(DeadLetter), "minItems": 1, "maxItems": 50}


def events_body_schema():
    one = event_schema()
    return {"oneOf": [one, {"type": "array", "items": one, "minItems": 1, "maxItems": 1000}]}


def _inline(schema, defs):
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if ref and ref.startswith("#/$defs/"):
            return _inline(defs[ref[len("#/$defs/"):]], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def model_schema(model):
    """A pydantic model's JSON Schema with its $defs inlined."""
    raw = model.model_json_schema()
    return _inline(raw, raw.get("$defs", {}))


def openapi_body(schema_or_model):
    """`openapi_extra` declaring a JSON request body (the handler parses it itself)."""
    if isinstance(schema_or_model, dict):
        schema = schema_or_model
    else:
        schema = model_schema(schema_or_model)
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}}}
