"""Cooperative priority scheduler with an injected clock and a task supervisor.

A task is a generator made by a factory; it yields what it waits for:

    yield sleep_ms(500)          resume 500 ms from now
    yield nap_ms(60000)          the same, checked in meanwhile (no pieces needed)
    yield until_ms(t)            resume at clock time t
    value = yield event          resume when the Event is set (gets event.value)
    yield wait_for(event, ms)    the event or a timeout, whichever comes first
    yield                        give the others a turn, resume next round

Order: earliest wake-up first; at the same time, higher priority first; then
spawn order. Each call of run_due() is one round: a task that yields "now"
runs again in the next round, never twice in one.

Supervision: every resume is a check-in (a task may also call checkin()).
may_feed() is True only if every live task with a deadline_ms checked in
within it (a napping task counts as checked in) -- the watchdog is fed on
that answer alone. A task that raises is reported (on_crash) and handed to
the policy, which restarts it (its factory is called again) after a backoff
or gives up and escalates.

A `watcher` function, if set, is called with each task after it yields
(and after it fails for good): sim/lazywatch.py uses it to wake a
supervisor that skips watchdog ticks when a task starts waiting past its
deadline (docs/scheduler.md).

Nothing here is module-level state: schedulers may share one SimClock.
lib/schedutil.py has what the agent does not use: chunked sleeps and waits
that keep a task checking in, and run_many() to drive several schedulers
on one clock in time order.
"""
from heapq import heappop, heappush

try:
    from micropython import const
except ImportError:
    const = int  # CPython: the value itself

_SLEEP = const(0)
_UNTIL = const(1)
_WAIT = const(2)
_NAP = const(3)

# Task states.
READY = "ready"      # in the time queue (or running)
WAITING = "waiting"  # blocked on an Event (maybe with a timeout in the queue)
BACKOFF = "backoff"  # crashed, queued for a restart; exempt from its deadline
FAILED = "failed"    # crashed and escalated; never restarted
DEAD = "dead"        # finished or killed; no longer in the table


def sleep_ms(ms):
    return (_SLEEP, ms)


def until_ms(t_ms):
    return (_UNTIL, t_ms)


def nap_ms(ms):
    """Sleep ms as one wake-up, counted as checked in until then: the
    scheduler holds the task and resumes it on time, so it cannot hang
    meanwhile (a simulated clock's replacement for a sleep in pieces)."""
    return (_NAP, ms)


def wait_for(event, timeout_ms):
    """Wait for `event` at most timeout_ms; afterwards test event.is_set."""
    return (_WAIT, event, timeout_ms)


class Event:
    """A flag set by a task or by outside code; waiting tasks resume in
    priority order. It stays set until clear()."""

    def __init__(self):
        self.is_set = False
        self.value = None
        self._waiters = []

    def set(self, value=None):
        self.is_set = True
        self.value = value
        waiters = self._waiters
        for task in waiters:
            task.sched._wake(task, value)
        del waiters[:]

    def clear(self):
        self.is_set = False
        self.value = None


class RestartPolicy:
    """Restart a crashed task after backoff_ms, doubling per crash within
    window_ms up to max_backoff_ms; at max_crashes within window_ms call
    on_escalate(task_name, crashes) and stop restarting it."""

    def __init__(self, backoff_ms=1000, max_backoff_ms=60000, max_crashes=5,
                 window_ms=600000, on_escalate=None):
        self.backoff_ms = backoff_ms
        self.max_backoff_ms = max_backoff_ms
        self.max_crashes = max_crashes
        self.window_ms = window_ms
        self.on_escalate = on_escalate

    def crashed(self, name, history, now_ms):
        """history: this task's crash times (the scheduler keeps the list, the
        policy edits it). Returns the restart delay in ms, or None to give up."""
        history.append(now_ms)
        while now_ms - history[0] > self.window_ms:
            history.pop(0)
        n = len(history)
        if self.max_crashes is not None and n >= self.max_crashes:
            if self.on_escalate is not None:
                self.on_escalate(name, n)
            return None
        delay = self.backoff_ms
        while n > 1 and delay < self.max_backoff_ms:
            delay *= 2
            n -= 1
        return min(delay, self.max_backoff_ms)


