"""lib/store.py: the power-cut-safe journal + A/B snapshots.

The exhaustive loops run inside one interpreter per scenario (the real
MicroPython unix port, on its POSIX filesystem and on littlefs in a RAM block
device, and CPython for the portable cases); they print one JSON line of counts
and failures, and pytest asserts on it.
"""
import json
import os

import pytest

from tools import ROOT, upy


# Code shared by the scenario scripts: a scripted sequence of appends and
# snapshots, the owner's fold, and the model of what must survive.
PRELUDE = r'''
import json, os
from store import Store, StoreFull, hold_opener
from faultfs import FaultFS, PowerCut, mount_ram_littlefs

ROOT = CFG["root"]
if CFG.get("lfs"):
    mount_ram_littlefs("/lfs", 512, CFG.get("blocks", 128))
    os.mkdir("/lfs/st")
    ROOT = "/lfs/st"

def rec(i):
    if i % 3 == 2:
        return bytes((i % 256, 255 - i % 256, 0)) * (1 + i % 4)
    return {"i": i, "pad": "x" * (i * 7 % 23)}

# ('a', record) appends, ('s',) snapshots the folded state
STEPS = []
for _i in range(CFG.get("records", 15)):
    STEPS.append(("a", rec(_i)))
    if _i % 4 == 3:
        STEPS.append(("s",))

def fold(state, recs):
    n = state["n"] if state else 0
    total = state["sum"] if state else 0
    for r in recs:
        n += 1
        total += r["i"] if isinstance(r, dict) else r[0]
    return {"n": n, "sum": total}

def expected(k):
    """(snapshot state, records since it) after the first k steps."""
    state, recs = None, []
    for step in STEPS[:k]:
        if step[0] == "a":
            recs.append(step[1])
        else:
            state, recs = fold(state, recs), []
    return state, recs

def new_store(fs=None):
    return Store(ROOT, fs=fs, max_log_bytes=CFG.get("max_log", 16384),
                 max_snapshot_bytes=256, max_record_bytes=128)

def wipe():
    for n in os.listdir(ROOT):
        os.remove(ROOT + "/" + n)

def run(cut=None, torn=None, steps=None):
    """Run the steps through a FaultFS cutting power at op `cut`; return the
    number of steps that returned, and the FaultFS."""
    fs = FaultFS(cut_at=cut, torn=torn)
    done = 0
    try:
        st = new_store(fs).open()
        state, recs = None, []
        for step in (STEPS if steps is None else steps):
            if step[0] == "a":
                st.append(step[1])
                recs.append(step[1])
            else:
                state, recs = fold(state, recs), []
                st.snapshot(state)
            done += 1
    except PowerCut:
        pass
    return done, fs

def seen():
    st = new_store().open()
    return st, (st.state, list(st.records()))

def files():
    return sorted(os.listdir(ROOT))

def read(path):
    with open(path, "rb") as f:
        return f.read()

def write(path, data):
    with open(path, "wb") as f:
        f.write(data)

FAIL = []
def check(ok, fmt, *args):
    # formats only on failure: the scenario must fit a 34K heap
    if not ok and len(FAIL) < 5:
        FAIL.append(fmt % args)
'''

POWER_CUT = r'''
total = run()[1].ops
cuts = old = new = recovery_cuts = 0
for cut in range(1, total + 2):
    for torn in (None, 5, 13):
        if cut > total and torn:
            continue
        # j == 0: reopen at once; j >= 1: power is cut again at op j of the recovery
        j = 0
        while True:
            wipe()
            done, fs = run(cut, torn)
            cuts += 1
            allowed = [expected(done)]
            if done < len(STEPS) and STEPS[done][0] == "s":
                allowed.append(expected(done + 1))  # the snapshot may have committed
            if j:
                rfs = FaultFS(cut_at=j)
                try:
                    new_store(rfs).open()
                except PowerCut:
                    recovery_cuts += 1
                if not rfs.dead:
                    break
            st, got = seen()
            check(got in allowed, "cut=%d torn=%s j=%d done=%d got=%r want=%r",
                  cut, torn, j, done, got, allowed)
            check(not st.corrupt, "corrupt after cut %d", cut)
            if got == allowed[0]:
                old += 1
            else:
                new += 1
            # the reopened store carries on: a new record lands after the good ones
            st.append({"after": cut})
            st2, got2 = seen()
            check(got2 == (got[0], got[1] + [{"after": cut}]),
                  "append after recovery cut=%d got=%r", cut, got2)
            check(not [n for n in files() if n.endswith(".tmp")], "scratch file left: %r", files())
            j += 1
print(json.dumps({"ops": total, "cuts": cuts, "old": old, "new": new,
                  "recovery_cuts": recovery_cuts, "fail": FAIL}))
'''

