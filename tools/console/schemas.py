"""Request bodies of the Console API (PROTOCOL.md), as pydantic models: they
validate bodies and give the OpenAPI document its request schemas."""
from typing import List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from . import eventcheck as event_catalog



def Id(default=...):
    return Field(default, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class Body(BaseModel):
    # strict: no "12" -> 12 coercion; NaN/inf are refused; unknown fields ignored
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


class RegisterBody(Body):
    agent_id: str = Id()
    # optional, as in v0.1.0: the Console resolves it when missing (PROTOCOL.md)
    satellite_id: Optional[str] = Id(None)
    satellite_name: Optional[str] = Field(None, max_length=200)
    agent_version: str = Field(min_length=1, max_length=64)
    orbit_altitude_km: Optional[float] = Field(None, ge=0, le=100000)


class Position(Body):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-360, le=360)
    altitude_km: float = Field(ge=-100, le=100000)
    in_eclipse: bool


class TelemetryBody(Body):
    agent_id: str = Id()
    status: Literal["idle", "executing", "transferring", "offline", "safe_mode"]
    timestamp: str = Field(min_length=19, max_length=40)
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


class PlanningOptions(Body):
    prediction_hours: float = Field(12, ge=1, le=48)
    min_elevation_deg: float = Field(5, ge=0, le=90)
    start: Optional[str] = Field(None, min_length=19, max_length=40)


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
    epoch: Optional[str] = Field(None, min_length=19, max_length=40)


class Bus(Body):
    battery_wh: Optional[float] = Field(None, gt=0, le=1e5)
    solar_w: Optional[float] = Field(None, ge=0, le=1e5)
    bus_load_w: Optional[float] = Field(None, ge=0, le=1e5)
    compute_w: Optional[float] = Field(None, ge=0, le=1e5)
    memory_mb: Optional[float] = Field(None, ge=0, le=1e7)
    storage_mb: Optional[float] = Field(None, ge=0, le=1e9)
    downlink_mbps: Optional[float] = Field(None, ge=0, le=1e5)


class SatelliteBody(Body):
    satellite_id: str = Id()
    name: str = Field(min_length=1, max_length=200)
    tle: Optional[Union[List[str], str]] = None
    elements: Optional[Elements] = None
    bus: Optional[Bus] = None


def event_schema():
    return {
        "type": "object",
        "required": ["type", "timestamp", "payload"],
        "properties": {
            "type": {"type": "string", "enum": event_catalog.types()},
            "timestamp": {"type": "string", "format": "date-time"},
            "job_id": {"type": ["string", "null"]},
            "step_id": {"type": ["string", "null"]},
            "payload": {"type": "object"},
            "agent_id": {"type": "string"},
            "seq": {"type": "integer", "minimum": 1},
            "deployment_id": {"type": "string"},
        },
    }


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


def openapi_body(schema_or_model):
    """`openapi_extra` declaring a JSON request body (the handler parses it itself)."""
    if isinstance(schema_or_model, dict):
        schema = schema_or_model
    else:
        raw = schema_or_model.model_json_schema()
        schema = _inline(raw, raw.get("$defs", {}))
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}}}