class Task:
    def __init__(self, sched, name, factory, priority, deadline_ms, seq, now_ms):
        self.sched = sched
        self.name = name
        self.factory = factory
        self.priority = priority
        self.deadline_ms = deadline_ms
        self.seq = seq              # spawn order, the last tie-breaker
        self.state = READY
        self.gen = None             # made by factory() at the first resume
        self.entry = None           # its live queue entry; any other is stale
        self.waiting = None         # the Event it is blocked on
        self.value = None           # sent in at the next resume
        self.checkin_ms = now_ms
        self.crashes = 0            # total since spawn
        self.crash_times = []       # for the policy's window
        self.napping = False        # in a nap_ms(): checked in until it wakes

    def __repr__(self):
        return "<Task %s %s>" % (self.name, self.state)


class Scheduler:
    def __init__(self, clock, policy=None, on_crash=None):
        self.clock = clock
        self.policy = policy if policy is not None else RestartPolicy()
        self.on_crash = on_crash    # on_crash(task_name, exc, crash_count)
        self.tasks = {}             # name -> Task, live ones only
        self._heap = []             # (wake_ms, -priority, seq, task)
        self._deferred = []         # entries due in the round being run
        self._round_ms = None       # time of that round, None outside run_due
        self._current = None
        self._seq = 0
        self.stopped = False
        self.watcher = None         # watcher(task) after every task's yield (sim/lazywatch.py)

    # --- tasks -------------------------------------------------------------

    def spawn(self, name, factory, priority=0, deadline_ms=None):
        if name in self.tasks:
            raise ValueError("task exists: %s" % name)
        now = self.clock.now_ms()
        task = Task(self, name, factory, priority, deadline_ms, self._seq, now)
        self._seq += 1
        self.tasks[name] = task
        self._queue(task, now)
        return task

    def kill(self, name):
        """Cancel a task (its generator is closed). False if there is none."""
        task = self.tasks.pop(name, None)
        if task is None:
            return False
        task.state = DEAD
        task.entry = None
        self._unwait(task)
        if task is not self._current:  # a running generator is closed by _step
            self._close(task)
        return True

    @property
    def current(self):
        return self._current.name if self._current is not None else None

    def stop(self):
        """Make run() / run_many() return at the end of the current round."""
        self.stopped = True

    # --- supervision -------------------------------------------------------

    def checkin(self, name=None):
        task = self._current if name is None else self.tasks.get(name)
        if task is not None:
            task.checkin_ms = self.clock.now_ms()

    def _late(self, task, now):
        d = task.deadline_ms
        return d is not None and task.state != BACKOFF and not task.napping and \
            now - task.checkin_ms > d

    def may_feed(self):
        now = self.clock.now_ms()
        for task in self.tasks.values():
            if self._late(task, now):
                return False
        return True

    def overdue(self):
        now = self.clock.now_ms()
        return sorted(t.name for t in self.tasks.values() if self._late(t, now))

    # --- the loop ------------------------------------------------------------

    def next_wake_ms(self):
        """Time of the earliest queued wake-up, or None if nothing is queued."""
        heap = self._heap
        while heap and heap[0][3].entry is not heap[0]:
            heappop(heap)  # stale: the task was killed, woken or restarted
        return heap[0][0] if heap else None

    def run_due(self):
        """One round: resume every task due now, in order. Returns how many."""
        now = self.clock.now_ms()
        heap = self._heap
        self._round_ms = now
        n = 0
        try:
            while heap and heap[0][0] <= now:
                entry = heappop(heap)
                task = entry[3]
                if task.entry is not entry:
                    continue
                task.entry = None
                if task.waiting is not None:  # wait_for() timed out
                    self._unwait(task)
                    task.state = READY
                self._step(task)
                n += 1
        finally:
            self._round_ms = None
            deferred = self._deferred
            for entry in deferred:
                heappush(heap, entry)
            del deferred[:]
        return n

    def run(self, until_ms=None):
        """Run until stop(), until no task is left, or until clock time
        until_ms (the clock is then left at until_ms). Without until_ms it also
        returns when nothing is queued (every task waits on an Event)."""
        clock = self.clock
        self.stopped = False
        while not self.stopped and self.tasks:
            t = self.next_wake_ms()
            if t is None or (until_ms is not None and t > until_ms):
                break
            clock.wait_until(t)
            self.run_due()
        if until_ms is not None and not self.stopped and self.tasks:
            clock.wait_until(until_ms)

    # --- internals -------------------------------------------------------------

    def _queue(self, task, wake_ms):
        entry = (wake_ms, -task.priority, task.seq, task)
        task.entry = entry
        if self._round_ms is not None and wake_ms <= self._round_ms:
            self._deferred.append(entry)  # due now: next round, not this one
        else:
            heappush(self._heap, entry)

    def _wake(self, task, value):  # called by Event.set
        task.waiting = None
        task.state = READY
        task.value = value
        self._queue(task, self.clock.now_ms())

    def _unwait(self, task):
        ev = task.waiting
        if ev is not None:
            task.waiting = None
            if task in ev._waiters:
                ev._waiters.remove(task)

    def _close(self, task):
        gen = task.gen
        task.gen = None
        if gen is not None:
            try:
                gen.close()
            except Exception:
                pass

    def _step(self, task):
        clock = self.clock
        task.checkin_ms = clock.now_ms()
        task.napping = False
        self._current = task
        try:
            gen = task.gen
            if gen is None:  # first run, or a restart after a crash
                task.state = READY
                gen = task.gen = task.factory()
            value = task.value
            task.value = None
            w = gen.send(value)
            # What it waits for; a malformed request is the task's crash.
            event = None
            if w is None:
                wake = clock.now_ms()
            elif type(w) is tuple:
                kind = w[0]
                if kind == _SLEEP:
                    wake = clock.now_ms() + w[1]
                elif kind == _UNTIL:
                    wake = w[1] + 0
                elif kind == _NAP:
                    wake = clock.now_ms() + w[1]
                    task.napping = True
                elif kind == _WAIT and isinstance(w[1], Event):
                    event = w[1]
                    wake = clock.now_ms() + w[2]
                else:
                    raise TypeError("bad wait %r" % (w,))
            elif isinstance(w, Event):
                event = w
                wake = None
            else:
                raise TypeError("yielded %r" % (w,))
        except StopIteration:
            self._current = None
            task.gen = None
            self._finish(task)
            return
        except Exception as exc:
            self._current = None
            self._crash(task, exc)
            return
        self._current = None
        if task.state == DEAD:  # it killed itself
            self._close(task)
            return
        if event is not None:
            if event.is_set:
                task.value = event.value
                wake = clock.now_ms()
            else:
                task.state = WAITING
                task.waiting = event
                event._waiters.append(task)
                if wake is None:
                    if self.watcher is not None:
                        self.watcher(task)
                    return
        self._queue(task, wake)
        if self.watcher is not None:
            self.watcher(task)

    def _finish(self, task):
        if self.tasks.get(task.name) is task:
            del self.tasks[task.name]
        task.state = DEAD

    def _crash(self, task, exc):
        now = self.clock.now_ms()
        self._close(task)  # a no-op if it raised; ends it if it asked nonsense
        task.crashes += 1
        if self.on_crash is not None:
            self.on_crash(task.name, exc, task.crashes)
        if task.state == DEAD:  # killed while running, then raised
            return
        delay = self.policy.crashed(task.name, task.crash_times, now)
        if delay is None:
            task.state = FAILED  # its deadline, if any, now runs out
            task.entry = None
            if self.watcher is not None:
                self.watcher(task)
        else:
            task.state = BACKOFF
            self._queue(task, now + delay)

