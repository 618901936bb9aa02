"""firmware/workload.py: a WorkloadSpec is validated before the agent accepts it.
Every bad input is refused with a clear reason (never an exception), under the
MicroPython unix port and CPython; signed uplinks are checked with lib/signing."""
import copy
import json
import os
import random

import pytest

import tools


def make_spec(steps=None, **job_extra):
    job = {"name": "Test job",
           "steps": steps if steps is not None else [
               {"id": "capture", "compute_s": 60, "output_mb": 5},
               {"id": "pack", "handler": "compress", "depends_on": ["capture"]}]}
    job.update(job_extra)
    return {"plan_id": "plan-1", "deployment_id": "dep-1", "satellite_id": "25544",
            "plan_data": {"id": "plan-1", "job": job}, "events": [{"type": "job.accepted"}]}


VALIDATE = """
import json, workload, uplink
w, reason = uplink.load_workload(%r)
print(json.dumps({"reason": reason, "workload": w}))
"""


def load(runner, body):
    if not isinstance(body, str):
        body = json.dumps(body)
    res = runner(VALIDATE % body)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.last_json


def refused(runner, body, code):
    out = load(runner, body)
    assert out["workload"] is None
    assert out["reason"].startswith(code + ": "), out["reason"]
    return out["reason"]


def one_step(**fields):
    step = {"id": "s1"}
    step.update(fields)
    return make_spec([step])


# ---------------------------------------------------------------- accepted

def test_valid_spec_is_accepted_with_the_documented_defaults(portable):
    out = load(portable, make_spec())
    assert out["reason"] is None
    w = out["workload"]
    assert (w["plan_id"], w["deployment_id"], w["satellite_id"]) == ("plan-1", "dep-1", "25544")
    assert w["events"] == [{"type": "job.accepted"}]
    capture, pack = w["job"]["steps"]
    assert capture == {"id": "capture", "type": "standard", "location": "onboard", "compute_s": 60,
                       "output_mb": 5, "depends_on": [], "retry_policy": "retry_immediate",
                       "max_retries": 1, "handler": "synthetic"}
    assert pack["handler"] == "compress" and pack["compute_s"] == 0 and pack["depends_on"] == ["capture"]


def test_aliases_duration_s_and_output_data_mb_become_compute_s_and_output_mb(portable):
    out = load(portable, one_step(duration_s=120, output_data_mb=7.5))
    step = out["workload"]["job"]["steps"][0]
    assert step["compute_s"] == 120 and step["output_mb"] == 7.5
    assert "duration_s" not in step and "output_data_mb" not in step


def test_job_is_found_as_custom_job_or_as_plan_data_itself(portable):
    spec = make_spec()
    job = spec["plan_data"].pop("job")
    spec["plan_data"]["custom_job"] = job
    assert load(portable, spec)["reason"] is None
    spec["plan_data"] = job
    assert load(portable, spec)["workload"]["job"]["name"] == "Test job"


def test_primitive_steps_get_their_defaults(portable):
    out = load(portable, make_spec([
        {"id": "e", "type": "eclipse", "compute_s": 10, "energy_budget_wh": 5},
        {"id": "w", "type": "window", "quality_tiers": {"minimal": {"compute_s": 5},
                                                        "enhanced": {"compute_s": 50}}},
        {"id": "p", "type": "pass", "compute_s": 300}]))
    e, w, p = out["workload"]["job"]["steps"]
    assert (e["eclipse_policy"], e["priority"]) == ("balanced", 0)
    assert (w["min_tier"], w["preferred_tier"], w["window_kind"]) == ("minimal", "enhanced", "sunlit")
    assert "compute_s" not in w   # a window step's work comes from its tier
    assert (p["merge_strategy"], p["max_segments"], p["min_pass_duration_s"]) == ("concat", None, 0)


def test_the_shipped_example_jobs_are_accepted(portable):
    jobs = []
    folder = os.path.join(tools.ROOT, "examples", "jobs")
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as f:
            jobs.append(json.load(f)["custom_job"])
    res = portable("""
import json, workload
for job in json.loads(%r):
    print(json.dumps(workload.validate_job(job)[1]))
""" % json.dumps(jobs))
    assert res.returncode == 0, res.stdout
    assert res.json_lines == [] and res.stdout.split() == ["null"] * len(jobs)


