"""The agent's journal: everything that must survive a reset, on top of the
power-cut-safe store (lib/store.py).

State is a plain dict, rebuilt at boot from the newest snapshot plus the
records appended since. Every change is a *record*: a list of operations
applied together, so an event and the state change it reports land in one
append — after a power cut either both happened or neither did. An event
counts as emitted once its record is on flash (RELIABILITY.md).

The outbox -- the events the Console has not acknowledged yet -- is not in
RAM: each event's text goes to the spool on flash (lib/spool.py, two copies)
just before the record that counts it, so RAM holds none of them however
long the link stays down. Its seqs on flash are local ones: the seq the
Console sees is the local one plus `shift` (which a "reseq" moves).

Operations:
    ["ev", seq]              event emitted (its text is already in the spool): seq advances
    ["ack", n]               Console stored every seq <= n: the spool drops them
    ["job", job]             a job accepted (validated, normalised)
    ["jset", key, value]     a field of the current job changes
    ["st", step_id, fields]  a step's state changes (status, work done, handler state ...)
    ["set", key, value]      a top-level field changes (boot_count, mode, shed, and the
                             dead letters' refused / dead / dead_top / dead_acked, ...)
    ["end", deployment_id]   the current job is over; remember its id (re-delivery)
    ["nonce", nonce]         an uplink nonce seen (replay memory)
    ["n", k]                 the record's number (first in every record: which copy is ahead)
    ["reseq", base]          the Console already holds seqs up to base (our store was
                             lost): renumber the unacknowledged outbox above it
"""
import sys

from spool import Spool, SpoolFull
from store import Store, encode, hold_opener


def step_defaults():
    """A step's fields at their defaults, left out of the job record on flash
    (accept.workload_step) and put back when the record is applied: the
    executor reads every field of a step. Built at each call, not kept: a
    board's heap holds it only while a job record is built or applied."""
    return (("type", "standard"), ("location", "onboard"), ("reason", "preset_defined"),
            ("power_w", None), ("memory_mb", 0), ("checkpoint_interval_s", 0),
            ("depends_on", ()), ("retry_policy", "retry_immediate"), ("max_retries", 1),
            ("handler", "synthetic"), ("input", None), ("params", None), ("prim", None),
            ("output_mb", 0.0), ("compute_s", 0.0))


MAX_DONE = 8       # finished deployment ids remembered against re-delivery
MAX_NONCES = 32    # uplink nonces remembered against replay
MAX_RECORD = 12288    # bytes: the largest record (an accepted job is the big one: 50 steps
                      # and 48 h of windows take ~8.4 KiB, accept.workload_step)
MAX_SNAPSHOT = 32768  # bytes: the state (the outbox is in the spool, not in it)


def fresh_state():
    return {"n": 0, "seq": 0, "acked": 0, "boot_count": 0, "mode": "normal", "job": None,
            "steps": {}, "done": [], "nonces": [], "shift": 0, "resets": 0,
            "quarantine": {}}


def apply(state, op):
    kind = op[0]
    if kind == "ev":
        state["seq"] = op[1]
    elif kind == "ack":
        if op[1] > state["acked"]:
            state["acked"] = op[1]
    elif kind == "job":
        state["job"] = op[1]
        state["steps"] = {}
        defaults = step_defaults()
        for step in op[1]["steps"]:
            for key, default in defaults:  # a compact record (accept.workload_step)
                if key not in step:
                    step[key] = [] if key == "depends_on" else default
            state["steps"][step["id"]] = {"status": "pending", "work_s": 0.0, "attempts": 0}
    elif kind == "jset":
        if state["job"] is not None:
            state["job"][op[1]] = op[2]
    elif kind == "st":
        s = state["steps"].get(op[1])
        if s is not None:
            for key in op[2]:
                s[key] = op[2][key]
    elif kind == "set":
        state[op[1]] = op[2]
    elif kind == "end":
        done = state["done"]
        done.append(op[1])
        if len(done) > MAX_DONE:
            del done[0]
        state["job"] = None
        state["steps"] = {}
    elif kind == "reseq":
        # the unacknowledged events (local seqs acked-shift+1 ...) go out as base+1 ...
        shift = op[1] - (state["acked"] - state["shift"])
        state["seq"] += shift - state["shift"]
        state["acked"] = op[1]
        state["shift"] = shift
    elif kind == "n":
        state["n"] = op[1]
    elif kind == "nonce":
        nonces = state["nonces"]
        nonces.append(op[1])
        if len(nonces) > MAX_NONCES:
            del nonces[0]


