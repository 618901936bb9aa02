"""Every tunable of the agent in one place, with its unit, limits and how it
relates to the others (after NASA cFS's default_hs_internal_cfg.h).

An agent's config is built by `agentconfig.make(overrides)`, which loads this
module for that and drops it again (the defaults need not stay in RAM).
Unknown keys are refused, so a typo in a board's config file is an error at
boot, not a silent default.
"""

DEFAULTS = {
    # identity and link (strings; api_url like http://host:port)
    "agent_id": "sat-unknown",
    "satellite_id": "unknown",
    "satellite_name": None,
    "api_url": "http://127.0.0.1:8080",
    "api_key": "",
    "uplink_key": None,            # hex/str HMAC key; None = unsigned uplink accepted
    "orbit_altitude_km": None,
    # transport: "http" (api_url) or "serial" (a UART / pty behind a radio; the
    # ground end is `umbra bridge`, which holds the Console URL)
    "transport": "http",
    "serial_port": None,           # UART id (board) or tty/pty path (unix port)
    "serial_baud": 115200,
    "serial_timeout_ms": 1500,     # per try; (retries+1) x 2 x this must stay < task_deadline_ms
    "serial_retries": 1,
    "serial_compact": False,       # offer the compact encoding (firmware/compact.py) at hello;
                                   # used only if the bridge takes it: ~47 B/event, not ~280
    # task periods (s). poll >= 10 and telemetry >= 30 are the Console's rate limits.
    "poll_interval_s": 10,
    "telemetry_interval_s": 30,
    "report_interval_s": 5,        # how often the outbox is offered to the link
    "report_batch": 20,            # events per batch request (a batch counts once; RAM bound)
    "report_batch_bytes": 2048,    # ... and JSON bytes: one contiguous block in a fragmented heap
    "report_refusals": 4,          # >= 1: a batch the Console refuses (4xx) this often in a row
                                   # moves to the dead letters (firmware/deadletter.py)
    # I/O bounds (ms): each must stay well below watchdog_timeout_ms
    "http_timeout_ms": 3000,
    # watchdog (ms): > every task deadline below; 8 s is the most some boards allow
    "watchdog_timeout_ms": 8000,
    "task_deadline_ms": 6000,      # every task checks in at least this often
    "slice_s": 5,                  # longest uninterrupted compute slice (< task_deadline)
    # gates with hysteresis (SPEC: STEPS.md "Execution of standard onboard steps")
    "battery_stop_pct": 15.0,      # pause below; also compute capacity 0 below this
    "battery_resume_pct": 20.0,    # resume at or above (> battery_stop_pct)
    "battery_full_compute_pct": 30.0,  # capacity 1.0 at or above, 0.5 below
    # a reading this close above a threshold counts as below it: a bus held at
    # its threshold by its own load (compute on, drain; compute off, charge) has
    # no compute to give, whatever the last digit says
    "battery_margin_pct": 0.05,
    "temp_stop_c": 75.0,           # pause above
    "temp_resume_c": 70.0,         # resume at or below (< temp_stop_c)
    # recovery (RELIABILITY.md)
    "scrub_interval_s": 10,        # TMR scrub of critical RAM state
    "scrub_interval_saa_s": 2,     # ... inside the South Atlantic Anomaly
    "quarantine_resets": 3,        # a step causing this many resets in a row fails
    # a crashed task is restarted after a backoff that doubles from the first to the
    # most; this many crashes inside the window escalate to a reset (>= 1 each)
    "task_restart_backoff_ms": 1000,
    "task_restart_max_backoff_ms": 30000,   # >= task_restart_backoff_ms
    "task_crashes_before_reset": 5,
    "task_crash_window_ms": 600000,
    "safe_mode_resets": 5,         # unexplained resets in a row at boot -> safe mode
    "stable_after_s": 300,         # up this long: the unexplained-reset count clears
    # uplink security
    "replay_window_s": 600,        # a signed workload older than this is stale
    "workload_memory_tries": 3,    # polls a workload may not fit the heap before it is
                                   # refused too_large (>= 1; the heap may free up)
    "data_key": None,              # hex AES-128/256 key for encrypted outputs
    # window steps: RAM the payload computer uses with no step running (MB); the
    # plan's bus gives the total (sim/models.py memory_base_mb, the same figure)
    "memory_base_mb": 64.0,
    # transfers
    "downlink_mbps": 10.0,         # default when the plan does not state the bus rate
    "transfer_chunk_s": 5,         # progress granularity of a downlink (s)
    # storage (bytes): the journal compacts past this; flash is small
    "max_log_bytes": 16384,
    "storage_root": None,          # folder of the journal; None = the board's flash root
    "telemetry_queue": 10,         # telemetry reports kept while the link is down (oldest thinned first)
    # the outbox (bytes per copy of lib/spool.py on flash; docs/recovery.md "A full outbox")
    "outbox_bytes": 98304,         # 16384..1048576: the events waiting for the ground
    "outbox_reserve_bytes": 8192,  # >= 2048: kept for boot and health events; work never uses it
    "outbox_pause_bytes": 8192,    # >= 2048: with less than reserve + this free, the running step
                                   # pauses at its next checkpoint (step.paused outbox_full), no
                                   # new work starts; it resumes at reserve + 2 x this free
    "dead_letter_bytes": 16384,    # >= 4096: refused events kept for the ground (a full store
                                   # leaves the refused batch in the outbox: nothing is dropped)
    "dead_letter_retry_s": 600,    # a Console that did not take the dead letters is asked again
    # clock: discipline the clock from the Console's server_time (off in simulation,
    # where the simulated clock is the truth and the Console's clock is unrelated)
    "time_sync": True,
    "debug": False,                # print task crashes with their traceback
}


