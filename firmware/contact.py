"""What the agent does only while it has a link: register, poll for work,
drain the outbox in batches, send telemetry, take the Console's time.

An overlay (like bootup.py): the tasks in agent.py import it when the link
is up and the poll task drops it when the link goes down, so the hours
without contact -- when the steps run and the heap is fullest -- do not
hold its code. Every function takes the Agent.
"""
import agentconfig
import clock as clocklib
import timeutil


def sync_time(ag, reply):
    """Note the Console's clock (server_time) and set ours from it when the
    config asks and it is unset or more than 2 s off (PROTOCOL.md)."""
    if not isinstance(reply, dict):
        return
    try:
        server, ms = timeutil.parse_iso_ms(reply.get("server_time"))
    except ValueError:
        return
    ag.ground_time = server
    if ag.cfg["time_sync"] and (not ag.clock.synced or abs(ag.clock.epoch() - server) > 2):
        ag.clock.sync(server, ms)


def register(ag):
    cfg = ag.cfg
    body = {"agent_id": cfg["agent_id"], "satellite_id": cfg["satellite_id"],
            "agent_version": agentconfig.FIRMWARE_VERSION}
    if cfg["satellite_name"]:
        body["satellite_name"] = cfg["satellite_name"]
    if cfg["orbit_altitude_km"]:
        body["orbit_altitude_km"] = cfg["orbit_altitude_km"]
    status, reply = yield from ag.link.call("POST", "/api/agent/register", body)
    if status in (200, 201):
        ag.registered = True
        sync_time(ag, reply)
        last = reply.get("last_seq") if isinstance(reply, dict) else None
        if isinstance(last, int) and last > ag.journal.state["seq"]:
            # Our store was lost (or corrupt) and seq restarted: the Console
            # would take our new events for resends. Continue above its seqs.
            ag.journal.commit([["reseq", last]])


def new_challenge():
    """16 hex digits no earlier poll asked for, whatever the flash remembers:
    the board's random source, or (a board without one) its microsecond ticks
    and the heap's state, which differ from boot to boot."""
    try:
        from binascii import hexlify
        from os import urandom
        return hexlify(urandom(8)).decode()
    except (ImportError, AttributeError, OSError):
        import gc
        import time
        return "%08x%08x" % (time.ticks_us() & 0xFFFFFFFF, gc.mem_free() & 0xFFFFFFFF)


def poll(ag):
    """Register if needed, then ask for work once. Returns a workload (the
    reply, for accept.py) or None, and the Console's time before it. It says
    which deployment it holds (?holding=): the running job, or the last one
    ended while its events still wait in the outbox (the Console takes that
    one for running until they land). With an uplink key the poll carries a
    fresh challenge that a signed reply must carry back (uplink.check_auth):
    a reply recorded earlier and replayed answers another poll and is
    refused, even by an agent whose flash (and its memory of nonces) was
    wiped."""
    if not ag.registered:
        yield from register(ag)
    ground_before = ag.ground_time
    st = ag.journal.state
    job = st["job"]
    held = job["deployment_id"] if job is not None else None
    if held is None and st["done"] and ag.journal.pending():
        # a job that ended here and whose events still drain: until they land the
        # Console takes it for running and would send it again at every poll
        held = st["done"][-1]
    path = "/api/agent/workloads"
    sep = "?"
    if held is not None:  # not again what we hold (the Console's extension): 204, or a cancel
        path += "?holding=" + held
        sep = "&"
    ag.challenge = None
    if ag.cfg["uplink_key"]:
        ag.challenge = new_challenge()
        path += sep + "challenge=" + ag.challenge
    status, reply = yield from ag.link.call("GET", path)
    ag.stats["polls"] += 1
    if status is not None:
        sync_time(ag, reply)
    if status == 204 and held is None:
        # nothing to do at all (a 204 to a poll that held a job says only that
        # no other job comes first: that job may have ended during the exchange)
        ag.empty_polls += 1
    return (reply if status == 200 and isinstance(reply, dict) else None), ground_before


