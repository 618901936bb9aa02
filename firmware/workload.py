"""Validation of a WorkloadSpec received by the agent (PROTOCOL.md, poll reply)
and of its job (STEPS.md). Nothing from outside is trusted: every function
here returns a reason instead of raising.

    validate_workload(spec)          -> (workload, reason)  envelope + job
    validate_job(job, handler_names) -> (job, reason)       a normalised copy of the job
    topo_order(steps)                -> (ids, reason)       dependency order
    check_on_board(spec, cfg, now, nonces) -> (workload, order, reason)  the agent's check

The reply text's caps and the signature are in firmware/uplink.py (loaded
only for a signed spec, or by a caller that parses text).

A reason is "<code>: <detail>", code one of the names below (REASON_CODES),
e.g. "unknown_dependency: steps[2] 'pack' depends on unknown step 'zip'".
The agent reports it in job.failed {reason} and carries on.

Normalisation (the input is never modified): aliases duration_s -> compute_s
and output_data_mb -> output_mb; defaults type standard, location onboard,
retry_policy retry_immediate, max_retries 1, handler synthetic, depends_on
[], eclipse_policy balanced, priority 0, min_tier minimal, preferred_tier
the highest tier given, window_kind sunlit, merge_strategy concat,
min_pass_duration_s 0. Fields we do not know are kept (additive extensions).
"""
import json

# ---------------------------------------------------------------- limits (units in names)
MAX_NAME = 256                # job and step names
MAX_ID = 64                   # step ids (also output file names), plan/deployment ids x2
MAX_STEPS = 64
MAX_COMPUTE_S = 30 * 86400    # compute_s, checkpoint_interval_s: 30 days
MAX_DATA_MB = 100000.0        # output_mb, input_mb: 100 GB
MAX_MEMORY_MB = 1000000.0
MAX_POWER_W = 10000.0
MAX_ENERGY_WH = 100000.0
MAX_RETRIES = 10
MAX_SEGMENTS = 1000
MAX_PASS_S = 86400.0          # min_pass_duration_s
MAX_DEADLINE_ORBITS = 1000


# ---------------------------------------------------------------- vocabularies (STEPS.md)
# The names in handlers.MODULE_OF (a test keeps the two equal): validating a job
# must not load the handlers themselves into a small heap.
HANDLER_NAMES = ("synthetic", "compress", "sha256", "crc32", "stats", "encrypt")
STEP_TYPES = ("standard", "eclipse", "window", "pass")
LOCATIONS = ("onboard", "ground", "either")
RETRY_POLICIES = ("fail", "retry_next_window", "retry_immediate")
ECLIPSE_POLICIES = ("conservative", "balanced", "aggressive")
TIERS = ("minimal", "standard", "enhanced", "maximum")   # low to high
WINDOW_KINDS = ("sunlit", "eclipse", "contact")
MERGE_STRATEGIES = ("concat", "reduce", "latest")
OBJECTIVES = ("balanced", "max_reliability", "min_latency", "min_energy")
ENCRYPTIONS = ("none", "aes128", "aes256")

REASON_CODES = ("not_json", "not_object", "too_large", "too_deep", "missing_field",
                "bad_field", "too_many_steps", "unknown_step_type", "unknown_location",
                "duplicate_step_id", "unknown_dependency", "dependency_cycle",
                "unknown_handler", "unauthenticated")

_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:"
_INF = float("inf")


class Invalid(Exception):
    """Internal: carries a reason string out of the nested checks."""


# ---------------------------------------------------------------- small checks

def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v \
        and v not in (_INF, -_INF)


def _num(obj, key, where, lo, hi, default=None, required=False):
    """obj[key] as a number in lo..hi; default when absent (None = stays absent)."""
    if key not in obj or obj[key] is None:
        if required:
            raise Invalid("missing_field: %s.%s" % (where, key))
        return default
    v = obj[key]
    if not _is_num(v) or not lo <= v <= hi:
        raise Invalid("bad_field: %s.%s must be a number in %s..%s, not %s"
                      % (where, key, lo, hi, _show(v)))
    return v


def _int(obj, key, where, lo, hi, default=None):
    if key not in obj or obj[key] is None:
        return default
    v = obj[key]
    if isinstance(v, float) and v == int(v):
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise Invalid("bad_field: %s.%s must be an integer in %d..%d, not %s"
                      % (where, key, lo, hi, _show(v)))
    return v


def _choice(obj, key, where, allowed, default, code="bad_field"):
    if key not in obj or obj[key] is None:
        return default
    v = obj[key]
    if not isinstance(v, str) or v not in allowed:
        raise Invalid("%s: %s.%s must be one of %s, not %s"
                      % (code, where, key, "|".join(allowed), _show(v)))
    return v


