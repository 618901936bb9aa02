"""The event catalog (spec/EVENTS.md), defined once.

The agent emits these, the planner predicts them, the Console validates and
stores them (its envelope check, the type list and the terminal events are
tools/console/eventcheck.py: a board never loads them). SPEC lists each type with its payload fields; a name ending in '?' is
optional. An unknown type is a bug.
"""

# One line per type: the type, then its payload fields ('?' = optional).
# Kept as one string, not a dict of tuples: on a board that is one object in
# RAM instead of a few hundred (the whole catalog costs ~3 KB, not ~19 KB).
SPEC = """
job.accepted name steps security? category?
placement.decided location reason
plan.created segments windows_used total_duration_s
job.completed total_duration_s status delivery_confidence?
job.failed total_duration_s status reason
step.started location window window_label
step.progress percent
step.paused reason progress_fraction
step.resumed progress_fraction paused_s
step.completed duration_s location data_output_mb
transfer.started direction raw_data_mb total_transfer_mb fec_scheme?
transfer.pass_started ground_station station_name elevation_peak_deg
transfer.progress data_transferred_mb total_mb
transfer.pass_completed data_transferred_mb ground_station
transfer.completed total_transferred_mb duration_s
transfer.retransmission blocks_retransmitted ber
checkpoint.saved checkpoint_number progress_fraction
checkpoint.predicted hazards_count checkpoints_count next_hazard max_safe_window_s overhead_fraction hazards checkpoint_schedule
security.encrypted algorithm data_mb
security.key_exchange duration_s encryption
eclipse_step.scheduled window energy_budget_wh eclipse_policy
eclipse_step.energy_check needed_wh allowed_wh battery_percent ok
eclipse_step.started energy_budget_wh eclipse_policy battery_percent
eclipse_step.completed energy_consumed_wh battery_percent
eclipse_step.deferred reason needed_wh allowed_wh next_window?
window_step.tier_selected tier available_s compute_s
window_step.started tier
window_step.degraded from_tier to_tier reason
window_step.upgraded from_tier to_tier reason
window_step.completed tier output_mb
window_step.deferred reason next_window?
pass_step.decomposed segments passes
pass_step.segment_started segment_index segments_total pass_id
pass_step.segment_completed segment_index segments_total output_mb
pass_step.merged merge_strategy segments output_mb
constellation.step_assigned step_id satellite_id dependencies
constellation.step_started step_id satellite_id
constellation.step_completed step_id duration_s data_output_mb
constellation.failover step_id from_satellite reason
constellation.failover_acknowledged step_id to_satellite
constellation.satellite_complete satellite_id steps_completed steps_failed_over
isl_transfer.started from to data_mb hop_count
isl_transfer.hop_completed from to hop_index quality latency_ms
isl_transfer.completed from to total_duration_s data_mb
isl_transfer.quality_report avg_quality min_quality total_latency_ms effective_bandwidth_mbps
agent.booted reset_cause boot_count firmware_version mode
fault.detected kind detail
fault.recovered kind action
agent.safe_mode reason
"""

# Events the agent enriches with the spacecraft state (EVENTS.md "Enrichment"):
# the part of their type before the dot. Identifiers, so interned names, not
# strings of their own in a node's heap.
ENRICHED_KINDS = ("eclipse_step", "window_step", "pass_step", "constellation", "isl_transfer")


def is_enriched(event_type):
    dot = event_type.find(".")
    return dot > 0 and event_type[:dot] in ENRICHED_KINDS


def fields(event_type):
    """The payload fields of a type (a tuple; '?' marks optional), or None if unknown."""
    if " " in event_type or "\n" in event_type:
        return None
    i = SPEC.find("\n" + event_type + " ")
    if i < 0:
        return None
    j = SPEC.find("\n", i + 1)
    return tuple(SPEC[i + 1:j].split()[1:])


def make(event_type, timestamp, job_id, step_id=None, payload=None, **extra):
    """Build an event envelope. Raises ValueError for an unknown type or a
    missing required payload field (a programming error, caught in tests)."""
    payload = payload or {}
    problem = check_payload(event_type, payload)
    if problem:
        raise ValueError(problem)
    ev = {"type": event_type, "timestamp": timestamp, "job_id": job_id,
          "step_id": step_id, "payload": payload}
    for key in extra:
        ev[key] = extra[key]
    return ev


def check_payload(event_type, payload):
    """None when the payload has every required field, else the problem."""
    spec = fields(event_type) if isinstance(event_type, str) else None
    if spec is None:
        return "unknown event type %r" % (event_type,)
    if not isinstance(payload, dict):
        return "payload of %s must be an object" % event_type
    for f in spec:
        if not f.endswith("?") and f not in payload:
            return "%s payload lacks %r" % (event_type, f)
    return None

