"""The decision rules of STEPS.md, as small pure functions shared by the
planner (ground) and the agent (board): the same inputs give the same
decision on both sides, which is what makes "predicted equals executed".

    placement(step, bus, produced_mb)                 -> (location, reason)
    eclipse_allowance_wh(step, B, C, L, T_h)          -> allowed_wh
    eclipse_needed_wh(step, compute_s, compute_w)     -> needed_wh
    select_tier(step, available_s, free_mb, capacity) -> tier name or None
    pass_segment_s(usable_s, remaining_s)             -> compute of one segment
    merged_output_mb(strategy, segment_outputs)       -> output after the merge
    downlink_mb(steps, outputs)                       -> what must reach the ground
    encryption_algorithm(name)                        -> security.encrypted's algorithm

Units are in the names (s, Wh, W, MB). Nothing here allocates more than a tuple.
"""

# Policy fraction f of the battery energy an eclipse step may use (STEPS.md).
ECLIPSE_POLICY_FRACTION = {"conservative": 0.40, "balanced": 0.65, "aggressive": 0.85}
# When a step gives no min_battery_soc: the compute threshold (MODELS.md: 15 %).
DEFAULT_MIN_BATTERY_SOC = 0.15
# `aggressive` with a min_battery_soc below this leaves too little for the next
# sunlit boot (the agent resumes compute at 20 %): warned in an event reason.
LOW_SOC_WARNING = 0.20
TIER_MARGIN_S = 5.0     # window steps: available = window_end - ready - 5 s
PASS_MARGIN_S = 5.0     # pass steps: a segment is at most pass_duration - 5 s
TIERS = ("minimal", "standard", "enhanced", "maximum")   # low to high (workload.TIERS)


def placement(step, bus, produced_mb):
    """(location, reason) of a step (STEPS.md "Placement for either"): onboard
    when it fits the bus (power, free memory) and its output costs less
    downlink than its input; otherwise ground. produced_mb: what its
    dependencies output (the input when the step does not give input_mb)."""
    loc = step.get("location", "onboard")
    if loc != "either":
        return loc, "preset_defined"
    power = step.get("power_w") or 0
    memory = step_memory_mb(step)
    free = bus["memory_mb"] - bus.get("memory_base_mb", 0)
    if power > bus["compute_w"] or memory > free:
        return "ground", "insufficient_onboard_resources"
    input_mb = step.get("input_mb")
    if input_mb is None:
        input_mb = produced_mb
    if step_output_mb(step) < input_mb:
        return "onboard", "data_reduction"
    return "ground", "downlink_budget"


def step_memory_mb(step):
    """Memory a step needs: its memory_mb, or for a window step its lowest allowed tier's."""
    if step.get("type") == "window":
        tier = lowest_tier(step)
        return step["quality_tiers"][tier].get("memory_mb", 0) if tier else 0
    return step.get("memory_mb") or 0


def step_output_mb(step):
    """Output a step is expected to make: a window step's preferred tier (or the
    highest given below it)."""
    if step.get("type") == "window":
        tiers = step["quality_tiers"]
        hi = TIERS.index(step.get("preferred_tier") or TIERS[-1])
        for i in range(hi, -1, -1):
            if TIERS[i] in tiers:
                return tiers[TIERS[i]].get("output_mb", 0)
        return 0
    return step.get("output_mb") or 0


def lowest_tier(step):
    lo = TIERS.index(step.get("min_tier") or "minimal")
    for name in TIERS[lo:]:
        if name in step["quality_tiers"]:
            return name
    return None


# --- eclipse steps --------------------------------------------------------------

def eclipse_allowance_wh(step, battery_wh, capacity_wh, bus_load_w, eclipse_h):
    """allowed_wh = min(energy_budget_wh, f*B, B - min_battery_soc*C - L*T), at the
    start of an eclipse (B battery energy, C capacity, L bus load, T eclipse hours).
    Never negative."""
    f = ECLIPSE_POLICY_FRACTION[step.get("eclipse_policy") or "balanced"]
    soc = step.get("min_battery_soc")
    if soc is None:
        soc = DEFAULT_MIN_BATTERY_SOC
    allowed = min(f * battery_wh, battery_wh - soc * capacity_wh - bus_load_w * eclipse_h)
    budget = step.get("energy_budget_wh")
    if budget is not None and budget < allowed:
        allowed = budget
    return allowed if allowed > 0 else 0.0