def _str(obj, key, where, max_len, default=None, required=False):
    if key not in obj or obj[key] is None:
        if required:
            raise Invalid("missing_field: %s.%s" % (where, key))
        return default
    v = obj[key]
    if not isinstance(v, str) or len(v) > max_len:
        raise Invalid("bad_field: %s.%s must be a string of at most %d characters"
                      % (where, key, max_len))
    return v


def _ident(obj, key, where, max_len, required=True):
    v = _str(obj, key, where, max_len, required=required)
    if v is None:
        return None
    if not v or v in (".", "..") or any(c not in _ID_CHARS for c in v):
        raise Invalid("bad_field: %s.%s must be 1..%d of [A-Za-z0-9_.:-], not %s"
                      % (where, key, max_len, _show(v)))
    return v


def _dict(obj, key, where, required=False):
    if key not in obj or obj[key] is None:
        if required:
            raise Invalid("missing_field: %s.%s" % (where, key))
        return None
    v = obj[key]
    if not isinstance(v, dict):
        raise Invalid("bad_field: %s.%s must be an object" % (where, key))
    return v


def _show(v):
    text = json.dumps(v) if isinstance(v, (str, int, float, bool)) or v is None else type(v).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def find_job(spec):
    """The job inside a spec: plan_data.job, plan_data.custom_job, or plan_data
    itself when it has steps. None if there is none."""
    plan = spec.get("plan_data") if isinstance(spec, dict) else None
    if not isinstance(plan, dict):
        return None
    for key in ("job", "custom_job"):
        if isinstance(plan.get(key), dict):
            return plan[key]
    if "steps" in plan:
        return plan
    return None


# ---------------------------------------------------------------- validate

def validate_workload(spec, handler_names=None):
    """A parsed spec -> (workload, reason). workload = {plan_id, deployment_id,
    satellite_id, job (normalised), events, plan_data, cancel?}."""
    try:
        if not isinstance(spec, dict):
            raise Invalid("not_object: spec must be a JSON object")
        where = "spec"
        plan_id = _ident(spec, "plan_id", where, 2 * MAX_ID)
        deployment_id = _ident(spec, "deployment_id", where, 2 * MAX_ID)
        sat = spec.get("satellite_id")
        if isinstance(sat, int) and not isinstance(sat, bool):
            sat = str(sat)
        if not isinstance(sat, str) or not sat or len(sat) > MAX_ID:
            raise Invalid("missing_field: spec.satellite_id" if sat is None
                          else "bad_field: spec.satellite_id must be a short string")
        plan = _dict(spec, "plan_data", where, required=True)
        events = spec.get("events")
        if events is None:
            events = []
        if not isinstance(events, list) or any(not isinstance(e, dict) for e in events):
            raise Invalid("bad_field: spec.events must be an array of event objects")
        if "auth" in spec and spec["auth"] is not None and not isinstance(spec["auth"], dict):
            raise Invalid("bad_field: spec.auth must be an object")
        job = find_job(spec)
        if job is None:
            raise Invalid("missing_field: spec.plan_data.job (the plan's job with its steps)")
        job, reason = validate_job(job, handler_names)
        if reason:
            return None, reason
        out = {"plan_id": plan_id, "deployment_id": deployment_id, "satellite_id": sat,
               "job": job, "events": events, "plan_data": plan}
        if spec.get("cancel") is not None:
            out["cancel"] = spec["cancel"]
        return out, None
    except Invalid as exc:
        return None, exc.args[0]


def validate_job(job, handler_names=None):
    """A job -> (normalised copy, reason). handler_names: the names the firmware
    can run (default: handlers.MODULE_OF)."""
    try:
        return _job(job, handler_names if handler_names is not None else HANDLER_NAMES), None
    except Invalid as exc:
        return None, exc.args[0]
    except RuntimeError:  # recursion
        return None, "too_large: job too big to validate"
    # A MemoryError goes to the caller: it is the heap's state, not the job's
    # (the agent tries again a few times before it refuses the job).


