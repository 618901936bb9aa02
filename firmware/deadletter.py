"""Dead letters: events the Console refused for good are kept on flash, not
thrown away (docs/recovery.md "Refused events").

A batch the Console refuses (HTTP 4xx) `report_refusals` times in a row
would block the outbox for ever. Its events move to a second spool on flash
(lib/spool.py "dead", two copies, `dead_letter_bytes`), and one record then
acknowledges them in the outbox, counts them (state "refused", "dead") and
emits `fault.detected {kind: "events_refused"}` -- so the outbox flows again
and nothing vanishes. At later contacts the dead letters go to the Console's
`POST /api/agent/dead-letters`, which keeps them as sent, without judging
them, for the ground to read; each is dropped from flash once taken.

A full dead-letter spool does not ack: the batch stays in the outbox (the
outbox's back-pressure then pauses work, recovery.md "A full outbox").

Power cuts: the copies are appended before the record that counts them (as
journal.emit does): a cut between leaves orphans above state "dead_top",
which the next open ignores, and the refusal is judged again.

An overlay of contact.py's report: imported only when a batch was refused
for good or dead letters wait, dropped with contact.py. Every function takes
the Agent.
"""
import json

from agent import AGENT_LEVEL


def _open(ag):
    """The dead letters' spool, beside the outbox on the same flash (a Spool
    made by the outbox's class: the spool module left sys.modules at boot,
    and importing it again would load a second copy)."""
    st = ag.journal.state
    out = ag.journal.spool
    sp = type(out)(out.prefix[:out.prefix.rfind("/")] or "/", "dead", out.fs,
               max_bytes=ag.cfg["dead_letter_bytes"])
    sp.open(st.get("dead_top", 0), st.get("dead_acked", 0))
    return sp


def keep(ag, last_seq, status):
    """Move the outbox's oldest events, up to seq last_seq (one refused
    batch), to the dead letters, then acknowledge them in one record with
    the fault event. Returns how many moved (0: no room; the batch stays)."""
    j = ag.journal
    st = j.state
    sp = _open(ag)
    top = st.get("dead_top", 0)
    first = None
    n = 0
    try:
        for seq, dep, text in j.outbox(ag.cfg["report_batch"], 1 << 30):
            if seq > last_seq:
                break
            if seq <= top:
                continue
            sp.append(seq, bytes(dep).decode(), text)
            if first is None:
                first = seq
            top = seq
            n += 1
    except Exception:  # SpoolFull, or a flash error: nothing is acknowledged
        return 0
    held = st.get("dead", 0) + n
    ag.emit("fault.detected", payload={
        "kind": "events_refused",
        "detail": "the Console refused seq %s..%d (HTTP %s) %d times; kept on board as "
                  "dead letters" % (first, last_seq, status, ag.cfg["report_refusals"]),
        "count": n, "first_seq": first, "last_seq": last_seq, "status": status,
        "dead_letters": held},
        ops=[["ack", last_seq], ["set", "dead_top", top], ["set", "dead", held],
             ["set", "refused", st.get("refused", 0) + n]],
        job=AGENT_LEVEL)
    return n


def deliver(ag):
    """Send the dead letters, oldest first, in batches, until none is left,
    the link fails or the Console does not take them (then again after
    dead_letter_retry_s: a Console without the endpoint answers 404)."""
    j = ag.journal
    sp = _open(ag)
    while j.state.get("dead", 0) > 0 and ag.link_up():
        st = j.state
        recs = sp.records(st.get("dead_acked", 0), ag.cfg["report_batch"],
                          ag.cfg["report_batch_bytes"])
        if not recs:  # unreadable in both copies (sp.bad counts it): nothing left to send
            j.commit([["set", "dead", 0], ["set", "dead_acked", st.get("dead_top", 0)]])
            break
        # the event text goes as a JSON string: the Console keeps it as sent
        parts = []
        for seq, dep, text in recs:
            parts.append(b',{"seq":%d,"deployment_id":' % seq if parts else b'[{"seq":%d,"deployment_id":' % seq)
            parts.append(json.dumps(bytes(dep).decode()).encode())
            parts.append(b',"event":')
            parts.append(json.dumps(bytes(text).decode()).encode())
            parts.append(b"}")
        parts.append(b"]")
        last, n = recs[-1][0], len(recs)
        recs = None
        status, reply = yield from ag.link.call("POST", "/api/agent/dead-letters", raw=tuple(parts))
        parts = None
        if status is None or status == 429 or status >= 500:
            return  # link down or Console busy: at the next report
        if status >= 400:
            ag.dead_next_ms = ag.clock.now_ms() + ag.cfg["dead_letter_retry_s"] * 1000
            return
        j.commit([["set", "dead_acked", last], ["set", "dead", max(0, st.get("dead", 0) - n)]])
        sp.drop(last)