def test_the_original_spec_is_not_modified(portable):
    res = portable("""
import json, workload
spec = json.loads(%r)
before = json.dumps(spec)
w, reason = workload.validate_workload(spec)
print(json.dumps({"same": json.dumps(spec) == before, "reason": reason}))
""" % json.dumps(one_step(duration_s=5)))
    assert res.last_json == {"same": True, "reason": None}


# ---------------------------------------------------------------- refused: the body

def test_body_that_is_not_json_is_refused(portable):
    refused(portable, '{"plan_id": "p", ', "not_json")


def test_body_that_is_a_json_array_is_refused(portable):
    refused(portable, "[1, 2, 3]", "not_object")


def test_body_larger_than_the_cap_is_refused(portable):
    spec = make_spec()
    spec["plan_data"]["padding"] = ["x" * 1000] * 70
    assert refused(portable, spec, "too_large").endswith("bytes, at most 65536")


def test_deeply_nested_spec_is_refused(portable):
    spec = make_spec()
    nest = {}
    spec["plan_data"]["extra"] = nest
    for _ in range(30):
        nest["n"] = {}
        nest = nest["n"]
    refused(portable, spec, "too_deep")


def test_pathological_nesting_within_the_byte_cap_does_not_crash(portable):
    out = load(portable, "[" * 30000 + "]" * 30000)
    assert out["workload"] is None
    assert out["reason"].split(":")[0] in ("not_json", "too_deep", "too_large")


def test_overlong_string_is_refused(portable):
    refused(portable, one_step(name="n" * 3000), "too_large")


def test_overlong_step_name_is_refused(portable):
    refused(portable, one_step(name="n" * 300), "bad_field")


def test_missing_plan_id_is_refused(portable):
    spec = make_spec()
    del spec["plan_id"]
    assert refused(portable, spec, "missing_field") == "missing_field: spec.plan_id"


def test_deployment_id_with_a_slash_is_refused(portable):
    spec = make_spec()
    spec["deployment_id"] = "../admin"
    refused(portable, spec, "bad_field")


def test_events_that_are_not_an_array_of_objects_are_refused(portable):
    spec = make_spec()
    spec["events"] = ["job.accepted"]
    refused(portable, spec, "bad_field")


def test_missing_job_is_refused(portable):
    spec = make_spec()
    spec["plan_data"] = {"id": "plan-1"}
    refused(portable, spec, "missing_field")


# ---------------------------------------------------------------- refused: the job

def test_job_without_steps_is_refused(portable):
    refused(portable, make_spec([]), "bad_field")


def test_more_than_64_steps_are_refused(portable):
    steps = [{"id": "s%d" % i} for i in range(65)]
    assert refused(portable, make_spec(steps), "too_many_steps") == "too_many_steps: 65 steps, at most 64"


def test_unknown_step_type_is_refused(portable):
    refused(portable, one_step(type="quantum"), "unknown_step_type")


def test_unknown_location_is_refused(portable):
    refused(portable, one_step(location="moon"), "unknown_location")


def test_duplicate_step_ids_are_refused(portable):
    reason = refused(portable, make_spec([{"id": "a"}, {"id": "b"}, {"id": "a"}]), "duplicate_step_id")
    assert "steps[0] and steps[2]" in reason


def test_unknown_dependency_is_refused(portable):
    reason = refused(portable, make_spec([{"id": "a"}, {"id": "b", "depends_on": ["zz"]}]),
                     "unknown_dependency")
    assert '"zz"' in reason


def test_dependency_cycle_is_refused(portable):
    reason = refused(portable, make_spec([{"id": "a", "depends_on": ["c"]}, {"id": "b", "depends_on": ["a"]},
                                          {"id": "c", "depends_on": ["b"]}, {"id": "d"}]),
                     "dependency_cycle")
    assert reason == "dependency_cycle: among steps a, b, c"


