"""firmware/handlers.py (the front) and its handler modules h_*.py: each handler's output is right (checked against CPython's
zlib / hashlib / statistics on the host and NIST AES vectors), a run resumed from
a checkpoint after a reset gives the same output as an uninterrupted one, and
everything runs in a 32 KiB MicroPython heap (the modules precompiled with
mpy-cross, as a board would carry them), and running one handler loads only
the front and that handler's own module."""
import hashlib
import json
import os
import random
import statistics
import zlib

import pytest

import tools
from tools import upy

HEAP = "32K"
# The handler modules (handlers.MODULES; a test below keeps the two equal).
HANDLER_MODULES = ("h_synthetic", "h_deflate", "h_digest", "h_stats", "h_crypt")


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    out = tmp_path_factory.mktemp("mpy")
    for name in ("handlers",) + HANDLER_MODULES:
        upy.compile_one(os.path.join(tools.ROOT, "firmware", name + ".py"), str(out / (name + ".mpy")))
    return str(out)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Input files on the 'board': a compressible binary log and a number series."""
    root = tmp_path_factory.mktemp("data")
    rng = random.Random(7)
    blob = b"".join(b"t=%06d temp=%.2f volt=%.3f mode=%s\n"
                    % (i, 20 + rng.random() * 5, 3.3 + rng.random() / 10,
                       rng.choice([b"IDLE", b"RUN", b"SAFE"])) for i in range(500))
    blob += bytes(rng.getrandbits(8) for _ in range(3000))  # an incompressible tail
    (root / "log.bin").write_bytes(blob)
    values = [round(rng.gauss(12.5, 3.0), 4) for _ in range(1500)]
    text = "\n".join("%r,%r" % (values[i], values[i + 1]) if i % 10 == 0 else repr(values[i])
                     for i in range(0, len(values)) if i % 10 != 1)
    (root / "series.csv").write_text(text + "\n")
    parsed = [float(t) for t in text.replace(",", " ").split()]
    return {"root": str(root), "blob": blob, "values": parsed}


HARNESS = """
import json, handlers
step = json.loads(%(step)r)
ctx = json.loads(%(ctx)r)
state = json.loads(%(state)r)
fractions = []
snapshot = [None]
def on_slice(f):
    fractions.append(f)
    if len(fractions) == %(snap_at)r:
        snapshot[0] = json.dumps(state)   # what the executor would persist now
try:
    res, n = handlers.drive(handlers.get(step["handler"]), step, state, ctx, %(stop)r, on_slice)
    print(json.dumps({"result": res, "slices": n, "state": state, "snapshot": snapshot[0],
                      "fractions": fractions}))
except handlers.HandlerError as exc:
    print(json.dumps({"error": str(exc)}))
