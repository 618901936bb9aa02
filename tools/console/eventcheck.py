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


def types():
    """Every event type, in catalog order."""
    return [line.split()[0] for line in events.SPEC.split("\n") if line]


def check(event):
    """Validate an incoming event envelope; None if fine, else the problem."""
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
    return events.check_payload(etype, event.get("payload", {}))
