"""Seeded, scriptable fault injector for a simulated node (MODELS.md "Fault
injector", RELIABILITY.md). It runs inside the node process (sim/node.py),
next to the real agent, and injects faults through the node's own doors:
the journal's file system, the link object, the sensor callables, the
simulated satellite, the scheduler's tasks and the agent's TMR cells.

A script is a list of faults (plain dicts). Times are simulated seconds since
the world's start (`at_s`); write indices count the journal's mutating
storage operations since this node process started (FaultFS: opens for
writing, write() calls, renames, removes, mkdirs), 1-based.

    {"kind": "reset", "at_s": T}                      reset the computer (cause "hard")
    {"kind": "power_cut", "write": N [, "torn": k]}   cut power at the N-th write
    {"kind": "flip_ram", "at_s": T [, "cell", "copy", "bit"]}   SEU in a TMR cell
    {"kind": "flip_storage", "at_s": T [, "file" (or its start), "bit", "reset": true]}
                                                      SEU in a stored journal or outbox byte;
                                                      then (default) a reset, so the
                                                      next boot reads it
    {"kind": "raise", "task": NAME, "at_s": T}        the task's next resume raises
    {"kind": "hang", "step": ID [, "mode": "spin"|"block", "once": false]}
                                                      the step hangs once it runs:
                                                      spin = never yields (only a
                                                      real-time watchdog ends it),
                                                      block = stops checking in
    {"kind": "brownout", "at_s": T, "soc": 0.12 | "drop": 0.3}   battery step down
    {"kind": "sensor", "sensor": "battery"|"temperature"|"eclipse"|"link",
     "mode": "stuck"|"range"|"fail", "at_s": T, "for_s": D [, "value": V]}
    {"kind": "link", "at_s": T, "for_s": D, "drop": p, "dup": p, "corrupt": p,
     "delay": p [, "delay_ms": MS]}                   per request, seeded

Missing choices (which cell, copy, bit, file, link fate) come from the
injector's own seeded generator, so a (script, seed) pair replays exactly.
Faults with `"once": true` (the default for all but `hang`) are remembered
in `state_path` across process restarts (a real-time watchdog kill, say).
"""
import json
import os

import faultscript
import worldfaults

try:
    from scheduler import sleep_ms
except ImportError:  # pragma: no cover - the module path always has lib/
    def sleep_ms(ms):
        return (0, ms)

KINDS = ("reset", "power_cut", "flip_ram", "flip_storage", "raise", "hang", "brownout",
         "sensor", "link")
SENSORS = {"battery": "_battery", "temperature": "_temperature", "eclipse": "_eclipse",
           "link": "_link"}
OUT_OF_RANGE = {"battery": 250.0, "temperature": 900.0, "eclipse": None, "link": None}
FRAMES = ("drop", "dup", "corrupt", "delay")


class InjectedFault(Exception):
    """Raised inside a task by a `raise` fault."""