TRUNCATE = r'''
hold_opener()  # a thousand opens: the recovery code stays loaded (as for journal.open's three)
wipe()
run()
st, got = seen()
state, recs = expected(len(STEPS))
check(got == (state, recs), "clean run %r", got)
log = ROOT + "/" + [n for n in files() if n.endswith(".log")][-1]
whole = read(log)
ends, pos = [], 0
for r in recs:
    pos += 8 + len(r if isinstance(r, bytes) else json.dumps(r).encode())
    ends.append(pos)
check(pos == len(whole), "log size %d != %d", len(whole), pos)
offsets = 0
for off in range(len(whole) + 1):
    write(log, whole[:off])
    st, got = seen()
    keep = len([e for e in ends if e <= off])
    check(got == (state, recs[:keep]), "truncated at %d: %r", off, got)
    cut = 0 if off in ends or off == 0 else 1
    check(st.stats["records_cut"] == cut, "records_cut at %d: %r", off, st.stats)
    st.append({"after": off})  # lands right after the last whole record
    st = None
    st, got = seen()
    check(got == (state, recs[:keep] + [{"after": off}]), "append after cut at %d: %r", off, got)
    offsets += 1
print(json.dumps({"offsets": offsets, "last_record": len(whole) - ends[-2],
                  "records": len(recs), "fail": FAIL}))
'''

BIT_FLIP = r'''
wipe()
run()
st, got = seen()
state, recs = expected(len(STEPS))
# the snapshot before the last one, and every record appended after it
snaps = [k for k in range(len(STEPS)) if STEPS[k][0] == "s"]
prev_state = expected(snaps[-1])[0]
since_prev = [s[1] for s in STEPS[snaps[-2] + 1:] if s[0] == "a"]
names = files()
slots = [ROOT + "/" + n for n in names if n.endswith(".a") or n.endswith(".b")]
log = ROOT + "/" + [n for n in names if n.endswith(".log")][-1]
saved = dict((ROOT + "/" + n, read(ROOT + "/" + n)) for n in names)
def restore():
    wipe()
    for p in saved:
        write(p, saved[p])
ends, pos = [], 0
for r in recs:
    pos += 8 + len(r if isinstance(r, bytes) else json.dumps(r).encode())
    ends.append(pos)
flipper = FaultFS()
log_bits = 0
for bit in range(len(saved[log]) * 8):
    restore()
    flipper.flip_bit(log, bit)
    st, got = seen()
    bad = len([e for e in ends if e <= bit // 8])  # index of the hit record
    check(got == (state, recs[:bad]), "log bit %d: %r", bit, got)
    check(st.stats["records_cut"] == 1, "log bit %d not counted", bit)
    log_bits += 1
slot_bits = fallbacks = 0
for slot in slots:
    for bit in range(len(saved[slot]) * 8):
        restore()
        flipper.flip_bit(slot, bit)
        st, got = seen()
        check(st.stats["slot_fallbacks"] == 1, "slot bit %d not counted", bit)
        check(not st.corrupt, "slot bit %d: corrupt", bit)
        if st.generation == len(snaps):
            check(got == (state, recs), "older slot bit %d: %r", bit, got)
        else:  # newest slot hit: the older one + its journal, nothing lost
            fallbacks += 1
            check(got == (prev_state, since_prev), "newest slot bit %d: %r", bit, got)
            check(fold(*got) == fold(state, recs), "fold differs after fallback")
        slot_bits += 1
# both slots hit: safe defaults, flagged, and the store heals on the next append
both = 0
for bit in (0, 40, 100, 160):
    restore()
    for slot in slots:
        flipper.flip_bit(slot, min(bit, len(saved[slot]) * 8 - 1))
    st, got = seen()
    check(got == (None, []) and st.corrupt and st.stats["corrupt"], "both slots bad: %r", got)
    st.append({"fresh": bit})
    st2, got2 = seen()
    check(got2 == (None, [{"fresh": bit}]) and not st2.corrupt, "after reset: %r", got2)
    check(st2.stats["slot_fallbacks"] == 0, "bad slot left behind")
    both += 1
print(json.dumps({"log_bits": log_bits, "slot_bits": slot_bits, "fallbacks": fallbacks,
                  "both": both, "fail": FAIL}))
'''