"""


def run(runner, frozen, step, ctx, state=None, stop=None, snap_at=None):
    code = HARNESS % {"step": json.dumps(step), "ctx": json.dumps(ctx),
                      "state": json.dumps(state or {}), "stop": stop, "snap_at": snap_at}
    res = runner(code, heap=HEAP, extra_path=(frozen,))
    assert res.returncode == 0, res.stdout + res.stderr
    return res.last_json


def ctx_for(data, work, **extra):
    ctx = {"workdir": os.path.join(data["root"], work), "data_root": data["root"]}
    ctx.update(extra)
    return ctx


# ---------------------------------------------------------------- outputs are right

def test_crc32_matches_zlib(portable, frozen, data):
    out = run(portable, frozen, {"id": "c", "handler": "crc32", "input": "log.bin"}, ctx_for(data, "w"))
    assert out["result"]["value"] == zlib.crc32(data["blob"])
    assert out["result"]["size"] == 4


def test_sha256_matches_hashlib(portable, frozen, data):
    out = run(portable, frozen, {"id": "h", "handler": "sha256", "input": "log.bin"}, ctx_for(data, "w"))
    assert out["result"]["value"] == hashlib.sha256(data["blob"]).hexdigest()


def test_stats_of_a_text_series_match_python_statistics(portable, frozen, data):
    out = run(portable, frozen, {"id": "s", "handler": "stats", "input": "series.csv"}, ctx_for(data, "w"))
    v = out["result"]["value"]
    values = data["values"]
    assert v["count"] == len(values)
    assert v["min"] == min(values) and v["max"] == max(values)
    assert v["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert v["std"] == pytest.approx(statistics.stdev(values), rel=1e-9)
    assert v["var"] == pytest.approx(statistics.variance(values), rel=1e-9)


def test_stats_of_inline_values(portable, frozen, data):
    values = [3, 1.5, -2, 8, 8, 0.25] * 30
    out = run(portable, frozen, {"id": "s", "handler": "stats", "input": {"values": values}},
              ctx_for(data, "w"))
    v = out["result"]["value"]
    assert v["count"] == 180
    assert v["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert v["std"] == pytest.approx(statistics.stdev(values), rel=1e-9)
    assert (v["min"], v["max"]) == (-2, 8)


def test_stats_refuse_text_that_is_not_a_number(portable, frozen, data):
    out = run(portable, frozen, {"id": "s", "handler": "stats", "input": {"text": "1.5 2.5\nthree 4\n"}},
              ctx_for(data, "w"))
    assert out["error"].startswith("stats: not a number")
    assert "byte 8" in out["error"]


def test_stats_refuse_non_finite_values(portable, frozen, data):
    out = run(portable, frozen, {"id": "s", "handler": "stats", "input": {"text": "1 nan 2"}},
              ctx_for(data, "w"))
    assert out["error"].startswith("stats: non-finite value")


def test_compress_output_inflates_to_the_input_with_zlib(portable, frozen, data):
    out = run(portable, frozen, {"id": "z", "handler": "compress", "input": "log.bin"},
              ctx_for(data, "z-" + portable.impl))
    path = out["result"]["path"]
    packed = open(path, "rb").read()
    assert out["result"]["size"] == len(packed)
    assert zlib.decompress(packed, -15) == data["blob"]
    assert len(packed) < 0.5 * len(data["blob"])


def test_compress_output_is_identical_under_micropython_and_cpython(mpy, cpy, frozen, data):
    outs = []
    for runner in (mpy, cpy):
        out = run(runner, frozen, {"id": "z", "handler": "compress", "input": "log.bin"},
                  ctx_for(data, "same-" + runner.impl))
        outs.append(open(out["result"]["path"], "rb").read())
    assert outs[0] == outs[1]


def test_compress_output_inflates_with_micropythons_deflate_module(mpy, frozen, data):
    out = run(mpy, frozen, {"id": "z", "handler": "compress", "input": "log.bin"}, ctx_for(data, "inf"))
    res = mpy("""
import deflate, hashlib, binascii
h = hashlib.sha256()
with open(%r, "rb") as f:
    d = deflate.DeflateIO(f, deflate.RAW, 12)   # window >= one 4 KiB segment
    while True:
        b = d.read(512)
        if not b:
            break
        h.update(b)
print(binascii.hexlify(h.digest()).decode())
""" % out["result"]["path"], heap=HEAP)
    assert res.stdout.strip() == hashlib.sha256(data["blob"]).hexdigest()


def test_compress_of_empty_input_is_a_valid_empty_stream(portable, frozen, data):
    out = run(portable, frozen, {"id": "e", "handler": "compress", "input": {"text": ""}},
              ctx_for(data, "empty-" + portable.impl))
    assert zlib.decompress(open(out["result"]["path"], "rb").read(), -15) == b""


# NIST SP 800-38A, F.2.1 CBC-AES128.Encrypt
NIST_KEY = "2b7e151628aed2a6abf7158809cf4f3c"
NIST_IV = "000102030405060708090a0b0c0d0e0f"
NIST_PT = ("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
           "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
NIST_CT = ("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
           "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7")


def test_encrypt_matches_the_nist_aes128_cbc_vectors(mpy, frozen, data):
    out = run(mpy, frozen, {"id": "x", "handler": "encrypt", "input": {"hex": NIST_PT}},
              ctx_for(data, "nist", key=NIST_KEY, iv=NIST_IV, chunk=32))
    blob = open(out["result"]["path"], "rb").read()
    assert blob[:16].hex() == NIST_IV
    assert blob[16:16 + 64].hex() == NIST_CT     # then one block of PKCS#7 padding
    assert len(blob) == 16 + 64 + 16


def test_encrypt_aes256_decrypts_back_to_the_input_with_pkcs7_padding(mpy, frozen, data):
    key = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
    out = run(mpy, frozen, {"id": "x", "handler": "encrypt", "input": "log.bin", "encryption": "aes256"},
              ctx_for(data, "a256", key=key))
    res = mpy("""