def _job(job, names):
    if not isinstance(job, dict):
        raise Invalid("not_object: job must be an object")
    out = dict(job)
    out["name"] = _str(job, "name", "job", MAX_NAME, default="")
    steps = job.get("steps")
    if steps is None:
        raise Invalid("missing_field: job.steps")
    if not isinstance(steps, list) or not steps:
        raise Invalid("bad_field: job.steps must be a non-empty array")
    if len(steps) > MAX_STEPS:
        raise Invalid("too_many_steps: %d steps, at most %d" % (len(steps), MAX_STEPS))
    policy = _dict(job, "policy", "job")
    if policy is not None:
        p = dict(policy)
        p["objective"] = _choice(policy, "objective", "job.policy", OBJECTIVES, "balanced")
        d = _num(policy, "deadline_orbits", "job.policy", 0, MAX_DEADLINE_ORBITS)
        if d is not None:
            if d <= 0:
                raise Invalid("bad_field: job.policy.deadline_orbits must be above 0")
            p["deadline_orbits"] = d
        out["policy"] = p
    security = _dict(job, "security", "job")
    if security is not None:
        s = dict(security)
        s["encryption"] = _choice(security, "encryption", "job.security", ENCRYPTIONS, "none")
        req = security.get("require_authenticated_uplink", False)
        if not isinstance(req, bool):
            raise Invalid("bad_field: job.security.require_authenticated_uplink must be true or false")
        s["require_authenticated_uplink"] = req
        out["security"] = s
    out["steps"] = [_step(step, i, names) for i, step in enumerate(steps)]
    seen = {}
    for i, step in enumerate(out["steps"]):
        if step["id"] in seen:
            raise Invalid("duplicate_step_id: steps[%d] and steps[%d] are both %s"
                          % (seen[step["id"]], i, _show(step["id"])))
        seen[step["id"]] = i
    for i, step in enumerate(out["steps"]):
        for dep in step["depends_on"]:
            if dep not in seen:
                raise Invalid("unknown_dependency: steps[%d] %s depends on unknown step %s"
                              % (i, _show(step["id"]), _show(dep)))
    _, reason = topo_order(out["steps"])
    if reason:
        raise Invalid(reason)
    return out


def _step(step, i, names):
    where = "steps[%d]" % i
    if not isinstance(step, dict):
        raise Invalid("bad_field: %s must be an object" % where)
    out = dict(step)
    out.pop("duration_s", None)
    out.pop("output_data_mb", None)
    sid = _ident(step, "id", where, MAX_ID)
    out["id"] = sid
    where = "steps[%d] %s" % (i, _show(sid))
    if "name" in step:
        out["name"] = _str(step, "name", where, MAX_NAME)
    kind = _choice(step, "type", where, STEP_TYPES, "standard", "unknown_step_type")
    out["type"] = kind
    out["location"] = _choice(step, "location", where, LOCATIONS, "onboard", "unknown_location")
    key = "compute_s" if step.get("compute_s") is not None else "duration_s"
    compute = _num(step, key, where, 0, MAX_COMPUTE_S, default=None if kind == "window" else 0)
    if compute is not None:
        out["compute_s"] = compute
    key = "output_mb" if step.get("output_mb") is not None else "output_data_mb"
    out["output_mb"] = _num(step, key, where, 0, MAX_DATA_MB, default=0)
    for key, hi in (("input_mb", MAX_DATA_MB), ("memory_mb", MAX_MEMORY_MB),
                    ("power_w", MAX_POWER_W), ("checkpoint_interval_s", MAX_COMPUTE_S)):
        v = _num(step, key, where, 0, hi)
        if v is not None:
            out[key] = v
    deps = step.get("depends_on")
    if deps is None:
        deps = []
    if not isinstance(deps, list) or len(deps) > MAX_STEPS:
        raise Invalid("bad_field: %s.depends_on must be an array of at most %d step ids"
                      % (where, MAX_STEPS))
    unique = []
    for dep in deps:
        if not isinstance(dep, str) or len(dep) > MAX_ID:
            raise Invalid("bad_field: %s.depends_on must hold step ids" % where)
        if dep not in unique:
            unique.append(dep)
    out["depends_on"] = unique
    out["retry_policy"] = _choice(step, "retry_policy", where, RETRY_POLICIES, "retry_immediate")
    out["max_retries"] = _int(step, "max_retries", where, 0, MAX_RETRIES, default=1)
    handler = step.get("handler")
    if handler is None:
        handler = "synthetic"
    if not isinstance(handler, str) or handler not in names:
        raise Invalid("unknown_handler: %s.handler %s is not one of %s"
                      % (where, _show(handler), "|".join(sorted(names))))
    out["handler"] = handler
    if "input" in step and step["input"] is not None:
        _check_input(step["input"], where)
    if kind == "eclipse":
        _eclipse(step, out, where)
    elif kind == "window":
        _window(step, out, where)
    elif kind == "pass":
        _pass(step, out, where)
    return out


def _check_input(value, where):
    path = value.get("path") if isinstance(value, dict) else value
    if isinstance(value, dict) and "path" not in value:
        return  # inline data; the handler checks its shape
    if not isinstance(path, str) or not path or path[0] == "/" or ".." in path.split("/"):
        raise Invalid("bad_field: %s.input must be a path relative to the data root, not %s"
                      % (where, _show(path)))