def eclipse_needed_wh(step, compute_s, compute_w):
    """needed_wh = power_w * compute_s / 3600 (power_w defaults to the bus compute_w)."""
    return (step.get("power_w") or compute_w) * compute_s / 3600.0


def eclipse_finish_ok(step, battery_wh, capacity_wh, bus_load_w, left_h, rest_wh, consumed_wh):
    """The 50 % check: finishing (rest_wh more, plus the bus for the rest of the
    eclipse) keeps the battery at or above min_battery_soc, and the step within
    what is left of its energy_budget_wh (the most it may draw in eclipse;
    consumed_wh drawn so far). (ok, allowed_wh): allowed is the tighter bound."""
    soc = step.get("min_battery_soc")
    if soc is None:
        soc = DEFAULT_MIN_BATTERY_SOC
    allowed = battery_wh - soc * capacity_wh - bus_load_w * left_h
    budget = step.get("energy_budget_wh")
    if budget is not None and budget - consumed_wh < allowed:
        allowed = budget - consumed_wh
    return rest_wh <= allowed + 1e-9, (allowed if allowed > 0 else 0.0)


def eclipse_warning(step):
    """The reason to warn with, or None: aggressive with a low min_battery_soc."""
    soc = step.get("min_battery_soc")
    if soc is None:
        soc = DEFAULT_MIN_BATTERY_SOC
    if step.get("eclipse_policy") == "aggressive" and soc < LOW_SOC_WARNING:
        return ("aggressive_low_min_soc: min_battery_soc %.2f may leave too little power "
                "for the next sunlit boot" % soc)
    return None


# --- window steps ---------------------------------------------------------------

def select_tier(step, available_s, free_memory_mb, capacity=1.0):
    """The highest tier between min_tier and preferred_tier whose compute_s (at
    this compute capacity) <= available_s and memory_mb <= free_memory_mb; None
    when none fits. available_s = window_end - ready_time - TIER_MARGIN_S."""
    tiers = step["quality_tiers"]
    lo = TIERS.index(step.get("min_tier") or "minimal")
    hi = TIERS.index(step.get("preferred_tier") or TIERS[-1])
    if capacity <= 0:
        return None
    for i in range(hi, lo - 1, -1):
        t = tiers.get(TIERS[i])
        if t is None:
            continue
        if t["compute_s"] / capacity <= available_s and t.get("memory_mb", 0) <= free_memory_mb:
            return TIERS[i]
    return None


# --- pass steps -----------------------------------------------------------------

def pass_segment_s(usable_s, remaining_s):
    """Compute one pass hosts: min(pass_duration - 5 s, remaining compute); 0 if none."""
    room = usable_s - PASS_MARGIN_S
    if room <= 0:
        return 0.0
    return remaining_s if remaining_s < room else room


def merged_output_mb(strategy, outputs):
    """concat: the sum of the segments' outputs; reduce: one segment-sized result
    (the largest); latest: the last segment's."""
    if not outputs:
        return 0.0
    if strategy == "reduce":
        return max(outputs)
    if strategy == "latest":
        return outputs[-1]
    return sum(outputs)


# --- transfers ------------------------------------------------------------------

def downlink_mb(steps, outputs):
    """What must reach the ground: the output of every onboard step that no other
    onboard step consumes. steps: [{id, location, depends_on}]; outputs:
    {step id: output_mb} (an absent id counts its step's output_mb)."""
    consumed = {}
    for s in steps:
        if s["location"] == "onboard":
            for d in s["depends_on"]:
                consumed[d] = True
    total = 0.0
    for s in steps:
        if s["location"] == "onboard" and s["id"] not in consumed:
            out = outputs.get(s["id"])
            total += out if out is not None else (s.get("output_mb") or 0)
    return round(total, 6)


def encryption_algorithm(name):
    """The `algorithm` of security.encrypted for a job's `encryption` setting."""
    return {"aes128": "AES-128-CBC", "aes256": "AES-256-CBC"}.get(name, name)