import cryptolib, hashlib, binascii
with open(%r, "rb") as f:
    iv = f.read(16)
    body = f.read()
plain = cryptolib.aes(binascii.unhexlify(%r), 2, iv).decrypt(body)
pad = plain[-1]
assert 1 <= pad <= 16 and plain[-pad:] == bytes([pad]) * pad
print(binascii.hexlify(hashlib.sha256(plain[:-pad]).digest()).decode())
""" % (out["result"]["path"], key))
    assert res.stdout.strip() == hashlib.sha256(data["blob"]).hexdigest()
    assert out["result"]["size"] == 16 + (len(data["blob"]) // 16 + 1) * 16


def test_encrypt_refuses_a_key_that_does_not_match_the_requested_cipher(mpy, frozen, data):
    out = run(mpy, frozen, {"id": "x", "handler": "encrypt", "input": "log.bin", "encryption": "aes256"},
              ctx_for(data, "bad", key=NIST_KEY))
    assert out["error"] == "encrypt: key length does not match aes256"


def test_encrypt_without_cryptolib_fails_with_a_clear_error(cpy, frozen, data):
    out = run(cpy, frozen, {"id": "x", "handler": "encrypt", "input": "log.bin"},
              ctx_for(data, "cpy", key=NIST_KEY))
    assert out["error"] == "encrypt: cryptolib (AES) is not available on this port"


# ---------------------------------------------------------------- synthetic

def test_synthetic_spends_compute_in_slices_and_accounts_output_without_writing(portable, frozen, data):
    out = run(portable, frozen, {"id": "s", "handler": "synthetic", "compute_s": 10, "output_mb": 200},
              ctx_for(data, "syn", slice_s=2.5))
    assert out["fractions"] == [0.25, 0.5, 0.75]     # the 4th slice finishes it
    assert out["result"] == {"path": None, "value": None, "size": 200000000, "output_mb": 200.0}
    assert out["state"] == {"done_ms": 10000}


def test_synthetic_counts_the_compute_seconds_the_executor_sends(portable):
    res = portable("""
import handlers
state = {}
gen = handlers.get("synthetic")({"compute_s": 60, "output_mb": 1}, state, {"slice_s": 5})
print([next(gen), gen.send(30), gen.send(None), state["done_ms"]])
try:
    gen.send(100)
except StopIteration as stop:
    print(stop.value["output_mb"], state["done_ms"])
