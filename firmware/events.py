"""The event catalog (spec/EVENTS.md), defined once.

The agent emits these, the planner predicts them, the Console validates and
stores them (its envelope check, the type list and the terminal events are
tools/console/eventcheck.py: a board never loads them). SPEC lists each type with its payload fields; a name ending in '?' is
optional. An unknown type is a bug.
"""

# One line per type: the type, then its payload fields ('?' = optional). A
# number field says after ':' the decimals it needs (the precision the agent
# rounds it to when it makes the event, or its meaning needs): the compact
# link (firmware/compact.py) sends such a value as an integer at that scale,
# and any value finer than that whole (nothing is ever rounded on the way).
# Kept as one string, not a dict of tuples: on a board that is one object in
# RAM instead of a few hundred (the whole catalog costs ~3 KB, not ~19 KB).
SPEC = """
job.accepted name steps security? category?
placement.decided location reason
plan.created segments windows_used total_duration_s
job.completed total_duration_s:1 status delivery_confidence?:4
job.failed total_duration_s:1 status reason
step.started location window window_label
step.progress percent
step.paused reason progress_fraction:4
step.resumed progress_fraction:4 paused_s:1
step.completed duration_s:1 location data_output_mb:4
transfer.started direction raw_data_mb:4 total_transfer_mb:4 fec_scheme?
transfer.pass_started ground_station station_name elevation_peak_deg:2
transfer.progress data_transferred_mb:4 total_mb:4
transfer.pass_completed data_transferred_mb:4 ground_station
transfer.completed total_transferred_mb:4 duration_s:1
transfer.retransmission blocks_retransmitted ber
checkpoint.saved checkpoint_number progress_fraction:4
checkpoint.predicted hazards_count checkpoints_count next_hazard max_safe_window_s:1 overhead_fraction:6 hazards checkpoint_schedule
security.encrypted algorithm data_mb:4
security.key_exchange duration_s encryption
eclipse_step.scheduled window energy_budget_wh:4 eclipse_policy
eclipse_step.energy_check needed_wh:4 allowed_wh:4 battery_percent:4 ok
eclipse_step.started energy_budget_wh:4 eclipse_policy battery_percent:4
eclipse_step.completed energy_consumed_wh:4 battery_percent:4
eclipse_step.deferred reason needed_wh:4 allowed_wh:4 next_window?
window_step.tier_selected tier available_s:1 compute_s:1
window_step.started tier
window_step.degraded from_tier to_tier reason
window_step.upgraded from_tier to_tier reason
window_step.completed tier output_mb:4
window_step.deferred reason next_window?
pass_step.decomposed segments passes
pass_step.segment_started segment_index segments_total pass_id
pass_step.segment_completed segment_index segments_total output_mb:4
pass_step.merged merge_strategy segments output_mb:4
constellation.step_assigned step_id satellite_id dependencies
constellation.step_started step_id satellite_id
constellation.step_completed step_id duration_s:1 data_output_mb:4
constellation.failover step_id from_satellite reason
constellation.failover_acknowledged step_id to_satellite
constellation.satellite_complete satellite_id steps_completed steps_failed_over
isl_transfer.started from to data_mb:4 hop_count
isl_transfer.hop_completed from to hop_index quality:3 latency_ms:3
isl_transfer.completed from to total_duration_s:3 data_mb:4
isl_transfer.quality_report avg_quality:3 min_quality:3 total_latency_ms:3 effective_bandwidth_mbps:3
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
    out = SPEC[i + 1:j].split()[1:]
    for k in range(len(out)):  # the names without their decimals ('duration_s:1')
        c = out[k].find(":")
        if c > 0:
            out[k] = out[k][:c]
    return tuple(out)


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