def test_step_depending_on_itself_is_a_cycle(portable):
    refused(portable, make_spec([{"id": "a", "depends_on": ["a"]}]), "dependency_cycle")


def test_step_id_with_path_characters_is_refused(portable):
    refused(portable, make_spec([{"id": "../../boot"}]), "bad_field")


def test_step_id_that_is_not_a_string_is_refused(portable):
    refused(portable, make_spec([{"id": 7}]), "bad_field")


def test_negative_compute_s_is_refused(portable):
    refused(portable, one_step(compute_s=-1), "bad_field")


def test_compute_s_over_30_days_is_refused(portable):
    refused(portable, one_step(compute_s=30 * 86400 + 1), "bad_field")


def test_compute_s_that_is_a_string_is_refused(portable):
    refused(portable, one_step(compute_s="60"), "bad_field")


def test_compute_s_that_is_a_boolean_is_refused(portable):
    refused(portable, one_step(compute_s=True), "bad_field")


def test_compute_s_that_is_nan_is_refused(portable):
    out = load(portable, json.dumps(one_step(compute_s=1)).replace('"compute_s": 1', '"compute_s": NaN'))
    assert out["workload"] is None
    assert out["reason"].split(":")[0] in ("bad_field", "not_json")


def test_absurd_output_mb_is_refused(portable):
    refused(portable, one_step(output_mb=1e9), "bad_field")


def test_unknown_handler_is_refused(portable):
    reason = refused(portable, one_step(handler="rm_rf"), "unknown_handler")
    assert "compress" in reason and "synthetic" in reason


def test_input_path_outside_the_data_root_is_refused(portable):
    refused(portable, one_step(handler="sha256", input="/etc/shadow"), "bad_field")


def test_unknown_retry_policy_is_refused(portable):
    refused(portable, one_step(retry_policy="pray"), "bad_field")


def test_max_retries_out_of_range_is_refused(portable):
    refused(portable, one_step(max_retries=1000), "bad_field")


def test_unknown_eclipse_policy_is_refused(portable):
    refused(portable, one_step(type="eclipse", eclipse_policy="reckless"), "bad_field")


def test_min_battery_soc_above_one_is_refused(portable):
    refused(portable, one_step(type="eclipse", min_battery_soc=30), "bad_field")


def test_window_step_without_quality_tiers_is_refused(portable):
    refused(portable, one_step(type="window"), "missing_field")


def test_unknown_quality_tier_is_refused(portable):
    refused(portable, one_step(type="window", quality_tiers={"ultra": {"compute_s": 5}}), "bad_field")


def test_quality_tier_without_compute_s_is_refused(portable):
    refused(portable, one_step(type="window", quality_tiers={"minimal": {"output_mb": 5}}), "missing_field")


def test_min_tier_above_preferred_tier_is_refused(portable):
    refused(portable, one_step(type="window", quality_tiers={"minimal": {"compute_s": 5},
                                                             "maximum": {"compute_s": 9}},
                               min_tier="maximum", preferred_tier="minimal"), "bad_field")


def test_unknown_merge_strategy_is_refused(portable):
    refused(portable, one_step(type="pass", merge_strategy="shuffle"), "bad_field")


def test_max_segments_below_one_is_refused(portable):
    refused(portable, one_step(type="pass", max_segments=0), "bad_field")


def test_unknown_encryption_is_refused(portable):
    refused(portable, make_spec(security={"encryption": "rot13"}), "bad_field")


