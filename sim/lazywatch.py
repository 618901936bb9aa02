"""The agent's supervisor for a simulated clock (sim/node.py installs it in
place of Agent._supervisor before the agent boots; a board never loads it).

The agent's own supervisor feeds the watchdog at every 1 s tick on which
every task checked in within its deadline. This one gives the same feeds
without waking at every tick: it skips the ticks at which no task can be
late and counts them as fed, as a board feeds them. Only a task that waits
past its deadline (a long sleep, an Event, a failure) can turn late; every
other one is resumed, and so checks in, first (late_at). The supervisor
wakes at its first tick after the earliest such lateness, is pulled forward
to it when such a wait begins while it sleeps (the scheduler's `watcher`
hook), and feeds at least once a watchdog period (docs/sim.md "A
simulated day"). It reads the scheduler's task table: lib/scheduler.py and
this file change together.
"""
from scheduler import BACKOFF, FAILED, READY, sleep_ms

TICK_MS = 1000


def late_at(sched, task):
    """When `task` turns late if nothing changes, or None when it will be
    resumed (and check in) before its deadline."""
    d = task.deadline_ms
    if d is None or task.state == BACKOFF or task.napping or task is sched._current:
        return None
    limit = task.checkin_ms + d
    e = task.entry
    if task.state != FAILED and e is not None and e[0] <= limit:
        return None
    return limit


def earliest_late(sched):
    """The earliest time (ms) any task turns late as things stand, or None."""
    first = None
    for task in sched.tasks.values():
        t = late_at(sched, task)
        if t is not None and (first is None or t < first):
            first = t
    return first


def first_tick_after(last, t):
    """The first tick (TICK_MS apart from `last`) after time t, and after last."""
    return last + max(1, (t - last) // TICK_MS + 1) * TICK_MS


def install(agent):
    """Make `agent` (not yet booted, with a watchdog) use this supervisor."""
    agent._supervisor = lambda: supervisor(agent)


def supervisor(agent):
    sched, wd, stats, clock = agent.sched, agent.watchdog, agent.stats, agent.clock
    gap = max(TICK_MS, (wd.timeout_ms - TICK_MS) // TICK_MS * TICK_MS)
    me = sched.tasks["supervisor"]
    last = [None]

    def watcher(task):
        # a task has just yielded: if it now waits past its deadline, wake at the tick after
        if task is me or last[0] is None:
            return
        late = late_at(sched, task)
        e = me.entry
        if late is not None and e is not None and me.state == READY:
            t = first_tick_after(last[0], late)
            if t < e[0]:
                sched._queue(me, t)

    sched.watcher = watcher
    while True:
        now = clock.now_ms()
        if last[0] is not None and now - last[0] > TICK_MS:
            stats["feeds"] += (now - last[0]) // TICK_MS - 1
            wd.feed()
            wd.last_feed_ms = now - TICK_MS  # the last tick skipped
        if sched.may_feed():
            stats["feeds"] += 1
            wd.feed()
        else:
            stats["feeds_refused"] += 1
        last[0] = now
        nxt = now + gap
        late = earliest_late(sched)
        if late is not None:
            nxt = min(nxt, first_tick_after(now, late))
        yield sleep_ms(nxt - now)
