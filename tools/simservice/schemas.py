"""Request bodies of the Simulation Service, as pydantic models (strict, as
the Console's: no "12" -> 12, no NaN): they validate the bodies and give the
OpenAPI document its request schemas. The limits are documented here and in
docs/simservice.md; what JSON Schema cannot state (an orbit under the
ground, a TLE checksum, a time far from the epoch, a satellite the session
does not have) is checked by the handlers: 400 naming the field."""
from typing import Dict, List, Literal, Optional, Union

from pydantic import Field, StringConstraints
from typing_extensions import Annotated

from tools.console.schemas import ID_PATTERN, Body, Id, model_schema

MAX_FLEET = 64               # satellites in one session
MAX_SESSIONS = 100           # sessions one service holds at once
MAX_STEP_S = 7 * 86400       # one step advances at most this much
MAX_STEPS_PER_DOC = 1000     # entries per map or list of a ConstellationState
MAX_POWER_W = 1000.0         # a load's power_w
MAX_MEMORY_MB = 1e6          # a load's memory_mb

TIME = {"format": "date-time"}
SatelliteId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
StepKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def Time(default=...):
    return Field(default, min_length=19, max_length=40, json_schema_extra=TIME)


def Angle(default):
    return Field(default, ge=-360, le=360)


class OrbitElements(Body):
    """Keplerian elements (the reference agent's OrbitalElements). Absent or
    null: eccentricity 0.0001, arg_perigee_deg 90, raan_deg, mean_anomaly_deg
    and mean_motion 0 (0: from the altitude)."""
    altitude_km: float = Field(gt=0, le=100000)
    inclination_deg: float = Field(ge=0, le=180)
    eccentricity: Optional[float] = Field(None, ge=0, lt=1)
    raan_deg: Optional[float] = Angle(None)
    arg_perigee_deg: Optional[float] = Angle(None)
    mean_anomaly_deg: Optional[float] = Angle(None)
    mean_motion: Optional[float] = Field(None, ge=0, le=20, description="rev/day; 0: from altitude_km")
    epoch: Optional[str] = Time(None)


class Elements(OrbitElements):
    epoch: str = Time()


Tle = Union[List[str], str]
TLE_DOC = Field(None, description="a TLE: its two lines (or three, a name first), or that text",
                json_schema_extra={"maxLength": 300, "maxItems": 3})


class StateBody(Body):
    """POST /v1/state: exactly one of elements or tle, and a time."""
    elements: Optional[Elements] = None
    tle: Optional[Tle] = TLE_DOC
    timestamp: str = Time()


Bus = Dict[str, float]


class SatelliteSpec(Body):
    """One satellite of a session: a fleet file's entry (CONSTELLATION.md:
    satellite_id, name, role, orbit, bus), or a TLE instead of orbit."""
    satellite_id: str = Id()
    name: Optional[str] = Field(None, max_length=64)
    role: Optional[Literal["compute", "aggregator"]] = None
    orbit: Optional[OrbitElements] = None
    tle: Optional[Tle] = TLE_DOC
    bus: Optional[Bus] = Field(None, max_length=32)


class SessionBody(Body):
    """POST /v1/sessions: one satellite or a fleet (exactly one), the start
    time, the elements' epoch where an orbit gives none (default: start), and
    bus overrides for every satellite (a satellite's own bus wins)."""
    satellite: Optional[SatelliteSpec] = None
    fleet: Optional[List[SatelliteSpec]] = Field(None, min_length=1, max_length=MAX_FLEET)
    start: str = Time()
    epoch: Optional[str] = Time(None)
    bus: Optional[Bus] = Field(None, max_length=32)


class Load(Body):
    power_w: float = Field(ge=0, le=MAX_POWER_W)
    memory_mb: float = Field(0, ge=0, le=MAX_MEMORY_MB)


class StepBody(Body):
    """POST /v1/sessions/{id}/step: to a time (until) or by seconds (exactly
    one), with loads set at the step's start and kept until changed."""
    until: Optional[str] = Time(None)
    seconds: Optional[float] = Field(None, gt=0, le=MAX_STEP_S)
    loads: Optional[Dict[SatelliteId, Load]] = Field(None, max_length=MAX_FLEET)


StepLifecycle = Literal["Pending", "Executing", "Completed", "FailedOver"]


class AssignedStep(Body):
    state: StepLifecycle
    epoch: Optional[int] = Field(None, ge=0, le=2 ** 31)


class ConstellationState(Body):
    """A satellite's ConstellationState (CONSTELLATION.md)."""
    assigned_steps: Dict[StepKey, Union[StepLifecycle, AssignedStep]] = Field(
        default_factory=dict, max_length=MAX_STEPS_PER_DOC)
    active_transfers: List[Dict[str, Union[str, float, int, bool, None]]] = Field(
        default_factory=list, max_length=MAX_STEPS_PER_DOC)
    completed_steps: List[str] = Field(default_factory=list, max_length=MAX_STEPS_PER_DOC)
    failed_over_steps: List[str] = Field(default_factory=list, max_length=MAX_STEPS_PER_DOC)


class ConstellationBody(Body):
    """PUT /v1/sessions/{id}/constellation: every satellite's document (those
    left out have none afterwards)."""
    states: Dict[SatelliteId, ConstellationState] = Field(max_length=MAX_FLEET)


def body_schema(model):
    """A model's JSON Schema for the OpenAPI document. A map with constrained
    keys comes out of pydantic as patternProperties, which lets any other key
    through; here its keys are bound by propertyNames, as the model binds them."""
    def fix(node):
        if isinstance(node, dict):
            pattern = node.get("patternProperties")
            if isinstance(pattern, dict) and len(pattern) == 1:
                (regex, value), = pattern.items()
                del node["patternProperties"]
                node["additionalProperties"] = value
                node["propertyNames"] = dict(node.get("propertyNames") or {}, pattern=regex)
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)
        return node
    return fix(model_schema(model))
