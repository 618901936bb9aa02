"""The board half of the hardware adapters (hal.py): reset cause, reset,
hardware watchdog, storage root. Only boot.py on a board loads it; a
simulated node never does, so these bytes stay out of its heap.

machine is imported guarded: the unix port's machine has no WDT and no
reset_cause(), and CPython has no machine at all.
"""
import os

from hal import makedirs

try:
    import machine  # boards; the unix port has a machine module without WDT
except ImportError:
    machine = None

# Reset-cause names (agent.booted reset_cause)
POWER_ON = "power_on"
WATCHDOG = "watchdog"
SOFT = "soft"
HARD = "hard"
DEEPSLEEP = "deepsleep"
UNKNOWN = "unknown"


def board_reset_cause():
    """machine.reset_cause() as a name; the emulated boards' own (emu/board:
    umbraboard.reset_cause()) where machine has none; else 'unknown'."""
    try:
        code = machine.reset_cause()
        for attr, name in (("PWRON_RESET", POWER_ON), ("WDT_RESET", WATCHDOG),
                           ("SOFT_RESET", SOFT), ("HARD_RESET", HARD),
                           ("DEEPSLEEP_RESET", DEEPSLEEP)):
            if getattr(machine, attr, None) == code:
                return name
    except Exception:  # no machine module, no reset_cause(), or it failed
        pass
    try:
        import umbraboard
        return umbraboard.reset_cause()
    except Exception:  # not an emulated board
        return UNKNOWN


def board_reset():
    """machine.reset() where the board has it; False on the unix port (the
    parent process restarts the node instead)."""
    fn = getattr(machine, "reset", None)
    if fn is None:
        return False
    fn()
    return True


class BoardWatchdog:
    """machine.WDT; once armed it cannot be stopped (that is the point)."""

    def __init__(self, timeout_ms=8000):
        self.timeout_ms = timeout_ms
        self._wdt = None
        self.feeds = 0

    def arm(self):
        wdt = getattr(machine, "WDT", None)
        if wdt is not None:
            self._wdt = wdt(timeout=self.timeout_ms)
        return self._wdt is not None

    def feed(self):
        self.feeds += 1
        if self._wdt is not None:
            self._wdt.feed()


def storage_root(preferred=None):
    """Where the persistent store lives: the given folder (created if missing);
    else /flash or / on a board; else ./var/node on the unix port, where / is
    the host's own root."""
    if preferred:
        try:
            os.stat(preferred)
        except OSError:
            makedirs(preferred)
        return preferred
    import sys
    if sys.platform in ("linux", "darwin", "win32"):  # the unix port (or CPython)
        makedirs("var/node")
        return "var/node"
    try:
        os.stat("/flash")
        return "/flash"
    except OSError:
        return "/"