def report(ag):
    """Send the outbox, oldest first, in batches of one deployment's events
    (read from the spool), until it is empty or the link fails; a batch the
    Console refuses for good goes to the dead letters (firmware/deadletter.py,
    imported only then, and while some wait to be handed over: the agent
    unloads it with this module)."""
    cfg, journal, stats = ag.cfg, ag.journal, ag.stats
    if journal.state.get("dead") and ag.clock.now_ms() >= ag.dead_next_ms:
        import deadletter
        yield from deadletter.deliver(ag)
    while ag.registered and journal.pending() and ag.link_up():
        batch = journal.outbox(cfg["report_batch"], cfg["report_batch_bytes"])
        if not batch:  # unreadable in both copies (spool.bad counts it): not a blocker
            journal.commit([["ack", journal.state["seq"]]])
            continue
        dep = batch[0][1]
        # the JSON array in pieces, sent one after another: no block the size
        # of the batch (in a full heap a few small ones are there, one big is not)
        parts = [b"["]
        size = 1
        n = 0
        for seq, key, text in batch:
            if key != dep:
                break
            # the spooled text lacks its seq (a reseq moves it): it goes in front
            parts.append(b'{"seq":%d,' % seq if n == 0 else b',{"seq":%d,' % seq)
            parts.append(memoryview(_restamp(ag, seq, text))[1:])
            size += len(parts[-2]) + len(text) - 1
            n += 1
        parts.append(b"]")
        head, last_seq = batch[0][0], batch[n - 1][0]
        raw = tuple(parts)
        batch = parts = None
        dep = dep.decode()
        path = ("/api/deployments/%s/events" % dep) if dep else "/api/agent/events"
        status, reply = yield from ag.link.call("POST", path, raw=raw)
        if status is None or status == 429 or status >= 500:
            return  # link down or Console busy: try again later
        if status >= 400:
            # Refused: maybe the request was mangled on the way (a noisy link),
            # maybe the Console will never take it (a bug on one side). Try
            # again a few times, then hand the batch to the dead letters, so
            # the outbox is never blocked for ever and nothing vanishes.
            tries = ag.refused[1] + 1 if ag.refused[0] == head else 1
            ag.refused = (head, tries)
            if tries >= cfg["report_refusals"]:
                ag.refused = (None, 0)
                import deadletter
                deadletter.keep(ag, last_seq, status)
            return
        ag.refused = (None, 0)
        stats["batches"] += 1
        stats["events_sent"] += n
        stats["event_bytes"] += size + 1
        journal.commit([["ack", last_seq]])
        sync_time(ag, reply)
        raw = reply = None


def _restamp(ag, seq, text):
    """An event stamped before the clock was set carries the unsynced marker
    (1970-01-01 plus its ms since boot, lib/clock.py). Once the clock is set
    the events of this boot go out with their real time; an earlier boot's
    keep the marker (that boot's ms counter is gone)."""
    i = text.find(b'"timestamp":"1970-')
    if i < 0 or not ag.clock.set() or seq - ag.journal.state["shift"] < ag.boot_seq:
        return text
    i += 13
    j = text.find(b'"', i)
    t_ms = clocklib.unsynced_ms(bytes(text[i:j]).decode())
    return bytes(text[:i]) + timeutil.iso_utc(ag.clock.epoch_at(t_ms)).encode() + bytes(text[j:])


def telemetry(ag, text):
    """Send the reports queued on flash while the link was down (oldest
    first), then this one; what the link does not take is queued."""
    q = ag.tq
    while q.segs:
        recs = q.records(0, 1, 1)
        if recs:
            ok = yield from _send(ag, recs[0][2])
            if not ok:
                ag.queue_telemetry(text)
                return
        q.drop(q.segs[0][2])
        recs = None
    ok = yield from _send(ag, text)
    if not ok:
        ag.queue_telemetry(text)


def _send(ag, raw):
    status, reply = yield from ag.link.call("POST", "/api/agent/telemetry", raw=raw)
    if status is None or status == 429 or status >= 500:
        return False
    sync_time(ag, reply)
    return True  # taken (or refused for good: not worth keeping)
