"""The journal's open at a boot (journal.Journal.open): rebuild the state
from the copy that got furthest, bring the other level with it, find the
outbox's live segments. Code a board runs once a boot, kept out of its
resident heap: Journal.open imports it for the call and drops it. It imports
nothing of ours (bootup drops journal, store and spool from sys.modules
while their objects live on: importing one here would load a second copy);
what it needs comes through the journal object.
"""


def open_journal(j):
    best = None
    loaded = []
    for i, store in enumerate(j.stores):
        state, replayed = _load(j, store)
        loaded.append((state, replayed))
        if best is None or state["n"] > loaded[best][0]["n"]:
            best = i
    j.state, j.replayed = loaded[best]
    j.store = j.stores[best]
    j.repaired = None
    for i, store in enumerate(j.stores):
        if i != best and (loaded[i][0]["n"] != j.state["n"] or store.corrupt):
            store.snapshot(j.state)  # rebuilt from the good copy
            j.repaired = i
    st = j.state
    j.spool.open(st["seq"] - st["shift"], st["acked"] - st["shift"])


def _load(j, store):
    store.open()
    state = j.fresh_state()
    base = store.state
    if isinstance(base, dict):
        for key in base:
            state[key] = base[key]
    replayed = 0
    for record in store.records():
        if not isinstance(record, list):
            continue
        for op in record:
            j.apply(state, op)
        replayed += 1
    return state, replayed