class Rng:
    """xorshift32: the same numbers under MicroPython and CPython."""

    def __init__(self, seed):
        self.s = (int(seed) * 2654435761 + 0x9E3779B9) & 0xFFFFFFFF or 1

    def u32(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def below(self, n):
        return self.u32() % n if n > 0 else 0

    def random(self):
        return self.u32() / 4294967296.0

    def choice(self, seq):
        return seq[self.below(len(seq))]


def check_script(script):
    """Validate a fault script; returns it normalised (ids added) or raises
    ValueError naming the bad entry."""
    if not isinstance(script, list):
        raise ValueError("a fault script is a JSON list")
    out = []
    for i, f in enumerate(script):
        if not isinstance(f, dict) or f.get("kind") not in KINDS:
            raise ValueError("fault %d: kind must be one of %s" % (i, ", ".join(KINDS)))
        f = dict(f)
        f["id"] = i
        kind = f["kind"]
        if kind == "power_cut":
            if not isinstance(f.get("write"), int) or f["write"] < 1:
                raise ValueError("fault %d: power_cut needs write >= 1" % i)
        elif kind == "hang":
            if not isinstance(f.get("step"), str):
                raise ValueError("fault %d: hang needs step" % i)
            if f.get("mode", "spin") not in ("spin", "block"):
                raise ValueError("fault %d: hang mode is spin or block" % i)
        else:
            faultscript.check_at(f, i)
        if kind == "raise" and not isinstance(f.get("task"), str):
            raise ValueError("fault %d: raise needs task" % i)
        if kind == "sensor" and (f.get("sensor") not in SENSORS or
                                 f.get("mode", "stuck") not in ("stuck", "range", "fail")):
            raise ValueError("fault %d: sensor needs sensor in %s and mode stuck/range/fail"
                             % (i, ", ".join(SENSORS)))
        out.append(f)
    return out


class Injector:
    doors = True   # into the computer: the node's boot calls its hooks (sim/nodestart.py)

    def __init__(self, script=None, seed=0, state_path=None, echo=None):
        self.faults = check_script(script or [])
        self.seed = seed
        self.rng = Rng(seed)
        self.state_path = state_path
        self.echo = echo             # echo(dict): a line for a watching parent
        self.fired = {}              # id -> times fired (once-faults persist)
        self._load_state()
        self.counts = {}             # kind -> injected
        self.skipped = {}            # kind -> not injectable here (e.g. no agent.tmr)
        self.link_fates = {"drop": 0, "dup": 0, "corrupt": 0, "delay": 0, "pass": 0}
        self.writes_before = 0       # journal writes by earlier boots of this process
        self.fs = None               # the FaultFS of the running boot
        self.node = None
        self.agent = None
        self.resets = 0
        self.recoveries = []         # [(sim_ms, wall_ms)] reset -> compute resumed
        self._reset_at = None        # (sim_ms, wall_ms) of the last reset
        self.wrong_state = 0         # compute while the agent's own state forbids it
        self.wrong_detail = []
        self._fresh = False          # no compute yet since this boot

    # --- persistence of once-faults across process restarts --------------------

    def _load_state(self):
        self.fired.update(faultscript.load_fired(self.state_path, self.seed))

    def _save_state(self):
        worldfaults.save_fired(self.state_path, self.seed, self.fired)

    def _once(self, f):
        return f.get("once", f["kind"] != "hang")

    def _pending(self, f):
        return not (self._once(f) and f["id"] in self.fired)

    def _fire(self, f, detail=None):
        kind = f["kind"]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.fired[f["id"]] = self.fired.get(f["id"], 0) + 1
        if self._once(f):
            self._save_state()
        if self.echo is not None:
            line = {"fault": kind, "id": f["id"]}
            if self.node is not None:
                line["t_s"] = self.node.clock.now_ms() // 1000
            if detail:
                line.update(detail)
            self.echo(line)

    def _skip(self, f, why):
        self.skipped[f["kind"]] = why
        self.fired[f["id"]] = self.fired.get(f["id"], 0)  # never retried
        if self._once(f):
            self.fired[f["id"]] = 1

    # --- hooks the node calls ---------------------------------------------------------

    def storage_fs(self):
        """The journal's file system for the next boot: a FaultFS counting
        writes (and cutting power at a scripted index), or None."""
        from faultfs import FaultFS
        if self.fs is not None:
            self.writes_before += self.fs.ops
        cut = None
        torn = None
        for f in self.faults:
            if f["kind"] == "power_cut" and self._pending(f):
                rel = f["write"] - self.writes_before
                if rel >= 1 and (cut is None or rel < cut):
                    cut, torn = rel, f.get("torn")
        self.fs = FaultFS(cut_at=cut, torn=torn)
        return self.fs

    def power_cut_now(self):
        """True once the running boot's storage lost power (a scripted cut)."""
        fs = self.fs
        if fs is None or not fs.dead:
            return False
        n = self.writes_before + fs.ops
        for f in self.faults:
            if f["kind"] == "power_cut" and self._pending(f) and f["write"] <= n:
                self._fire(f, {"write": f["write"]})
        return True

    def wrap_link(self, link):
        return FaultyLink(link, self) if self._has("link") else link

    def before_boot(self, node):
        self.node = node

    def after_boot(self, node, agent):
        """Install the per-boot hooks on a freshly booted agent."""
        self.node = node
        self.agent = agent
        self._fresh = True
        self._wrap_sensors(agent.sensors)
        for f in self.faults:
            if f["kind"] == "hang" and self._pending(f):
                self._install_hang(agent, f)

    def note_reset(self, cause, now_ms, wall_ms):
        """The node resets now; if a step was at work, time its recovery."""
        self.resets += 1
        agent = self.agent
        self.agent = None
        try:
            steps = agent.state["steps"] if agent is not None and agent.state else {}
        except Exception:
            steps = {}
        for sid in steps:
            if steps[sid].get("status") == "running":
                self._reset_at = (now_ms, wall_ms)
                return

    def tick(self, node, now_ms):
        """Fire the time-based faults that are due. Returns a reset cause when
        the node must reset now, else None."""
        due_s = now_ms / 1000.0
        cause = None
        for f in self.faults:
            kind = f["kind"]
            if kind in ("power_cut", "hang", "sensor", "link") or not self._pending(f):
                continue
            if f.get("at_s", 0) > due_s or f["id"] in self.fired:
                continue
            if kind == "reset":
                self._fire(f)
                cause = "hard"
            elif kind == "flip_ram":
                self._flip_ram(f)
            elif kind == "flip_storage":
                if self._flip_storage(node, f) and f.get("reset", True):
                    cause = "hard"
            elif kind == "raise":
                self._raise_in_task(f)
            elif kind == "brownout":
                self._brownout(node, f)
        return cause

    def report(self):
        n = len(self.recoveries)
        return {"seed": self.seed, "injected": self.counts, "skipped": self.skipped,
                "link": self.link_fates, "resets": self.resets,
                "writes": self.writes_before + (self.fs.ops if self.fs else 0),
                "recoveries": n,
                "recovery_sim_ms": (sum(r[0] for r in self.recoveries) // n) if n else None,
                "recovery_wall_ms": (sum(r[1] for r in self.recoveries) // n) if n else None,
                "wrong_state": self.wrong_state, "wrong_detail": self.wrong_detail[:5]}

    def _has(self, kind):
        for f in self.faults:
            if f["kind"] == kind:
                return True
        return False

    # --- RAM and storage upsets ----------------------------------------------------------

    def _flip_ram(self, f):
        agent = self.agent
        cells = getattr(agent, "tmr", None) if agent is not None else None
        if not cells:
            self._skip(f, "the agent has no TMR cells (agent.tmr)")
            return
        names = sorted(cells)
        name = f.get("cell") if f.get("cell") in cells else self.rng.choice(names)
        copy = f.get("copy") if f.get("copy") in (0, 1, 2) else self.rng.below(3)
        cell = cells[name]
        if isinstance(f.get("bit"), int):
            bit = f["bit"]
        elif isinstance(cell.copies[copy], str):
            # a text cell: keep the byte 7-bit (MicroPython cannot decode the
            # result as text otherwise; lib/tmr.py Cell.flip raises UnicodeError)
            bit = 8 * self.rng.below(4) + self.rng.below(7)
        else:
            bit = self.rng.below(32)
        try:
            cell.flip(copy, bit)
        except Exception as exc:
            self._skip(f, "Cell.flip(%d, %d) on %s raised %s" % (copy, bit, name, type(exc).__name__))
            return
        self._fire(f, {"cell": name, "copy": copy, "bit": bit})

    def _flip_storage(self, node, f):
        from faultfs import FaultFS
        root = node.cfg["storage_root"].rstrip("/")
        # what is acknowledged lives here: the journal and the outbox spool (both two copies)
        files = journal_files(root, ("journal.", "journal2.", "outbox."))
        if f.get("file"):  # a file's name, or the start of one ("outbox.a.")
            files = [(p, s) for (p, s) in files if p.rsplit("/", 1)[-1].startswith(f["file"])]
        total = 0
        for p, size in files:
            total += size
        if total <= 0:
            self._skip(f, "no stored journal bytes to flip")
            return False
        bit = f.get("bit") if isinstance(f.get("bit"), int) else self.rng.below(total * 8)
        bit %= total * 8
        for p, size in files:
            if bit < size * 8:
                FaultFS().flip_bit(p, bit)
                self._fire(f, {"file": p.rsplit("/", 1)[-1], "bit": bit})
                return True
            bit -= size * 8
        return False

    # --- tasks: exceptions and hangs ------------------------------------------------------

    def _raise_in_task(self, f):
        agent = self.agent
        if agent is None:
            return
        task = agent.sched.tasks.get(f["task"])
        if task is None:
            self._skip(f, "no task %s" % f["task"])
            return
        if task.gen is None or task.value is not None:
            return  # not started, backing off, or about to receive a value: next round
        task.gen = _throwing(task.gen, InjectedFault("injected into %s" % f["task"]))
        self._fire(f, {"task": f["task"]})

    def _install_hang(self, agent, f):
        orig = agent._run_step
        inj = self

        def run_step(job, step):
            gen = orig(job, step)
            if step["id"] != f["step"] or not inj._pending(f):
                result = yield from gen
                return result
            # let the step start (step.started is on flash, status running),
            # then hang at its first slice
            try:
                w = next(gen)
            except StopIteration:
                return None
            inj._fire(f, {"step": step["id"], "mode": f.get("mode", "spin")})
            if f.get("mode", "spin") == "spin":
                while True:   # never yields: the scheduler, the supervisor and
                    pass      # the in-process watchdog are all stuck behind it
            yield w
            while True:       # block: wakes up, never finishes, never checks in...
                yield sleep_ms(3600 * 1000)

        agent._run_step = run_step

    # --- the satellite: brown-out, sensors ---------------------------------------------------

    def _brownout(self, node, f):
        self._fire(f, worldfaults.brownout(node.sat, f))

    def _wrap_sensors(self, sensors):
        faults = [f for f in self.faults if f["kind"] == "sensor"]
        for f in faults:
            attr = SENSORS[f["sensor"]]
            fn = getattr(sensors, attr, None)
            if fn is None:
                continue
            setattr(sensors, attr, self._faulty_reading(f, fn))
        inner = sensors._apply_load
        inj = self

        def apply_load(power_w, memory_mb=0):
            if power_w > 0:
                inj._computing()
            if inner is not None:
                inner(power_w, memory_mb)

        sensors._apply_load = apply_load

    def _faulty_reading(self, f, fn):
        inj = self
        held = []

        def read():
            node = inj.node
            t = node.clock.now_ms() / 1000.0 if node is not None else 0
            at = f.get("at_s", 0)
            if not (at <= t < at + f.get("for_s", 60)):
                del held[:]
                return fn()
            if f["id"] not in inj.fired:
                inj._fire(f, {"sensor": f["sensor"], "mode": f.get("mode", "stuck")})
            mode = f.get("mode", "stuck")
            if mode == "fail":
                raise OSError("injected sensor failure")
            if mode == "range":
                return f.get("value", OUT_OF_RANGE[f["sensor"]])
            if not held:
                held.append(f["value"] if "value" in f else fn())
            return held[0]

        return read

    def _computing(self):
        """The step asks the bus for compute power: note a recovery after a
        reset, and check the agent's own state allows it."""
        node = self.node
        if self._reset_at is not None and node is not None:
            t0, w0 = self._reset_at
            self._reset_at = None
            self.recoveries.append((node.clock.now_ms() - t0, _wall_diff(_wall_ms(), w0)))
        if self._fresh and self.echo is not None and node is not None:
            self.echo({"resumed": node.clock.now_ms() // 1000})  # first compute of this boot
        self._fresh = False
        agent = self.agent
        if agent is None:
            return
        st = agent.state
        why = None
        if st.get("mode") == "safe":
            why = "safe mode"
        elif st["job"] is None:
            why = "no job"
        else:
            running = [sid for sid in st["steps"] if st["steps"][sid]["status"] == "running"]
            if not running:
                why = "no step running"
            else:
                steps = dict((s["id"], s) for s in st["job"]["steps"])
                for dep in steps[running[0]]["depends_on"]:
                    if st["steps"][dep]["status"] != "done":
                        why = "step %s before %s is done" % (running[0], dep)
        if why is not None:
            self.wrong_state += 1
            if len(self.wrong_detail) < 5:
                self.wrong_detail.append(why)

    # --- the link --------------------------------------------------------------------------------

    def link_fate(self):
        """What happens to the request about to go out: None (delivered) or
        one of drop, dup, corrupt, delay."""
        node = self.node
        t = node.clock.now_ms() / 1000.0 if node is not None else 0
        for f in self.faults:
            if f["kind"] != "link":
                continue
            at = f.get("at_s", 0)
            if not (at <= t < at + f.get("for_s", 1e12)):
                continue
            x = self.rng.random()
            for fate in FRAMES:
                p = float(f.get(fate, 0))
                if x < p:
                    self.link_fates[fate] += 1
                    self.counts["link"] = self.counts.get("link", 0) + 1
                    return fate, f
                x -= p
        self.link_fates["pass"] += 1
        return None, None


class FaultyLink:
    """The node's link with frames dropped, duplicated, corrupted or delayed.
    drop: half the time the request never leaves, half the time the reply is
    lost after the Console acted on it; either way the agent sees link down.
    dup: the request goes out twice (the agent sees the second reply).
    corrupt: a request body is cut short (the Console answers 400), or, for a
    request without a body, the reply is garbled (it fails to parse).
    delay: the exchange takes up to delay_ms more (simulated)."""

    def __init__(self, link, injector):
        self.link = link
        self.inj = injector

    def __getattr__(self, name):
        return getattr(self.link, name)

    def call(self, method, path, body=None, raw=None):
        fate, f = self.inj.link_fate()
        link = self.link
        if fate == "delay":
            yield sleep_ms(1 + self.inj.rng.below(int(f.get("delay_ms", 1000))))
        if fate == "drop" and self.inj.rng.below(2) == 0:
            link.failures += 1
            link.last_error = "injected: request lost"
            return None, "injected: request lost"
        if fate == "corrupt" and (body is not None or raw is not None):
            data = raw if raw is not None else json.dumps(body)
            cut = 1 + self.inj.rng.below(max(1, len(data) - 1))
            result = yield from link.call(method, path, raw=data[:cut])
            return result
        status, reply = yield from link.call(method, path, body, raw)
        if fate == "drop":
            link.failures += 1
            link.last_error = "injected: reply lost"
            return None, "injected: reply lost"
        if fate == "dup":
            status, reply = yield from link.call(method, path, body, raw)
        if fate == "corrupt":
            return status, None
        return status, reply


def _throwing(gen, exc):
    """A task generator whose next resume raises `exc` where it last yielded."""
    try:
        w = gen.throw(exc)
    except StopIteration:
        return
    while True:
        value = yield w
        try:
            w = gen.send(value)
        except StopIteration:
            return


def journal_files(root, prefixes=("journal.", "journal2.")):
    """[(path, size)] of the journal's files under root, sorted by name: both
    copies of the journal (journal.* and journal2.*), or those of `prefixes`."""
    out = []
    try:
        names = os.listdir(root)
    except OSError:
        return out
    for name in sorted(names):
        if name.startswith(prefixes) and not name.endswith(".tmp"):
            path = root + "/" + name
            try:
                size = os.stat(path)[6]
            except OSError:
                continue
            if size > 0:
                out.append((path, size))
    return out


def same_state(a, b):
    """Deep equality, floats to 1e-9 relative: MicroPython writes floats with
    fewer digits, so a state rebuilt through another snapshot differs in the
    last bits of its floats without being any different (and encoded events
may list their keys in another order)."""
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return False
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        for k in a:
            if k not in b or not same_state(a[k], b[k]):
                return False
        return True
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return False
        for i in range(len(a)):
            if not same_state(a[i], b[i]):
                return False
        return True
    if isinstance(a, str) and isinstance(b, str) and a != b and a[:1] == "{" == b[:1]:
        try:  # an encoded event in the outbox: key order is not content
            return same_state(json.loads(a), json.loads(b))
        except ValueError:
            return False
    return a == b


def storage_sweep(root, flips, seed=0, scratch=None, max_log_bytes=16384):
    """Flip `flips` random bits, one at a time, in copies of the journal under
    `root`, and classify what a boot makes of each (the store-level bit-flip
    campaign): {"flips", "detected", "masked", "silent", "rolled_back",
    "unreadable"}. detected = the store noticed (CRC: slot fallback, records
    cut, corrupt); masked = the rebuilt state is exactly the reference;
    silent = undetected AND the state differs (must be 0); rolled_back =
    detected and the state is older than the reference (records after the
    flip were cut)."""
    from journal import Journal
    scratch = scratch or root.rstrip("/") + ".sweep"
    try:
        os.mkdir(scratch)
    except OSError:
        pass
    files = journal_files(root)
    blobs = []
    for path, size in files:
        with open(path, "rb") as f:
            blobs.append((path.rsplit("/", 1)[-1], f.read()))
    ref = Journal(root, max_log_bytes).open().state
    total = 0
    for name, data in blobs:
        total += len(data)
    rng = Rng(seed)
    out = {"flips": 0, "detected": 0, "masked": 0, "silent": 0, "rolled_back": 0,
           "unreadable": 0, "bits": total * 8, "seq_lost": 0, "files": len(blobs)}
    for _ in range(flips):
        for name in os.listdir(scratch):
            os.remove(scratch + "/" + name)
        bit = rng.below(total * 8)
        for name, data in blobs:
            if 0 <= bit < len(data) * 8:
                data = bytearray(data)
                data[bit >> 3] ^= 1 << (bit & 7)
            bit -= len(data) * 8
            with open(scratch + "/" + name, "wb") as f:
                f.write(data)
        j = Journal(scratch, max_log_bytes)
        try:
            j.open()
        except Exception:
            out["unreadable"] += 1
            out["flips"] += 1
            continue
        noticed = j.corrupt or j.damage() or any(
            st.stats.get("records_cut", 0) for st in getattr(j, "stores", (j.store,)))
        same = same_state(j.state, ref)
        out["flips"] += 1
        if noticed:
            out["detected"] += 1
            if not same and j.state["seq"] <= ref["seq"]:
                out["rolled_back"] += 1
                out["seq_lost"] += ref["seq"] - j.state["seq"]
        elif same:
            out["masked"] += 1
        else:
            out["silent"] += 1
    return out


try:
    import time as _time
    _wall_ms = _time.ticks_ms
    _wall_diff = _time.ticks_diff
except AttributeError:  # CPython
    import time as _time

    def _wall_ms():
        return int(_time.monotonic() * 1000)

    def _wall_diff(a, b):
        return a - b
