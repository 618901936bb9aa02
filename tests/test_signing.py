"""lib/signing.py: canonical JSON and HMAC-SHA256 give byte-identical results
under MicroPython and CPython, and signatures catch tampering."""
import hashlib
import os
import hmac
import json
import random
import struct

import signing

# Written as JSON text so both runtimes parse the very same document. Raw UTF-8
# (ensure_ascii=False), as the Console sends it: MicroPython's json decodes a
# \ud83d\ude80 surrogate-pair escape into two lone surrogates, not one character.
CORPUS_JSON = json.dumps({
    "ints": [0, 1, -1, 42, 2 ** 53, -(2 ** 63), 10 ** 30],
    "floats": [0.1, 12.5, 1e-7, 1e21, -0.0, 0.5, 1.0, 100.0, 3.141592653589793, 1e300,
               2.5e-320, 1.7976931348623157e308, 123456.789, -2.75, 1e20, 1e-6, 0.000123],
    "unicode": "caf\u00e9 \u2603 \U0001F680 \"quoted\" back\\slash \n\t\x01",
    "nested": {"z": {"b": [1, {"y": None, "x": True}], "a": False}, "\u00e9": 1, "A": []},
    "empty": {}, "null": None, "bools": [True, False],
    "spec": {"plan_id": "plan-1", "deployment_id": "dep-1", "satellite_id": "25544",
             "plan_data": {"job": {"steps": [{"id": "a", "compute_s": 300, "output_mb": 40.5}]}}},
}, ensure_ascii=False)

SNIPPET = """
import json, signing
corpus = json.loads(%r)
print(json.dumps({"canon": signing.canonical_json(corpus).decode(),
                  "mac": signing.hmac_sha256(b"uplink-key", signing.canonical_json(corpus)),
                  "long_key_mac": signing.hmac_sha256(b"k" * 100, b"message"),
                  "signed": signing.sign(corpus["spec"], "secret", "2026-03-07T14:23:45Z", "n-1")["auth"]["sig"]}))
"""


def test_canonical_json_and_hmac_are_byte_identical_under_both_runtimes(portable, cpy):
    here = portable(SNIPPET % CORPUS_JSON).check().last_json
    ref = cpy(SNIPPET % CORPUS_JSON).check().last_json
    assert here == ref
    assert here["canon"].startswith('{"bools":[true,false],"empty":{},"floats":[0.1,12.5,1e-7,1e+21,0,')


def test_float_canonical_form_is_shortest_round_trip_in_jcs_notation():
    cases = {0.1: "0.1", 12.5: "12.5", 1e-7: "1e-7", 1e21: "1e+21", -0.0: "0", 12.0: "12",
             1e20: "100000000000000000000", 1e-6: "0.000001", 5e-324: "5e-324",
             -2.75: "-2.75", 1.7976931348623157e308: "1.7976931348623157e+308"}
    for value, text in cases.items():
        assert signing.format_float(value) == text


def test_float_canonical_form_reads_back_exactly_and_matches_cpython_digits():
    rnd = random.Random(7)
    for i in range(3000):
        x = struct.unpack(">d", struct.pack(">Q", rnd.getrandbits(64)))[0]
        if x != x or x in (float("inf"), float("-inf")):
            continue
        text = signing.format_float(x)
        assert float(text) == x
        mantissa = repr(abs(x)).split("e")[0].replace(".", "").strip("0")
        assert text.lstrip("-").split("e")[0].replace(".", "").strip("0") == mantissa


def test_canonical_json_matches_sorted_compact_json_for_non_float_data():
    doc = json.loads(CORPUS_JSON)
    del doc["floats"]
    expected = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert signing.canonical_json(doc) == expected.encode("utf-8")


def test_nan_and_non_string_keys_are_refused():
    for bad in (float("nan"), float("inf"), {1: "x"}, {"a": object()}):
        try:
            signing.canonical_json(bad)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (bad,))


def test_hmac_matches_the_standard_library():
    for key in (b"", b"short", b"k" * 64, b"k" * 65, bytes(range(200))):
        for msg in (b"", b"hello", bytes(range(256)) * 5):
            assert signing.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).hexdigest()


def test_signed_spec_verifies_and_any_tampering_is_detected():
    spec = {"plan_id": "p", "deployment_id": "d", "satellite_id": "25544",
            "plan_data": {"x": [1, 2.5]}, "events": []}
    signed = signing.sign(spec, "uplink-secret", "2026-03-07T14:23:45Z", "abc123")
    assert signed["auth"]["alg"] == "HMAC-SHA256"
    assert signing.verify(signed, "uplink-secret") == (True, None)
    # survives a JSON round trip (what the wire does)
    assert signing.verify(json.loads(json.dumps(signed)), "uplink-secret")[0]
    assert signing.verify(signed, "other-key") == (False, "bad signature")
    tampered = json.loads(json.dumps(signed))
    tampered["plan_data"]["x"][1] = 2.6
    assert signing.verify(tampered, "uplink-secret") == (False, "bad signature")
    renonced = json.loads(json.dumps(signed))
    renonced["auth"]["nonce"] = "fresh"
    assert signing.verify(renonced, "uplink-secret") == (False, "bad signature")
    assert signing.verify(spec, "uplink-secret") == (False, "missing auth")


def test_signature_made_on_cpython_verifies_under_micropython(mpy):
    spec = json.loads(CORPUS_JSON)["spec"]
    signed = signing.sign(spec, "uplink-secret", "2026-03-07T14:23:45Z", "n-42")
    res = mpy("import json, signing\nprint(json.dumps(signing.verify(json.loads(%r), 'uplink-secret')))"
              % json.dumps(signed)).check()
    assert res.last_json == [True, None]


def test_a_real_workload_spec_verifies_under_micropython_in_a_64k_heap(mpy, tmp_path):
    """verify() streams the canonical text into the MAC: beyond the parsed spec
    itself (~48 KB on the 64-bit port) it needs only a few KB."""
    import tools  # noqa: F401
    from tools.console import catalog, db, deployments, planning
    d = db.Database(str(tmp_path / "c.db"))
    catalog.seed(d)
    with open(os.path.join(tools.ROOT, "examples", "jobs", "standard-pipeline.json")) as f:
        job = json.load(f)["custom_job"]
    plan = planning.make_plan(catalog.get(d, "25544"), job, None, 1772884800)
    deployments.save_plan(d, plan)
    dep = deployments.get(d, deployments.create(d, plan, "live", 1))
    # as the agent asks for it (X-Umbra-Compact): the plan's job, placements and schedule
    spec = dict(deployments.workload_spec(d, dep, compact=True), server_time="2026-03-07T12:00:00.000Z")
    signed = signing.sign(spec, "upk_secret", "2026-03-07T12:00:00Z", "nonce-1")
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(signed, ensure_ascii=False), encoding="utf-8")
    res = mpy("import json, signing\nspec = json.loads(open(%r).read())\n"
              "print(json.dumps(signing.verify(spec, 'upk_secret')))\n"
              "spec['plan_data']['job']['steps'][0]['compute_s'] = 1\n"
              "print(json.dumps(signing.verify(spec, 'upk_secret')))" % str(path), heap="64K")
    assert res.check().json_lines == [[True, None], [False, "bad signature"]]