def test_garbage_never_raises_and_always_gives_a_known_reason(portable):
    """200 random mutations of a valid spec: each is accepted or refused with a
    reason code from REASON_CODES, never an exception."""
    rng = random.Random(11)
    base = make_spec([{"id": "a", "type": "eclipse", "compute_s": 5, "min_battery_soc": 0.2},
                      {"id": "b", "type": "window", "depends_on": ["a"],
                       "quality_tiers": {"minimal": {"compute_s": 1}}},
                      {"id": "c", "type": "pass", "depends_on": ["b"], "max_segments": 2}])
    junk = [None, -1, 0, 1e308, "", "x" * 50, [], {}, [1, [2]], {"a": {}}, True, "eclipse", "a"]
    bodies = []
    for _ in range(200):
        spec = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            plan = spec.get("plan_data")
            job = plan.get("job") if isinstance(plan, dict) else None
            steps = job.get("steps") if isinstance(job, dict) else None
            target = rng.choice([t for t in [spec, plan, job] + (steps if isinstance(steps, list) else [])
                                 if isinstance(t, dict)])
            key = rng.choice(sorted(target) + ["depends_on", "type", "handler"])
            target[key] = rng.choice(junk)
        bodies.append(json.dumps(spec))
    res = portable("""
import json, workload, uplink
out = []
for body in json.loads(%r):
    w, reason = uplink.load_workload(body)
    out.append(reason.split(":")[0] if reason else (w is not None))
print(json.dumps([out, workload.REASON_CODES]))
""" % json.dumps(bodies))
    assert res.returncode == 0, res.stdout
    results, codes = res.last_json
    assert len(results) == 200
    assert all(r is True or r in codes for r in results), results
    assert sum(1 for r in results if r is not True) > 50


# ---------------------------------------------------------------- topological order

def test_topological_order_follows_dependencies_and_declaration_order(portable):
    res = portable("""
import json, workload
steps = [{"id": "d", "depends_on": ["b", "c"]}, {"id": "b", "depends_on": ["a"]},
         {"id": "c", "depends_on": ["a"]}, {"id": "a"}, {"id": "e"}]
print(json.dumps(workload.topo_order(steps)))
""")
    assert res.last_json == [["a", "e", "b", "c", "d"], None]


# ---------------------------------------------------------------- signed uplink

KEY = "uplink-secret-25544"
NOW = "2026-03-07T14:00:00Z"

AUTH = """
import json, uplink, signing, timeutil
spec = json.loads(%(spec)r)
now = timeutil.parse_iso(%(now)r)
if %(answers)r is not None:
    spec["challenge"] = %(answers)r            # the challenge the Console carried back
if %(sign)r:
    spec = signing.sign(spec, %(sign_key)r, %(issued)r, "nonce-1")
    spec = json.loads(json.dumps(spec))       # as it arrives over the link
%(tamper)s
print(json.dumps({"reason": uplink.check_auth(spec, %(key)r, now, set(%(seen)r), 600, %(require)r,
                                              %(challenge)r)}))
"""


def auth(runner, spec=None, sign=True, sign_key=KEY, key=KEY, issued=NOW, seen=(), require=False,
         tamper="", challenge=None, answers=None):
    res = runner(AUTH % {"spec": json.dumps(spec or make_spec()), "now": NOW, "sign": sign,
                         "sign_key": sign_key, "issued": issued, "key": key, "seen": list(seen),
                         "require": require, "tamper": tamper, "challenge": challenge,
                         "answers": answers})
    assert res.returncode == 0, res.stdout + res.stderr
    return res.last_json["reason"]


def test_signed_spec_with_the_right_key_is_accepted(portable):
    assert auth(portable) is None


def test_unsigned_spec_is_refused_when_an_uplink_key_is_configured(portable):
    assert auth(portable, sign=False) == "unauthenticated: missing auth"


def test_unsigned_spec_is_accepted_without_a_key_when_nothing_requires_it(portable):
    assert auth(portable, sign=False, key=None) is None


def test_unsigned_spec_is_refused_when_required_by_the_caller(portable):
    assert auth(portable, sign=False, key=None, require=True) == "unauthenticated: missing auth"


def test_unsigned_spec_is_refused_when_the_job_requires_authenticated_uplink(portable):
    spec = make_spec(security={"encryption": "none", "require_authenticated_uplink": True})
    assert auth(portable, spec=spec, sign=False, key=None) == "unauthenticated: missing auth"


def test_signed_spec_requiring_auth_is_refused_without_a_key_to_check_it(portable):
    spec = make_spec(security={"require_authenticated_uplink": True})
    assert auth(portable, spec=spec, key=None).startswith("unauthenticated: no uplink key")