BOUND = r'''
wipe()
st = new_store().open()
bound = st.bound_bytes()
biggest = compactions = full = 0
state, recs = None, []
for i in range(400):
    r = rec(i)
    try:
        st.append(r)
        recs.append(r)
    except StoreFull:
        full += 1
    if st.needs_compaction():
        state, recs = fold(state, recs), []
        st.snapshot(state)
        compactions += 1
    used = 0
    for n in files():
        used += os.stat(ROOT + "/" + n)[6]
    biggest = max(biggest, used)
    check(used <= bound, "store %d bytes > bound %d at %d", used, bound, i)
st = None  # a reboot: the old store object is gone
st, got = seen()
check(got == (state, recs), "after compactions: %r", got)
check(fold(*got)["n"] == 400, "lost records: %r", fold(*got))
print(json.dumps({"bound": bound, "biggest": biggest, "compactions": compactions,
                  "full": full, "files": files(), "fail": FAIL}))
'''


def script(body, **cfg):
    return "CFG = %r\n" % (cfg,) + PRELUDE + body


def small_heap(runner, tmp_path, body, heap="34K", **cfg):
    """Run a scenario as a board would: modules precompiled to .mpy (compiling
    source needs more heap than running it), under `-X heapsize=34K` (the
    store, and at an open its recovery code, lib/storeopen.py, beside it)."""
    if runner.impl != "micropython":
        return runner(script(body, **cfg), timeout=120)
    out = tmp_path / "mpy"
    out.mkdir()
    (tmp_path / "scenario.py").write_text(script(body, **cfg))
    for src in ("lib/store.py", "lib/storeopen.py", "sim/faultfs.py", str(tmp_path / "scenario.py")):
        name = os.path.basename(src)[:-3] + ".mpy"
        upy.compile_one(os.path.join(ROOT, src), str(out / name))
    return runner("import scenario\n", heap=heap, timeout=120, extra_path=(str(out),))


def outcome(res):
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = res.last_json
    assert out is not None, res.stdout[-3000:]
    assert out["fail"] == [], out["fail"]
    return out


@pytest.fixture
def root(tmp_path):
    d = tmp_path / "store"
    d.mkdir()
    return str(d)


def check_power_cut(out):
    # every op index was cut (plus one clean run), each with and without a torn write
    assert out["ops"] > 30
    assert out["cuts"] >= 3 * out["ops"]
    assert out["old"] > 0 and out["new"] > 0  # snapshot cuts landed on both sides
    assert out["recovery_cuts"] > 0           # and cuts during recovery were tried


def check_truncate(out):
    assert out["records"] >= 2 and out["offsets"] > out["last_record"]


def check_bit_flip(out):
    assert out["log_bits"] > 500 and out["slot_bits"] > 300
    assert 0 < out["fallbacks"] < out["slot_bits"]
    assert out["both"] == 4


def check_bound(out):
    assert out["compactions"] >= 5 and out["full"] == 0
    assert out["biggest"] <= out["bound"]
    assert len(out["files"]) <= 4