""")
    assert res.returncode == 0, res.stdout
    lines = res.stdout.split("\n")
    assert lines[0] == "[0.08333333333333333, 0.5833333333333334, 0.6666666666666666, 40000]"
    assert lines[1] == "1.0 60000"


# ---------------------------------------------------------------- resume after a reset

RESUMABLE = [
    ("crc32", {"input": "log.bin"}, {}),
    ("sha256", {"input": "log.bin"}, {}),
    ("stats", {"input": "series.csv"}, {}),
    ("compress", {"input": "log.bin"}, {}),
    ("encrypt", {"input": "log.bin"}, {"key": NIST_KEY, "iv": NIST_IV}),
    ("synthetic", {"compute_s": 95, "output_mb": 3}, {"slice_s": 4}),
]


def outcome(out):
    res = dict(out["result"])
    if res["path"]:
        res["path"] = open(res["path"], "rb").read().hex()  # compare file contents
    return res


@pytest.mark.parametrize("name,step_extra,ctx_extra", RESUMABLE, ids=[r[0] for r in RESUMABLE])
def test_resuming_from_a_checkpoint_after_a_reset_gives_the_same_output(
        portable, frozen, data, name, step_extra, ctx_extra):
    if name == "encrypt" and portable.impl == "cpython":
        pytest.skip("cryptolib exists only under MicroPython")
    step = dict({"id": "r_" + name, "handler": name}, **step_extra)
    tag = "%s-%s" % (name, portable.impl)
    whole = run(portable, frozen, step, ctx_for(data, "whole-" + tag, **ctx_extra))
    n = whole["slices"]
    assert n >= 4
    # The board runs 2/3 of the slices, but the executor's last checkpoint was
    # taken at 1/3; then a reset. A new interpreter resumes from that checkpoint
    # (output written after it is overwritten).
    ctx = ctx_for(data, "reset-" + tag, **ctx_extra)
    cut = run(portable, frozen, step, ctx, stop=2 * n // 3, snap_at=n // 3)
    assert cut["result"] is None
    checkpoint = json.loads(cut["snapshot"])
    assert checkpoint
    resumed = run(portable, frozen, step, ctx, state=checkpoint)
    assert outcome(resumed) == outcome(whole)
    # progress continues from the checkpoint, it does not start again
    assert resumed["fractions"][0] >= whole["fractions"][n // 3 - 1]
    if name == "sha256":
        assert resumed["slices"] == n   # hashlib cannot be saved: it re-reads from byte 0
    else:
        assert resumed["slices"] < n        # work before the checkpoint is not redone


def test_progress_rises_to_one_in_small_slices(portable, frozen, data):
    out = run(portable, frozen, {"id": "p", "handler": "crc32", "input": "log.bin"},
              ctx_for(data, "p", chunk=512))
    f = out["fractions"]
    assert len(f) == -(-len(data["blob"]) // 512)
    assert f == sorted(f) and f[-1] == 1.0 and f[0] > 0


# ---------------------------------------------------------------- inputs

def test_input_can_be_the_output_file_of_the_previous_step(portable, frozen, data):
    first = run(portable, frozen, {"id": "z", "handler": "compress", "input": "log.bin"},
                ctx_for(data, "chain-" + portable.impl))
    ctx = ctx_for(data, "chain-" + portable.impl, inputs=[first["result"]])
    out = run(portable, frozen, {"id": "h", "handler": "sha256"}, ctx)
    packed = open(first["result"]["path"], "rb").read()
    assert out["result"]["value"] == hashlib.sha256(packed).hexdigest()


def test_input_can_be_the_value_of_the_previous_step(portable, frozen, data):
    ctx = ctx_for(data, "v", inputs=[{"path": None, "value": "abc", "size": 3, "output_mb": 3e-6}])
    out = run(portable, frozen, {"id": "h", "handler": "sha256"}, ctx)
    assert out["result"]["value"] == hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize("path", ["/etc/passwd", "../secret", "a/../../b", ""])
def test_input_path_outside_the_data_root_is_refused(portable, frozen, data, path):
    out = run(portable, frozen, {"id": "h", "handler": "sha256", "input": path}, ctx_for(data, "w"))
    assert out["error"].startswith("input path must be relative to the data root")


def test_missing_input_file_is_a_handler_error(portable, frozen, data):
    out = run(portable, frozen, {"id": "h", "handler": "crc32", "input": "nope.bin"}, ctx_for(data, "w"))
    assert out["error"].startswith("input file not found")


def test_step_without_any_input_is_a_handler_error(portable, frozen, data):
    out = run(portable, frozen, {"id": "h", "handler": "crc32"}, ctx_for(data, "w"))
    assert out["error"].startswith("no input")


def test_registry_holds_the_shipped_handlers(portable):
    res = portable("""
import handlers
print(sorted(handlers.MODULE_OF), handlers.get("nope"), handlers.available("compress"))
""")
    assert res.returncode == 0, res.stdout
    assert res.stdout.strip() == \
        "['compress', 'crc32', 'encrypt', 'sha256', 'stats', 'synthetic'] None True"


def test_modules_lists_every_module_a_handler_lives_in(cpy):
    res = cpy("""
import handlers, json
print(json.dumps([sorted(handlers.MODULES), sorted(set(handlers.MODULE_OF.values()))]))
""").check()
    modules, homes = res.last_json
    assert modules == homes == sorted(HANDLER_MODULES)
    for name in modules:
        assert os.path.exists(os.path.join(tools.ROOT, "firmware", name + ".py"))


@pytest.mark.parametrize("name,inp,home", [
    ("crc32", "log.bin", "h_digest"), ("sha256", "log.bin", "h_digest"),
    ("compress", "log.bin", "h_deflate"), ("encrypt", "log.bin", "h_crypt"),
    ("stats", "series.csv", "h_stats"), ("synthetic", None, "h_synthetic")])
def test_running_one_handler_loads_only_the_front_and_its_own_module(mpy, frozen, data, name, inp, home):
    """A board's heap holds the code of the step it runs, not of every handler:
    before the step only the front is loaded, after it the front and one module."""
    res = mpy("""
