"""Hardware adapters: the only door between the firmware and the board.

One small interface each — watchdog, sensors, directories — with a
simulated watchdog that sim/ (and the unix port) drives. The board half
(reset cause, reset, machine.WDT, storage root) is boardhal.py, which only
boot.py loads: a simulated node never holds it. firmware/ never imports
`machine` itself.

Sensor methods return a number/bool, or None when the reading is unknown
(a failing sensor is UNKNOWN, it never raises).
"""
import os


class SimWatchdog:
    """A watchdog in simulated or emulated time: remembers the last feed; the
    world (or the parent process) asks `expired(now_ms)` and resets the node.
    `on_feed` lets a real-time parent see feeds (e.g. a line on stdout)."""

    def __init__(self, timeout_ms=8000, clock=None, on_feed=None):
        self.timeout_ms = timeout_ms
        self.clock = clock
        self.on_feed = on_feed
        self.armed = False
        self.last_feed_ms = 0
        self.feeds = 0

    def arm(self):
        self.armed = True
        self.last_feed_ms = self.clock.now_ms() if self.clock else 0
        return True

    def feed(self):
        self.feeds += 1
        if self.clock is not None:
            self.last_feed_ms = self.clock.now_ms()
        if self.on_feed is not None:
            self.on_feed()

    def expired(self, now_ms):
        return self.armed and now_ms - self.last_feed_ms > self.timeout_ms


def makedirs(path):
    """mkdir -p, portable (MicroPython's os has no makedirs)."""
    cur = "/" if path.startswith("/") else ""
    for part in path.split("/"):
        if not part:
            continue
        cur = cur + part if cur.endswith("/") or cur == "" else cur + "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            pass


class Sensors:
    """Sensor interface. Readings: battery_percent() 0..100, temperature_c(),
    in_eclipse() bool, link_up() bool — or None when unknown. Values outside
    the physical range (battery 0..100 %, temperature -60..150 C) are
    reported as None (a stuck or broken sensor)."""

    # () -> how long (ms) the link is sure to stay down from now, or None (up);
    # None: unknown (a board, a node with faults). Only a simulated clock asks (agent._look).
    link_down_ms = None

    def __init__(self, read_battery=None, read_temperature=None, read_eclipse=None,
                 read_link=None, read_position=None, read_contact=None, apply_load=None,
                 read_saa=None):
        self._battery = read_battery
        self._temperature = read_temperature
        self._eclipse = read_eclipse
        self._link = read_link
        self._position = read_position    # -> (lat_deg, lon_deg, altitude_km)
        self._contact = read_contact      # -> {station, station_name, elevation_peak_deg}
        self._apply_load = apply_load     # (power_w, memory_mb): the simulator's power model
        self._saa = read_saa              # -> inside the South Atlantic Anomaly (radiation monitor)
        self.bad_readings = 0

    def _read(self, fn, lo=None, hi=None):
        if fn is None:
            return None
        try:
            value = fn()
        except MemoryError:
            # the heap's failure, not the sensor's: the task that read crashes and
            # is restarted. As an unknown, a link would be tried (its code loaded
            # on top) and an eclipse or battery level taken for a broken sensor.
            raise
        except Exception:
            self.bad_readings += 1
            return None
        if value is None:
            return None
        if lo is not None and not (lo <= value <= hi):
            self.bad_readings += 1
            return None
        return value

    def battery_percent(self):
        return self._read(self._battery, 0.0, 100.0)

    def temperature_c(self):
        return self._read(self._temperature, -60.0, 150.0)

    def in_eclipse(self):
        value = self._read(self._eclipse)
        return None if value is None else bool(value)

    def link_up(self):
        value = self._read(self._link)
        return None if value is None else bool(value)

    def position(self):
        """(lat_deg, lon_deg, altitude_km) or None."""
        value = self._read(self._position)
        if value is None or len(value) != 3:
            return None
        return value

    def contact(self):
        """The ground station in view, as a dict, or None."""
        value = self._read(self._contact)
        return value if isinstance(value, dict) else None

    def in_saa(self):
        value = self._read(self._saa)
        return None if value is None else bool(value)

    def set_compute_load(self, power_w, memory_mb=0):
        """Tell the power model what compute runs now (a no-op on real boards,
        where the load is physically real)."""
        if self._apply_load is not None:
            self._apply_load(power_w, memory_mb)


def sim_sensors(satellite):
    """Sensors fed by a simulated satellite (sim/): anything with
    battery_percent(), temperature_c(), in_eclipse(), link_up() methods
    (and, if it has one, link_down_ms())."""
    s = Sensors(satellite.battery_percent, satellite.temperature_c,
                satellite.in_eclipse, satellite.link_up,
                getattr(satellite, "position", None), getattr(satellite, "contact", None),
                getattr(satellite, "set_compute_load", None), getattr(satellite, "in_saa", None))
    s.link_down_ms = getattr(satellite, "link_down_ms", None)
    return s