# -- power cuts ------------------------------------------------------------------

def test_power_cut_at_every_write_recovers_exactly_the_completed_steps(mpy, tmp_path, root):
    # 64K: the fault injector, the model and the checker come on top of the store
    check_power_cut(outcome(small_heap(mpy, tmp_path, POWER_CUT, heap="64K", root=root)))


def test_power_cut_at_every_write_on_cpython(cpy, root):
    check_power_cut(outcome(cpy(script(POWER_CUT, root=root), timeout=120)))


def test_log_truncated_at_every_byte_keeps_exactly_the_whole_records(portable, tmp_path, root):
    check_truncate(outcome(small_heap(portable, tmp_path, TRUNCATE, root=root)))


# -- single-event upsets ---------------------------------------------------------

def test_any_flipped_bit_in_a_record_or_slot_is_detected_and_the_fallback_used(
        mpy, tmp_path, root):
    check_bit_flip(outcome(small_heap(mpy, tmp_path, BIT_FLIP, heap="64K", root=root)))


# -- size bound ------------------------------------------------------------------

def test_compaction_keeps_the_store_under_its_bound(portable, tmp_path, root):
    check_bound(outcome(small_heap(portable, tmp_path, BOUND, root=root, max_log=600)))


# -- littlefs --------------------------------------------------------------------

@pytest.mark.parametrize("body,checker", [(POWER_CUT, check_power_cut), (TRUNCATE, check_truncate),
                                          (BIT_FLIP, check_bit_flip), (BOUND, check_bound)],
                         ids=["power_cut", "truncate", "bit_flip", "bound"])
def test_same_suite_on_littlefs_in_a_ram_block_device(mpy, body, checker):
    cfg = {"root": None, "lfs": True}
    if checker is check_bound:
        cfg["max_log"] = 600
    # the heap holds the 64 KiB RAM disk as well
    checker(outcome(mpy(script(body, **cfg), heap="256K", timeout=180)))


# -- API -------------------------------------------------------------------------

def test_records_round_trip_bytes_and_json_and_refuse_what_does_not_fit(portable, root):
    res = portable('''
        import json
        from store import Store, StoreFull
        st = Store(%r, max_log_bytes=64, max_record_bytes=40).open()
        st.append(b"\\x00\\xff raw")
        st.append({"seq": 1, "ok": True, "v": [1.5, None]})
        st.append("text")
        refused = []
        try:
            st.append("x" * 50)
        except ValueError:
            refused.append("too_big")
        while True:
            try:
                st.append(7)
            except StoreFull:
                refused.append("full")
                break
        compact = st.needs_compaction()
        st2 = Store(%r, max_log_bytes=64, max_record_bytes=40).open()
        got = list(st2.records())
        print(json.dumps({"first": [got[0] == b"\\x00\\xff raw", got[1], got[2]],
                          "n": len(got), "refused": refused, "compact": compact,
                          "log_bytes": st2.log_bytes(), "hard": st2.hard_log_bytes}))
    ''' % (root, root))
    out = res.check().last_json
    assert out["first"] == [True, {"seq": 1, "ok": True, "v": [1.5, None]}, "text"]
    assert out["refused"] == ["too_big", "full"] and out["compact"] is True
    assert out["n"] > 3 and out["log_bytes"] <= out["hard"]


def test_snapshot_restarts_the_journal_and_the_newest_slot_wins(portable, root):
    res = portable('''
        import json
        from store import Store
        st = Store(%r).open()
        st.append(1)
        st.snapshot({"gen": "one"})
        st.append(2)
        st.snapshot({"gen": "two"})
        st.append(3)
        st2 = Store(%r).open()
        print(json.dumps({"state": st2.state, "gen": st2.generation,
                          "records": list(st2.records()), "stats": st2.stats}))
    ''' % (root, root))
    out = res.check().last_json
    assert out["state"] == {"gen": "two"} and out["gen"] == 2
    assert out["records"] == [3]
    assert out["stats"]["slot_fallbacks"] == 0 and out["stats"]["corrupt"] is False
    assert sorted(os.listdir(root)) == ["journal.1.log", "journal.2.log", "journal.a", "journal.b"]


