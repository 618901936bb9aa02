"""What the Console needs of the event catalog beyond what the agent carries.

The catalog itself (SPEC, payload fields) is firmware/events.py, defined
once; the agent loads only what it emits with (make, check_payload,
fields, is_enriched). Validating incoming envelopes, listing the types and
mapping terminal events to a deployment status happen on the ground only,
so they live here and cost a board nothing.
"""
import events

# Events that end a job, and the deployment status each one implies.
TERMINAL = {"job.completed": "completed", "job.failed": "failed"}

# Constellation events that carry the step's ownership epoch (payload
# `epoch`, an integer >= 1; CONSTELLATION.md fencing; tools/console/constellations.py).
EPOCH_TYPES = ("constellation.step_started", "constellation.step_completed",
               "constellation.failover_acknowledged")

# Types of the public protocol v0.1.0 that our catalog does not have (its pass
# steps report start and end where ours report segments). Accepted from v0.1.0
# peers only; EVENTS.md, "v0.1.0 payloads".
V010_ONLY_TYPES = ("pass_step.started", "pass_step.completed")


def types():
    """Every event type, in catalog order."""
    return [line.split()[0] for line in events.SPEC.split("\n") if line]


def check(event, strict=True):
    """Validate an incoming event envelope; None if fine, else the problem.
    strict (an Umbra-aware sender): the payload's fields are checked against
    the catalog; otherwise (a v0.1.0 peer) the type must be known to our
    catalog or v0.1.0's and the payload be an object, whatever its fields."""
    if not isinstance(event, dict):
        return "event must be a JSON object"
    etype = event.get("type")
    if not isinstance(etype, str):
        return "event lacks a string 'type'"
    if not isinstance(event.get("timestamp"), str):
        return "event lacks a string 'timestamp'"
    job_id = event.get("job_id")
    if job_id is not None and not isinstance(job_id, str):
        return "'job_id' must be a string"
    step_id = event.get("step_id")
    if step_id is not None and not isinstance(step_id, str):
        return "'step_id' must be a string or null"
    seq = event.get("seq")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 0):
        return "'seq' must be a non-negative integer"
    payload = event.get("payload", {})
    if isinstance(payload, dict) and "epoch" in payload and etype in EPOCH_TYPES:
        e = payload["epoch"]
        if not isinstance(e, int) or isinstance(e, bool) or not 1 <= e <= 2 ** 31:
            return "payload 'epoch' (the step's ownership epoch) must be an integer >= 1"
    if strict:
        return events.check_payload(etype, payload)
    if etype not in V010_ONLY_TYPES and events.fields(etype) is None:
        return "unknown event type %r" % etype
    if not isinstance(event.get("payload", {}), dict):
        return "'payload' must be an object"
    return None
