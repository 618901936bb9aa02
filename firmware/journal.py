"""The agent's journal: everything that must survive a reset, on top of the
power-cut-safe store (lib/store.py).

State is a plain dict, rebuilt at boot from the newest snapshot plus the
records appended since. Every change is a *record*: a list of operations
applied together, so an event and the state change it reports land in one
append — after a power cut either both happened or neither did. An event
counts as emitted once its record is on flash (RELIABILITY.md).

Operations:
    ["ev", event]            event emitted: seq advances, event joins the outbox

The outbox holds each event once, already encoded: [seq, deployment_id, json]
(a few hundred bytes each instead of a dict tree several times that size).
    ["ack", n]               Console stored every seq <= n: drop them from the outbox
    ["job", job]             a job accepted (validated, normalised)
    ["jset", key, value]     a field of the current job changes
    ["st", step_id, fields]  a step's state changes (status, work done, handler state ...)
    ["set", key, value]      a top-level field changes (boot_count, mode, ...)
    ["end", deployment_id]   the current job is over; remember its id (re-delivery)
    ["nonce", nonce]         an uplink nonce seen (replay memory)
    ["reseq", base]          the Console already holds seqs up to base (our store was
                             lost): renumber the unacknowledged outbox above it
"""
import json

from store import Store

MAX_DONE = 8       # finished deployment ids remembered against re-delivery
MAX_NONCES = 32    # uplink nonces remembered against replay
MAX_RECORD = 8192     # bytes: the largest record (an accepted job is the big one)
MAX_SNAPSHOT = 98304  # bytes: state + the outbox of unacknowledged events


def fresh_state():
    return {"seq": 0, "acked": 0, "boot_count": 0, "mode": "normal", "job": None,
            "steps": {}, "done": [], "nonces": [], "outbox": [], "resets": 0,
            "quarantine": {}}


def apply(state, op):
    kind = op[0]
    if kind == "ev":
        ev = op[1]
        state["seq"] = ev["seq"]
        state["outbox"].append([ev["seq"], ev.get("deployment_id"), json.dumps(ev)])
    elif kind == "ack":
        n = op[1]
        if n > state["acked"]:
            state["acked"] = n
            state["outbox"] = [e for e in state["outbox"] if e[0] > n]
    elif kind == "job":
        state["job"] = op[1]
        state["steps"] = {}
        for step in op[1]["steps"]:
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
        base = op[1]
        for entry in state["outbox"]:
            base += 1
            ev = json.loads(entry[2])
            ev["seq"] = base
            entry[0] = base
            entry[2] = json.dumps(ev)
        state["seq"] = base
        state["acked"] = op[1]
    elif kind == "nonce":
        nonces = state["nonces"]
        nonces.append(op[1])
        if len(nonces) > MAX_NONCES:
            del nonces[0]


class Journal:
    def __init__(self, root, max_log_bytes=16384, fs=None, max_record_bytes=MAX_RECORD,
                 max_snapshot_bytes=MAX_SNAPSHOT):
        self.store = Store(root, name="journal", max_log_bytes=max_log_bytes, fs=fs,
                           max_record_bytes=max_record_bytes,
                           max_snapshot_bytes=max_snapshot_bytes)
        self.state = None
        self.replayed = 0
        self.on_commit = None   # called after every durable record (a simulator syncs its world)
        self.out_of_sync = False
        self.after_commit = None  # the agent mirrors critical state into its TMR cells

    def open(self):
        """Rebuild the state from the store (snapshot + records since)."""
        self.store.open()
        base = self.store.state
        self.state = fresh_state()
        if isinstance(base, dict):
            for key in base:
                self.state[key] = base[key]
        self.replayed = 0
        for record in self.store.records():
            if not isinstance(record, list):
                continue
            for op in record:
                apply(self.state, op)
            self.replayed += 1
        return self

    @property
    def corrupt(self):
        return bool(self.store.corrupt)

    def commit(self, ops):
        """Make `ops` durable, then apply them in RAM. Compacts when due."""
        self.store.append(ops)
        try:
            for op in ops:
                apply(self.state, op)
        except Exception:
            # flash holds the record but RAM does not: only a reboot (replay)
            # brings them together again
            self.out_of_sync = True
            raise
        if self.store.needs_compaction():
            self.store.snapshot(self.state)
        if self.on_commit is not None:
            self.on_commit()
        if self.after_commit is not None:
            self.after_commit()

    def compact(self):
        self.store.snapshot(self.state)

    def next_seq(self):
        return self.state["seq"] + 1
