"""What lib/scheduler.py users other than the agent need, kept out of the
scheduler so the agent does not carry it in its heap:

    yield from sleep_chunked(sched, ms)     sleep in pieces, checking in
    v = yield from wait_chunked(sched, ev)  wait for an Event, checking in
    run_many(clock, schedulers, until_ms)   a world of nodes on one clock

Pieces default to half the calling task's deadline_ms, so a long sleeper
never makes may_feed() refuse the watchdog.
"""
from scheduler import until_ms, wait_for


def _chunk(sched, chunk_ms):
    if chunk_ms is None:
        task = sched.tasks.get(sched.current)
        if task is not None and task.deadline_ms is not None:
            chunk_ms = max(1, task.deadline_ms // 2)
    return chunk_ms


def sleep_chunked(sched, ms, chunk_ms=None):
    """`yield from sleep_chunked(sched, ms)`: sleep ms in pieces of chunk_ms."""
    clock = sched.clock
    end = clock.now_ms() + ms
    chunk_ms = _chunk(sched, chunk_ms)
    now = clock.now_ms()
    while now < end:
        yield until_ms(end if chunk_ms is None else min(end, now + chunk_ms))
        now = clock.now_ms()


def wait_chunked(sched, event, chunk_ms=None, timeout_ms=None):
    """`v = yield from wait_chunked(sched, ev)`: wait for an Event in pieces
    of chunk_ms; returns event.value, or None on timeout."""
    clock = sched.clock
    chunk_ms = _chunk(sched, chunk_ms)
    end = None if timeout_ms is None else clock.now_ms() + timeout_ms
    while not event.is_set:
        now = clock.now_ms()
        if end is not None and now >= end:
            return None
        step = chunk_ms
        if end is not None:
            step = end - now if step is None else min(step, end - now)
        yield event if step is None else wait_for(event, step)
    return event.value


def run_many(clock, schedulers, until_ms=None):
    """Drive several schedulers on one clock in time order (a world of many
    nodes on one SimClock). Returns when all are idle or stopped, or at
    until_ms (the clock is then left there)."""
    for s in schedulers:
        s.stopped = False
    while True:
        t = None
        for s in schedulers:
            if not s.stopped:
                w = s.next_wake_ms()
                if w is not None and (t is None or w < t):
                    t = w
        if t is None or (until_ms is not None and t > until_ms):
            break
        clock.wait_until(t)
        now = clock.now_ms()
        for s in schedulers:
            if not s.stopped:
                w = s.next_wake_ms()
                if w is not None and w <= now:
                    s.run_due()
    if until_ms is not None:
        clock.wait_until(until_ms)