class Journal:
    """Two independent copies of the journal (journal and journal2), written
    record for record: a bit flip that cuts one copy's log short (its CRC
    fails) leaves the other whole. At open the copy that got furthest (the
    highest record number `n`) wins and the other is rebuilt from it; a power
    cut between the two appends is the same case. Flash is written twice;
    what is acknowledged survives a single upset of either copy."""

    # for accept.py and journalopen.py (this module is not in sys.modules)
    step_defaults = staticmethod(step_defaults)
    fresh_state = staticmethod(fresh_state)
    apply = staticmethod(apply)

    def __init__(self, root, max_log_bytes=16384, fs=None, max_record_bytes=MAX_RECORD,
                 max_snapshot_bytes=MAX_SNAPSHOT):
        self.stores = tuple(Store(root, name=name, max_log_bytes=max_log_bytes, fs=fs,
                                  max_record_bytes=max_record_bytes,
                                  max_snapshot_bytes=max_snapshot_bytes)
                            for name in ("journal", "journal2"))
        self.store = self.stores[0]
        self.spool = Spool(root, "outbox", fs)
        self.state = None
        self.replayed = 0
        self.repaired = None    # the copy rebuilt at open (index), if any
        self.on_commit = None   # called after every durable record (a simulator syncs its world)
        self.out_of_sync = False
        self.after_commit = None  # the agent mirrors critical state into its TMR cells

    def open(self):
        """Rebuild the state from the copy that got furthest (snapshot + records
        since); bring the other copy level with it. Code a board runs at its
        boot only: firmware/journalopen.py (and the stores' lib/storeopen.py,
        held for the three opens), loaded for the call, out of the heap after."""
        import journalopen
        del sys.modules["journalopen"]
        hold_opener()
        try:
            journalopen.open_journal(self)
        finally:
            hold_opener(False)
        return self

    @property
    def corrupt(self):
        """Both copies unreadable: safe defaults."""
        return all(store.corrupt for store in self.stores)

    def damage(self):
        """Corrupt records and snapshot slots found at open, in either copy (a
        copy merely one record behind after a power cut is not damage)."""
        return self.spool.repaired + sum(store.counts.get("records_bad", 0) +
                                         store.counts.get("slot_fallbacks", 0) for store in self.stores)

    def emit(self, seq, dep, text, ops=()):
        """Make one event count: its text to the spool first, then the record
        that numbers it (with `ops`, the state change it reports). Until that
        record is on flash the spooled text is an orphan the spool ignores.

        A full spool never stops the agent: the event is shed (not numbered,
        counted in state["shed"], which telemetry reports) and `ops` are
        committed all the same; returns False then, else True. The agent
        keeps work from getting there (agent.py _outbox_low): only boot and
        health events, in a reset loop with no link, ever reach it."""
        local = seq - self.state["shift"]
        try:
            self.spool.append(local, dep, text)
        except SpoolFull:
            record = [["set", "shed", self.state.get("shed", 0) + 1]]
            record.extend(ops)
            self.commit(record)
            return False
        record = [["ev", seq]]
        record.extend(ops)
        try:
            self.commit(record)
        except BaseException:
            self.spool.seal(local)  # the orphan stays last in its segment, unread
            raise
        return True

    def outbox(self, limit_n, limit_bytes):
        """The oldest unacknowledged events: [(seq, deployment key, text)] (the
        text lacks its seq, which moves with a reseq; bytes), at most limit_n,
        their texts within limit_bytes (the first one always)."""
        st = self.state
        shift = st["shift"]
        return [(seq + shift, dep, text)
                for seq, dep, text in self.spool.records(st["acked"] - shift, limit_n, limit_bytes)]

    def pending(self):
        """How many events the Console has not acknowledged yet."""
        return self.state["seq"] - self.state["acked"]

    def commit(self, ops):
        """Make `ops` durable (in both copies), then apply them in RAM. Compacts
        when due."""
        record = [["n", self.state["n"] + 1]]
        record.extend(ops)
        encoded = encode(record)  # once for both copies (an accepted job's is the big one)
        for store in self.stores:
            store.append(record, encoded)
        encoded = None
        try:
            for op in record:
                apply(self.state, op)
        except Exception:
            # flash holds the record but RAM does not: only a reboot (replay)
            # brings them together again
            self.out_of_sync = True
            raise
        self.spool.drop(self.state["acked"] - self.state["shift"])
        if self.stores[0].needs_compaction() or self.stores[1].needs_compaction():
            self.compact()
        if self.on_commit is not None:
            self.on_commit()
        if self.after_commit is not None:
            self.after_commit()

    def compact(self):
        for store in self.stores:
            store.snapshot(self.state)
