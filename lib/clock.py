"""Clocks for the scheduler: one real, one simulated, same interface.

    now_ms()          monotonic milliseconds since the clock's origin (int)
    wait_until(t_ms)  real: sleep until then; simulated: jump there at once
    epoch()           Unix seconds now (float), corrected by time sync
    sync(epoch_s)     discipline the epoch offset from a trusted time (server_time)
    simulated         True for the discrete-event clock

Several schedulers may share one SimClock (a world of many satellites on one
timeline); nothing here is module-level state.
"""
import time

try:
    from time import sleep_ms as _sleep_ms, ticks_diff as _ticks_diff, ticks_ms as _ticks_ms
except ImportError:  # CPython
    from hostticks import sleep_ms as _sleep_ms, ticks_diff as _ticks_diff, ticks_ms as _ticks_ms

# Boards whose epoch is 2000-01-01 report time.time() 30 years short.
_EPOCH_SHIFT = 946684800 if time.gmtime(0)[0] == 2000 else 0


class RealClock:
    """The board's clock. Wrap-safe: ticks_ms wraps, so we accumulate deltas;
    call now_ms() at least once per wrap period / 2 (the scheduler does)."""

    simulated = False

    def __init__(self, epoch_offset=0.0):
        self._last = _ticks_ms()
        self._ms = 0
        self.epoch_offset = epoch_offset
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

    def epoch(self):
        return time.time() + _EPOCH_SHIFT + self.epoch_offset

    def sync(self, epoch_s):
        self.epoch_offset = epoch_s - (time.time() + _EPOCH_SHIFT)
        self.synced = True


class SimClock:
    """Discrete-event clock: time only moves when someone waits."""

    simulated = True

    def __init__(self, start_epoch=0.0, start_ms=0):
        self.start_epoch = start_epoch
        self._ms = start_ms
        self.epoch_offset = 0.0
        self.synced = False

    def now_ms(self):
        return self._ms

    def wait_until(self, t_ms):
        if t_ms > self._ms:
            self._ms = t_ms

    advance_to = wait_until

    def epoch(self):
        return self.start_epoch + self._ms / 1000 + self.epoch_offset

    def sync(self, epoch_s):
        self.epoch_offset = epoch_s - (self.start_epoch + self._ms / 1000)
        self.synced = True
