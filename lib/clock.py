"""Clocks for the scheduler: one real, one simulated, same interface.

    now_ms()          monotonic milliseconds since the clock's origin (int)
    wait_until(t_ms)  real: sleep until then; simulated: jump there at once
    epoch()           Unix seconds now, an int, corrected by time sync
    epoch_at(t_ms)    Unix seconds at an earlier now_ms() reading (an int)
    sync(s, ms=0)     set the epoch from a trusted time (server_time: s + ms/1000)
    set()             True once the epoch can be believed: synced, or a
                      real-time clock reading after UNSET_BEFORE
    stamp()           an event's timestamp: ISO 8601 UTC when set(), else the
                      unsynced marker (unsynced_stamp)
    simulated         True for the discrete-event clock

No float carries an absolute time: in a single-precision float (stock rp2,
stm32 and esp32 builds) Unix seconds round to 128 s. Epoch seconds are ints,
sub-second phase lives in the ms counter.

Several schedulers may share one SimClock (a world of many satellites on one
timeline); nothing here is module-level state, and nothing asks the port for
the time at import (the qemu port has no time.gmtime).
"""
import time

import timeutil

try:
    from time import sleep_ms as _sleep_ms, ticks_diff as _ticks_diff, ticks_ms as _ticks_ms
except ImportError:  # CPython
    from hostticks import sleep_ms as _sleep_ms, ticks_diff as _ticks_diff, ticks_ms as _ticks_ms

UNSET_BEFORE = 1735689600  # 2025-01-01T00:00:00Z: a real-time clock reading earlier was never set
UNSYNCED_YEAR = "1970-"    # an unsynced stamp is 1970-01-01 plus the ms since boot


def unsynced_stamp(t_ms):
    """The known-unsynced marker: the ms since boot as a time in 1970
    ('1970-01-01T00:00:12.345Z'), valid ISO 8601, never a real time; the
    report rewrites it once the clock is synced (firmware/contact.py)."""
    return timeutil.iso_utc(t_ms // 1000, t_ms % 1000)


def unsynced_ms(stamp):
    """The boot ms an unsynced stamp carries, or None for a real time."""
    if not stamp.startswith(UNSYNCED_YEAR):
        return None
    s, ms = timeutil.parse_iso_ms(stamp)
    return s * 1000 + ms


def _rtc():
    """The real-time clock as (Unix seconds, ms into that second), ints, on
    any port's epoch (2000 on some boards)."""
    t = time.time()
    ms = 0
    if not isinstance(t, int):  # the unix port and CPython: a double
        s = int(t)
        ms = int((t - s) * 1000)
        t = s
    try:
        if time.gmtime(0)[0] == 2000:
            t += 946684800
    except (AttributeError, OverflowError):  # a port without gmtime: a 1970 epoch
        pass
    return t, ms


class RealClock:
    """The board's clock. Wrap-safe: ticks_ms wraps, so we accumulate deltas;
    call now_ms() at least once per wrap period / 2 (the scheduler does).
    The epoch is the real-time clock read once, at construction, then the ms
    counter: (base_s, base_ms) is 'Unix second base_s began at now_ms() ==
    base_ms'."""

    simulated = False

    def __init__(self):
        self._last = _ticks_ms()
        self._ms = 0
        self._base_s, ms = _rtc()
        self._base_ms = -ms
        self.synced = False

    def now_ms(self):
        t = _ticks_ms()
        self._ms += _ticks_diff(t, self._last)
        self._last = t
        return self._ms

    def wait_until(self, t_ms):
        delta = t_ms - self.now_ms()
        if delta > 0:
            _sleep_ms(delta)

    def epoch_at(self, t_ms):
        return self._base_s + (t_ms - self._base_ms) // 1000

    def epoch(self):
        return self.epoch_at(self.now_ms())

    def sync(self, epoch_s, ms=0):
        self._base_s = int(epoch_s)
        self._base_ms = self.now_ms() - ms
        self.synced = True

    def set(self):
        return self.synced or self._base_s >= UNSET_BEFORE

    def stamp(self):
        if self.set():
            return timeutil.iso_utc(self.epoch())
        return unsynced_stamp(self.now_ms())


class SimClock:
    """Discrete-event clock: time only moves when someone waits. Simulated
    time is the truth, so its epoch is always set."""

    simulated = True

    def __init__(self, start_epoch=0, start_ms=0):
        self.start_epoch = start_epoch  # as given (the simulator's orbit maths reads it)
        self._ms = start_ms
        s = int(start_epoch)
        self._base_s = s
        self._base_ms = -int((start_epoch - s) * 1000)  # a float start (host) keeps its ms
        self.synced = False

    def now_ms(self):
        return self._ms

    def wait_until(self, t_ms):
        if t_ms > self._ms:
            self._ms = t_ms

    advance_to = wait_until

    def epoch_at(self, t_ms):
        return self._base_s + (t_ms - self._base_ms) // 1000

    def epoch(self):
        return self.epoch_at(self._ms)

    def sync(self, epoch_s, ms=0):
        self._base_s = int(epoch_s)
        self._base_ms = self._ms - ms
        self.synced = True

    def set(self):
        return True

    def stamp(self):
        return timeutil.iso_utc(self.epoch())