def test_a_streamed_snapshot_holds_the_same_bytes_as_one_piece(portable, root):
    res = portable('''
        import binascii, json, jsonsink
        obj = {"a": [1, 2.5, None, True], "t": "h\\u00e9 \\"q\\"", "n": {"k": list(range(300))}}
        text = json.dumps(obj).encode()
        with open(%r + "/s.bin", "wb") as f:
            crc = jsonsink.write(obj, f, 7)
        with open(%r + "/s.bin", "rb") as f:
            got = f.read()
        print(json.dumps({"n": jsonsink.measure(obj) == len(text), "bytes": got == text,
                          "crc": crc == binascii.crc32(text, 7) & 0xFFFFFFFF}))
    ''' % (root, root))
    assert res.check().last_json == {"n": True, "bytes": True, "crc": True}


def test_a_snapshot_with_no_block_for_it_in_a_fragmented_heap_is_streamed(mpy, tmp_path, root):
    """A long-running board: the state's JSON no longer fits any free block of
    the heap in one piece; the snapshot streams it instead and reads back whole."""
    out = tmp_path / "mpy"
    out.mkdir()
    for src in ("lib/store.py", "lib/storeopen.py", "lib/jsonsink.py"):
        upy.compile_one(os.path.join(ROOT, src), str(out / (os.path.basename(src)[:-3] + ".mpy")))
    res = mpy('''
import gc, json
from store import Store
state = {"items": ["item-%%04d" %% i for i in range(500)]}
gc.collect()
keep, holes = [], []
try:
    while True:                       # the heap in 96-byte pieces, every other one kept
        keep.append(bytearray(96))
        holes.append(bytearray(96))
except MemoryError:
    pass
holes = None
keep = keep[:len(keep) - 24]
gc.collect()
try:
    json.dumps(state)
    one_piece = True
except MemoryError:
    one_piece = False
Store(%r).open().snapshot(state)
keep = None
gc.collect()
st = Store(%r).open()
print(json.dumps({"one_piece": one_piece, "same": st.state == state, "gen": st.generation}))
''' % (root, root), heap="96K", extra_path=(str(out),))
    assert res.check().last_json == {"one_piece": False, "same": True, "gen": 1}


def test_a_record_with_no_block_for_it_in_a_fragmented_heap_is_streamed(mpy, tmp_path, root):
    """Taking a job on a long-running board: the job record's JSON no longer
    fits any free block of the heap in one piece; the append streams it
    (checksummed first, then written: its head goes before it) and it reads
    back whole, after a record appended the ordinary way."""
    out = tmp_path / "mpy"
    out.mkdir()
    for src in ("lib/store.py", "lib/storeopen.py", "lib/jsonsink.py"):
        upy.compile_one(os.path.join(ROOT, src), str(out / (os.path.basename(src)[:-3] + ".mpy")))
    res = mpy('''
import gc, json
from store import Store
record = [["n", 1], ["job", {"steps": ["step-%%04d-%%s" %% (i, "x" * 40) for i in range(200)]}]]
st = Store(%r, max_record_bytes=16384).open()
st.append({"before": 1})
gc.collect()
keep, holes = [], []
try:
    while True:                       # the heap in 96-byte pieces, every other one kept
        keep.append(bytearray(96))
        holes.append(bytearray(96))
except MemoryError:
    pass
holes = None
keep = keep[:len(keep) - 24]
gc.collect()
try:
    json.dumps(record)
    one_piece = True
except MemoryError:
    one_piece = False
st.append(record)
keep = None
gc.collect()
st = Store(%r, max_record_bytes=16384).open()
print(json.dumps({"one_piece": one_piece, "records": list(st.records()) == [{"before": 1}, record],
                  "cut": st.stats["records_cut"]}))
''' % (root, root), heap="96K", extra_path=(str(out),))
    assert res.check().last_json == {"one_piece": False, "records": True, "cut": 0}