import sys, json, handlers
ours = ("handlers",) + handlers.MODULES
loaded = lambda: sorted(m for m in ours if m in sys.modules)
before = loaded()
ctx = {"workdir": %r, "data_root": %r, "key": %r, "iv": %r}
step = {"id": "one_" + %r, "handler": %r, "input": %r, "compute_s": 3}
if %r == "compress":
    ctx["deflate_head"] = handlers.new_deflate_head()
res, n = handlers.drive(handlers.get(step["handler"]), step, {}, ctx)
print(json.dumps({"before": before, "after": loaded(), "slices": n}))
""" % (os.path.join(data["root"], "one"), data["root"], NIST_KEY, NIST_IV, name, name, inp, name),
        heap=HEAP, extra_path=(frozen,))
    assert res.returncode == 0, res.stdout
    out = res.last_json
    assert out["before"] == ["handlers"]
    assert out["after"] == sorted(["handlers", home])
    assert out["slices"] >= 1


def test_a_deflate_head_is_allocated_without_a_temporary_of_its_size(mpy, frozen):
    """A fragmented board heap must find one 2 KiB block for compress's hash
    table, not two (the table and a zeroed bytes to build it from)."""
    res = mpy("""
import gc, handlers
gc.collect()
before = gc.mem_alloc()
head = handlers.new_deflate_head()
print(gc.mem_alloc() - before, len(head), head.itemsize if hasattr(head, "itemsize") else 2)
""", heap=HEAP, extra_path=(frozen,))
    assert res.returncode == 0, res.stdout
    grown, entries, itemsize = (int(x) for x in res.stdout.split())
    assert entries * itemsize == 2048
    assert grown < 2048 + 512        # the table and small change, no second 2 KiB


def test_all_handlers_run_one_after_another_in_one_32k_heap_with_a_scratch_buffer(mpy, frozen, data):
    """A long-running board: the scratch buffers allocated once serve every step,
    so a fragmented heap never has to find a fresh 4 KiB (or 2 KiB) block; and,
    as the agent does, the handler modules are dropped after each step and
    imported again by the next one that needs them."""
    res = mpy("""
import handlers, json, sys
ctx = {"workdir": %r, "data_root": %r, "scratch": bytearray(handlers.DEFLATE_SEGMENT),
       "deflate_head": handlers.new_deflate_head(), "key": %r, "iv": %r}
out = {}
for rnd in range(3):
    for name, inp in (("crc32", "log.bin"), ("sha256", "log.bin"), ("compress", "log.bin"),
                      ("encrypt", "log.bin"), ("stats", "series.csv")):
        res, n = handlers.drive(handlers.get(name), {"id": "m_" + name, "input": inp}, {}, ctx)
        out[name] = res["value"] if res["path"] is None else res["size"]
        for module in handlers.MODULES:
            sys.modules.pop(module, None)
print(json.dumps(out))
""" % (os.path.join(data["root"], "multi"), data["root"], NIST_KEY, NIST_IV),
        heap=HEAP, extra_path=(frozen,))
    assert res.returncode == 0, res.stdout
    out = res.last_json
    assert out["crc32"] == zlib.crc32(data["blob"])
    assert out["sha256"] == hashlib.sha256(data["blob"]).hexdigest()
    assert out["stats"]["count"] == len(data["values"])
    assert out["encrypt"] == 16 + (len(data["blob"]) // 16 + 1) * 16
    packed = open(os.path.join(data["root"], "multi", "m_compress.deflate"), "rb").read()
    assert out["compress"] == len(packed) and zlib.decompress(packed, -15) == data["blob"]


def test_workload_knows_exactly_the_registered_handler_names(cpy):
    res = cpy("import handlers, workload\nprint(sorted(handlers.MODULE_OF) == sorted(workload.HANDLER_NAMES))").check()
    assert res.stdout.strip() == "True"


def test_agent_scratch_buffer_fits_the_handlers_deflate_segment(cpy):
    res = cpy("import handlers, agent\nprint(agent.DEFLATE_SEGMENT >= handlers.DEFLATE_SEGMENT)").check()
    assert res.stdout.strip() == "True"
