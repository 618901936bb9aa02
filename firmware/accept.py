"""Taking a workload on board: screen it, then (once workload.check_on_board
has validated it and checked its signature, with this module out of the
heap) record the job in the journal and answer with job.accepted or
job.failed (the job's start is announced by announce.py). Functions of the
agent (`ag`), loaded by its poll task when a workload arrives, dropped right
after: a board holds none of this while it works."""
import timeutil

HAZARD_SUMMARY = ("hazards_count", "checkpoints_count", "next_hazard", "max_safe_window_s",
                  "overhead_fraction")
# the fields of the orbital primitives (STEPS.md) an executor needs
PRIM_KEYS = ("energy_budget_wh", "eclipse_policy", "min_battery_soc", "priority", "power_w",
             "quality_tiers", "min_tier", "preferred_tier", "window_kind", "merge_strategy",
             "max_segments", "min_pass_duration_s")
# the characters of a deployment id (as workload.py checks them): they end up in URL paths
ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:"


def uplink_now(ag, ground_before):
    """The time a signature's age is judged by. With a disciplined clock, the
    clock; in simulation (the agent's clock is not the ground's), the
    Console's time at the exchange *before* this one (never the reply's own,
    which a replayed reply would carry too); None when unknown."""
    if ag.cfg["time_sync"]:
        return ag.now()
    return ground_before


def screen(ag, spec, ground_before=None):
    """What to make of a polled workload before it is checked: None when
    there is nothing to take (a cancel, a re-delivery, busy, safe mode), else
    (deployment id, the time its signature is judged by)."""
    st = ag.journal.state
    if spec.get("clear_safe_mode") is True and st["mode"] == "safe":
        ag.leave_safe_mode()  # the ground has looked and cleared it
    if st["mode"] == "safe":
        return None  # telemetry and polling only: new work waits at the Console
    job = st["job"]
    cancel = spec.get("cancel")
    if isinstance(cancel, list) and job is not None and job["deployment_id"] in cancel:
        if not job.get("cancel"):
            ag.journal.commit([["jset", "cancel", True]])
    dep = spec.get("deployment_id")
    if dep is None and "plan_data" not in spec:
        return None  # a cancel-only reply
    if not _ident(dep):
        ag.stats["bad_workloads"] += 1
        return None  # nothing to answer to: no usable deployment to fail
    if (job is not None and job["deployment_id"] == dep) or dep in st["done"]:
        return None  # re-delivery of what we hold or finished
    if job is not None:
        return None  # busy: the Console keeps it dispatched for later
    return dep, uplink_now(ag, ground_before)


def take(ag, box, dep):
    """Record the checked workload and answer: job.accepted, or job.failed
    with the reason. box: [spec, verdict], emptied here so the spec can leave
    the heap once the job record is built (before it is encoded to flash).
    verdict: (workload, order, reason), or None when the check ran out of
    heap (the heap, not the job: the Console keeps it dispatched and hands it
    over at the next poll; refused only when it never fits)."""
    spec, verdict = box[0], box[1]
    del box[:]
    if verdict is None:
        tries = ag.memory_tries[1] + 1 if ag.memory_tries[0] == dep else 1
        ag.memory_tries = (dep, tries)
        if tries < ag.cfg["workload_memory_tries"]:
            return
        wl, order, reason = None, None, \
            "too_large: the job does not fit in this board's memory (%d tries)" % tries
    else:
        wl, order, reason = verdict
        verdict = None
    ctx = {"deployment_id": dep, "job_id": _job_id(spec, dep)}
    ag.empty_polls = 0
    if reason is not None:
        spec = wl = None
        ag.stats["bad_workloads"] += 1
        ag.emit("job.failed", payload={"total_duration_s": 0, "status": "failed",
                                         "reason": reason},
                  ops=[["end", dep]], job=ctx)
        return
    spec_job = wl["job"]
    wl = None
    plan = spec.get("plan_data")
    cst = None
    if isinstance(plan, dict) and plan.get("constellation") is not None:
        # one DAG across satellites: this one's part (firmware/constellation.py)
        from agent import _load, _unload
        cst, reason = _load("cstplan").record(
            plan["constellation"], ag.cfg["satellite_id"], [st["id"] for st in spec_job["steps"]])
        _unload("cstplan")
        if reason is None and ag.isl is None:  # it could never hear the others
            cst, reason = None, "unsupported: this satellite has no inter-satellite link " \
                                "for a constellation job"
        if reason is not None:
            spec = spec_job = plan = None
            ag.stats["bad_workloads"] += 1
            ag.emit("job.failed", payload={"total_duration_s": 0, "status": "failed",
                                             "reason": reason},
                      ops=[["end", dep]], job=ctx)
            return
    plan = None
    record = job_record(ag, spec, spec_job, order, ctx)
    if cst is not None:
        record["cst"] = cst
    ops = [["job", record]]
    auth = spec.get("auth")
    if isinstance(auth, dict) and auth.get("nonce"):
        ops.append(["nonce", auth["nonce"]])
    spec = spec_job = auth = None  # the record has what it needs: the spec goes
    payload = {"name": record["name"], "steps": len(record["steps"])}
    if record["security"]:
        payload["security"] = record["security"]
    try:
        ag.emit("job.accepted", payload=payload, ops=ops, job=ctx)
    except ValueError as exc:  # the store refuses a record this big: flash is small
        ag.stats["bad_workloads"] += 1
        ag.emit("job.failed", payload={"total_duration_s": 0, "status": "failed",
                                         "reason": "too_large: %s" % exc},
                  ops=[["end", dep]], job=ctx)