def test_signature_made_with_another_key_is_refused(portable):
    assert auth(portable, sign_key="not-the-key") == "unauthenticated: bad signature"


def test_spec_changed_after_signing_is_refused(portable):
    tamper = 'spec["plan_data"]["job"]["steps"][0]["compute_s"] = 1'
    assert auth(portable, tamper=tamper) == "unauthenticated: bad signature"


def test_signature_with_a_fresh_nonce_grafted_on_is_refused(portable):
    tamper = 'spec["auth"]["nonce"] = "nonce-2"'
    assert auth(portable, tamper=tamper) == "unauthenticated: bad signature"


def test_stale_signature_is_refused(portable):
    reason = auth(portable, issued="2026-03-07T13:49:00Z")  # 11 minutes old, window 10
    assert reason.startswith("unauthenticated: stale")


def test_signature_from_the_future_is_refused(portable):
    reason = auth(portable, issued="2026-03-07T14:11:00Z")
    assert reason.startswith("unauthenticated: issued") and "future" in reason


def test_signature_inside_the_window_is_accepted(portable):
    assert auth(portable, issued="2026-03-07T13:51:00Z") is None


def test_replayed_nonce_is_refused(portable):
    assert auth(portable, seen=["nonce-0", "nonce-1"]) == "unauthenticated: replayed nonce"


def test_a_signed_reply_carrying_the_polls_challenge_is_accepted(portable):
    assert auth(portable, challenge="9f0c1d2e3b4a5968", answers="9f0c1d2e3b4a5968") is None


@pytest.mark.parametrize("answers", [None, "0000000000000000"])
def test_a_signed_reply_to_another_poll_is_refused_whatever_the_nonces_remembered(portable,
                                                                                 answers):
    """A reply recorded earlier (another challenge, or from before challenges)
    and replayed: refused although no nonce is remembered (a wiped flash)."""
    reason = auth(portable, challenge="9f0c1d2e3b4a5968", answers=answers, seen=())
    assert reason == "unauthenticated: the reply answers another poll (challenge)"


def test_a_challenge_grafted_onto_a_signed_reply_breaks_its_signature(portable):
    tamper = 'spec["challenge"] = "9f0c1d2e3b4a5968"'
    assert auth(portable, challenge="9f0c1d2e3b4a5968", answers="0000000000000000",
                tamper=tamper) == "unauthenticated: bad signature"


def test_malformed_auth_is_refused_not_raised(portable):
    assert auth(portable, tamper='spec["auth"] = {"alg": "HMAC-SHA256", "sig": 5}') \
        == "unauthenticated: malformed auth"


def test_a_heap_too_full_to_validate_a_good_job_is_the_callers_to_handle_not_a_refusal(mpy, tmp_path):
    """On a board, a MemoryError while validating a job in bounds is the heap's
    state, not the job's: validate_job lets it through, so the agent can take
    the job at a later poll instead of refusing it (firmware/accept.py)."""
    from tools import upy
    out = tmp_path / "mpy"
    out.mkdir()
    upy.compile_one(os.path.join(tools.ROOT, "firmware", "workload.py"), str(out / "workload.mpy"))
    job = {"name": "j", "steps": [{"id": "s%d" % i, "compute_s": 10, "output_mb": 1}
                                  for i in range(40)]}
    res = mpy("""
import gc, json, workload
job = json.loads(%r)
ok = workload.validate_job(job)[1] is None
gc.collect()
room = bytearray(512)     # given back below: a little room, not enough for the normalised copy
hold = []
try:
    while True:
        hold.append(bytearray(64))
except MemoryError:
    pass
room = None
gc.collect()
try:
    workload.validate_job(job)
    outcome = "validated"
except MemoryError:
    outcome = "MemoryError"
hold = None
gc.collect()
print(json.dumps({"ok_with_room": ok, "tight": outcome}))
""" % json.dumps(job), heap="128K", extra_path=(str(out),))
    assert res.check().last_json == {"ok_with_room": True, "tight": "MemoryError"}