def make(overrides=None):
    cfg = dict(DEFAULTS)
    if overrides:
        for key in overrides:
            if key not in DEFAULTS:
                raise ValueError("unknown config key: %s" % key)
            cfg[key] = overrides[key]
    if cfg["battery_resume_pct"] <= cfg["battery_stop_pct"]:
        raise ValueError("battery_resume_pct must exceed battery_stop_pct")
    if cfg["temp_resume_c"] >= cfg["temp_stop_c"]:
        raise ValueError("temp_resume_c must be below temp_stop_c")
    if cfg["task_deadline_ms"] >= cfg["watchdog_timeout_ms"]:
        raise ValueError("task_deadline_ms must be below watchdog_timeout_ms")
    if cfg["slice_s"] * 1000 >= cfg["task_deadline_ms"]:
        raise ValueError("slice_s must be below task_deadline_ms")
    if cfg["transport"] not in ("http", "serial"):
        raise ValueError("transport must be http or serial")
    if cfg["transport"] == "serial" and cfg["serial_port"] is None:
        raise ValueError("transport serial needs serial_port")
    r, p, n = cfg["outbox_reserve_bytes"], cfg["outbox_pause_bytes"], cfg["outbox_bytes"]
    if not (16384 <= n <= 1048576 and r >= 2048 and p >= 2048 and r + 2 * p <= n // 2):
        raise ValueError("outbox: bytes 16384..1048576, reserve and pause >= 2048, reserve + 2 x pause <= bytes / 2")
    if cfg["task_restart_max_backoff_ms"] < cfg["task_restart_backoff_ms"] or \
            min(cfg["task_restart_backoff_ms"], cfg["task_crashes_before_reset"],
                cfg["task_crash_window_ms"], cfg["workload_memory_tries"], cfg["report_refusals"]) < 1:
        raise ValueError("task restart, workload tries, report refusals: each >= 1, max backoff >= backoff")
    if cfg["dead_letter_bytes"] < 4096:
        raise ValueError("dead_letter_bytes must be >= 4096")
    if cfg["poll_interval_s"] < 10:
        raise ValueError("poll_interval_s must be >= 10 (Console rate limit)")
    return cfg