def job_record(ag, spec, job, order, ctx):
    plan = spec.get("plan_data") if isinstance(spec.get("plan_data"), dict) else {}
    placement = {}
    for d in plan.get("placement_decisions") or ():
        if isinstance(d, dict) and isinstance(d.get("step_id"), str):
            placement[d["step_id"]] = [d.get("location"), d.get("reason")]
    by_id = {}
    for step in job["steps"]:
        by_id[step["id"]] = step
    # (journal's own, through the agent's journal: bootup dropped the module
    # from sys.modules, and importing it again would load a second copy)
    defaults = ag.journal.step_defaults()
    steps = [workload_step(by_id[sid], placement, defaults) for sid in order]
    defaults = None
    env = plan.get("orbital_environment") if isinstance(plan.get("orbital_environment"), dict) else {}
    bus = env.get("bus") if isinstance(env.get("bus"), dict) else {}
    summary = plan.get("plan") if isinstance(plan.get("plan"), dict) else {}
    security = job.get("security") if isinstance(job.get("security"), dict) else {}
    haz = plan.get("hazards") if isinstance(plan.get("hazards"), dict) else {}
    hazards = {}
    for key in HAZARD_SUMMARY:
        hazards[key] = haz.get(key)
    windows = []
    for w in env.get("windows") or ():  # compact workloads carry them for primitives only
        try:
            windows.append([w["id"], w["kind"], timeutil.parse_iso(w["start"]),
                            timeutil.parse_iso(w["end"])])
        except (KeyError, TypeError, ValueError):
            continue
    return {"deployment_id": ctx["deployment_id"], "job_id": ctx["job_id"], "hazards": hazards,
            "windows": windows, "ledger": {},
            "battery_wh": _number(bus.get("battery_wh"), 80.0),
            "bus_load_w": _number(bus.get("bus_load_w"), 8.0),
            "memory_mb": _number(bus.get("memory_mb"), 512.0),
            "plan_id": spec.get("plan_id"), "name": job.get("name") or ctx["job_id"],
            "steps": steps, "phase": "accepted", "accepted_at": ag.now(),
            "security": security.get("encryption") if security.get("encryption") not in (None, "none") else None,
            "downlink_mbps": _number(bus.get("downlink_mbps"), ag.cfg["downlink_mbps"]),
            "compute_w": _number(bus.get("compute_w"), 20.0),
            "plan_segments": _number(summary.get("segments"), 0),
            "plan_windows": _number(summary.get("windows_used"), 0),
            "plan_total_s": _number(summary.get("total_duration_s"), 0),
            "cancel": False}


def workload_step(step, placement, defaults):
    """The fields the executor needs, with the plan's placement, as the job
    record on flash holds them: a field at its default (journal.step_defaults)
    is left out, and journal.apply puts it back in RAM. A job of 50 steps
    then fits one record (journal.MAX_RECORD)."""
    loc, reason = placement.get(step["id"], (None, None))
    location = step.get("location", "onboard")
    if loc in ("onboard", "ground"):
        location = loc
    elif location == "either":
        location = "onboard"
        reason = reason or "data_reduction"
    out = {"id": step["id"], "type": step.get("type", "standard"), "location": location,
           "reason": reason or "preset_defined", "compute_s": float(step.get("compute_s", 0)),
           "output_mb": float(step.get("output_mb", 0)), "power_w": step.get("power_w"),
           "memory_mb": step.get("memory_mb") or 0,
           "checkpoint_interval_s": step.get("checkpoint_interval_s") or 0,
           "depends_on": list(step.get("depends_on") or ()),
           "retry_policy": step.get("retry_policy", "retry_immediate"),
           "max_retries": step.get("max_retries", 1), "handler": step.get("handler", "synthetic"),
           "input": step.get("input"), "params": step.get("params"),
           "prim": _prim(step)}
    for key, default in defaults:
        value = out[key]
        if value == default and type(value) is type(default) or \
                key == "depends_on" and not value:
            del out[key]
    return out


def _prim(step):
    if step.get("type", "standard") == "standard":
        return None
    p = {}
    for key in PRIM_KEYS:
        if key in step:
            p[key] = step[key]
    return p


def _ident(value):
    if not isinstance(value, str) or not (0 < len(value) <= 128):
        return False
    for ch in value:
        if ch not in ID_CHARS:
            return False
    return True


def _job_id(spec, dep):
    plan_id = spec.get("plan_id")
    return plan_id if isinstance(plan_id, str) and plan_id else dep


def _number(value, default):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return default