def _eclipse(step, out, where):
    v = _num(step, "energy_budget_wh", where, 0, MAX_ENERGY_WH)
    if v is not None:
        out["energy_budget_wh"] = v
    out["eclipse_policy"] = _choice(step, "eclipse_policy", where, ECLIPSE_POLICIES, "balanced")
    v = _num(step, "min_battery_soc", where, 0, 1)
    if v is not None:
        out["min_battery_soc"] = v
    out["priority"] = _num(step, "priority", where, -1000000, 1000000, default=0)


def _window(step, out, where):
    tiers = _dict(step, "quality_tiers", where, required=True)
    if not tiers:
        raise Invalid("bad_field: %s.quality_tiers must name at least one tier" % where)
    norm = {}
    for name in tiers:
        if name not in TIERS:
            raise Invalid("bad_field: %s.quality_tiers has unknown tier %s (tiers: %s)"
                          % (where, _show(name), "|".join(TIERS)))
        tier = tiers[name]
        tw = "%s.quality_tiers.%s" % (where, name)
        if not isinstance(tier, dict):
            raise Invalid("bad_field: %s must be an object" % tw)
        t = dict(tier)
        t["compute_s"] = _num(tier, "compute_s", tw, 0, MAX_COMPUTE_S, required=True)
        t["memory_mb"] = _num(tier, "memory_mb", tw, 0, MAX_MEMORY_MB, default=0)
        t["output_mb"] = _num(tier, "output_mb", tw, 0, MAX_DATA_MB, default=0)
        norm[name] = t
    out["quality_tiers"] = norm
    highest = [t for t in TIERS if t in norm][-1]
    lo = _choice(step, "min_tier", where, TIERS, "minimal")
    hi = _choice(step, "preferred_tier", where, TIERS, highest)
    lo_i, hi_i = TIERS.index(lo), TIERS.index(hi)
    if lo_i > hi_i:
        raise Invalid("bad_field: %s.min_tier %s is above preferred_tier %s" % (where, lo, hi))
    if not any(lo_i <= TIERS.index(t) <= hi_i for t in norm):
        raise Invalid("bad_field: %s.quality_tiers has no tier between %s and %s" % (where, lo, hi))
    out["min_tier"] = lo
    out["preferred_tier"] = hi
    out["window_kind"] = _choice(step, "window_kind", where, WINDOW_KINDS, "sunlit")


def _pass(step, out, where):
    out["merge_strategy"] = _choice(step, "merge_strategy", where, MERGE_STRATEGIES, "concat")
    out["max_segments"] = _int(step, "max_segments", where, 1, MAX_SEGMENTS)
    out["min_pass_duration_s"] = _num(step, "min_pass_duration_s", where, 0, MAX_PASS_S, default=0)


# ---------------------------------------------------------------- order

def topo_order(steps):
    """Step ids in dependency order (Kahn; ties in declaration order) ->
    (ids, None), or (None, reason) on a cycle or an unknown dependency."""
    ids = [s["id"] for s in steps]
    pending = {}
    for s in steps:
        for dep in s.get("depends_on") or ():
            if dep not in ids:
                return None, "unknown_dependency: %s depends on unknown step %s" % (
                    _show(s["id"]), _show(dep))
        pending[s["id"]] = len(s.get("depends_on") or ())
    order = []
    done = {}
    while len(order) < len(steps):
        progressed = False
        for s in steps:
            sid = s["id"]
            if sid in done:
                continue
            if all(dep in done for dep in s.get("depends_on") or ()):
                order.append(sid)
                done[sid] = True
                progressed = True
        if not progressed:
            stuck = [sid for sid in ids if sid not in done]
            return None, "dependency_cycle: among steps %s" % ", ".join(stuck)
    return order, None


# ---------------------------------------------------------------- signed uplink

def check_on_board(spec, cfg, now_epoch, seen_nonces, challenge=None):
    """The agent's whole check of a polled spec: (workload, step order, reason)
    -- the envelope and job, the signature (uplink.py; cfg uplink_key, replay_window_s,
    the poll's challenge), the DAG. A MemoryError goes to the caller (see validate_job)."""
    wl, reason = validate_workload(spec)
    if reason is None:
        security = wl["job"].get("security") or {}
        if spec.get("auth") is not None or cfg["uplink_key"] or \
                security.get("require_authenticated_uplink") is True:
            reason = __import__("uplink").check_auth(spec, cfg["uplink_key"], now_epoch, seen_nonces,
                                                     cfg["replay_window_s"], False, challenge)
    order = None
    if reason is None:
        order, reason = topo_order(wl["job"]["steps"])
    return wl, order, reason
