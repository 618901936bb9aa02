"""A simulated spacecraft (MODELS.md "Power", "Thermal", "Memory and CPU").

Physics advances exactly between events, not in fixed ticks: between two
boundaries (eclipse entry/exit, a compute-capacity threshold, a load change)
the power is constant, so energy is linear and temperature an exponential
towards its target. Crossing times of the 30 % / 15 % thresholds are solved for.

It is the hardware behind `hal.sim_sensors(sat)`: battery_percent(),
temperature_c(), in_eclipse(), link_up(); the firmware's compute executor
calls set_compute_load(power_w, memory_mb). With a clock, readings are taken
at the clock's time; without one, at the time of the last advance_to(t).

The physical state (time, energy, temperature) is a small dict that can be
persisted and restored, so killing the firmware resets the computer (its load
goes to zero), not the physics.
"""
import math
import sys

import models

# SimulatedSatellite.in_saa's quick test: the sines of the SAA band's
# latitudes, widened to the equator and by a hair for rounding
_SAA_SIN_HI = math.sin(math.radians(max(models.SAA_LAT_MAX, 0))) + 1e-9
_SAA_SIN_LO = math.sin(math.radians(min(models.SAA_LAT_MIN, 0))) - 1e-9


class Timeline:
    """A satellite's eclipse and contact windows, computed in chunks of
    `chunk_s` and extended on demand. Window ids stay stable when extended.

    `eclipses` [(start, end)] and `contacts` [(start, end, station_id,
    elevation_peak_deg, n)] (window id "contact-n") are all a satellite reads.
    With windows=False the window dicts (sunlit, eclipse, contact: what the
    planner and world.windows() list) are not kept: a node holds a third of the RAM."""

    def __init__(self, orb, start, chunk_s=86400, stations=(), min_elevation_deg=models.MIN_ELEVATION_DEG,
                 windows=True):
        if chunk_s <= 0:
            raise ValueError("chunk_s must be positive")
        self.orbit = orb
        self.stations = list(stations)
        self.min_elevation_deg = min_elevation_deg
        self.chunk_s = chunk_s
        self.start = start
        self.end = start
        self.windows = [] if windows else None
        self.eclipses = []
        self.contacts = []
        self._counts = {"sunlit": 0, "eclipse": 0, "contact": 0}
        self._i_ecl = 0
        self.boundaries = None    # sorted eclipse/contact boundary times, built by world.next_boundary
        self.extend_to(start)

    def extend_to(self, t):
        """Make sure windows are known beyond t (a state at t needs what follows)."""
        if self.end > t:
            return
        # The search is an overlay: loaded for this extension and, on MicroPython
        # (where a loaded module lives in the heap), dropped right after unless
        # someone else had loaded it (docs/sim.md "Memory").
        loaded = "orbitscan" in sys.modules
        import orbitscan
        try:
            while self.end <= t:
                t0 = self.end
                t1 = t0 + self.chunk_s
                if self.windows is None:
                    eclipses, passes = orbitscan.scan(self.orbit, t0, t1, self.stations, self.min_elevation_deg)
                    for a, b in eclipses:
                        self._add(a, b, None, None, t0)
                    for k, a, b, _, el in passes:   # rounded as find_windows does
                        self._add(a, b, self.stations[k]["id"], round(el, 2), t0)
                else:
                    for w in orbitscan.find_windows(self.orbit, t0, t1, self.stations, self.min_elevation_deg):
                        orbitscan.add_window(self, w, t0)
                self.end = t1
                self.boundaries = None
        finally:
            if not loaded and sys.implementation.name == "micropython":
                del sys.modules["orbitscan"]

    def forget_before(self, t):
        """Drop windows that ended before t (a long run in a small heap keeps only
        what is current and ahead). Window ids stay stable."""
        if self.windows is not None:
            self.windows = [w for w in self.windows if w["end"] >= t]
        self.eclipses = [e for e in self.eclipses if e[1] >= t]
        self.contacts = [c for c in self.contacts if c[1] >= t]
        self._i_ecl = 0
        self.boundaries = None

    def _add(self, a, b, station, peak, seam):
        """An eclipse (station None) or a contact found in the chunk from seam; one
        cut by the seam continues. Returns its number, 0 when it continued one."""
        lst = self.eclipses if station is None else self.contacts
        if a == seam and seam > self.start:
            for i in range(len(lst) - 1, -1, -1):
                old = lst[i]
                if old[1] == seam and (station is None or old[2] == station):
                    lst[i] = (old[0], b) if station is None else (old[0], b, station, max(old[3], peak), old[4])
                    return 0
        kind = "eclipse" if station is None else "contact"
        n = self._counts[kind] + 1
        self._counts[kind] = n
        lst.append((a, b) if station is None else (a, b, station, peak, n))
        lst.sort()
        return n

    def eclipse_state(self, t):
        """(in_eclipse, time of the next eclipse entry/exit after t)."""
        self.extend_to(t)
        lst = self.eclipses
        i = self._i_ecl
        if i > len(lst) or (i > 0 and lst[i - 1][1] > t):
            i = 0   # time went back (a restored state): search from the start
        while i < len(lst) and lst[i][1] <= t:
            i += 1
        self._i_ecl = i
        if i < len(lst):
            if lst[i][0] <= t:
                return True, lst[i][1]
            return False, lst[i][0]
        return False, self.end

    def contact(self, t):
        """Station id of a contact in progress at t, or None."""
        self.extend_to(t)
        for c in self.contacts:
            if c[0] <= t < c[1]:
                return c[2]
            if c[0] > t:
                break
        return None


class SimulatedSatellite:
    """One spacecraft: orbit timeline + battery, thermal, compute, memory, CPU."""

    def __init__(self, sat_id, orb, start, bus=None, stations=None, timeline=None, clock=None,
                 state=None, horizon_s=86400, min_elevation_deg=models.MIN_ELEVATION_DEG):
        self.id = sat_id
        self.orbit = orb
        self.bus = models.bus_config(bus)
        if stations is None and timeline is None:
            import stations as stationlib
            stations = stationlib.default_stations()
        self.timeline = timeline or Timeline(orb, start, horizon_s, stations, min_elevation_deg)
        self.clock = clock
        # for contact()'s station names: the timeline's own list, not a copy
        self._stations = stations or getattr(self.timeline, "stations", None) or ()
        cfg = self.bus
        self.t = float(start)
        self.energy_wh = cfg["initial_soc"] * cfg["battery_wh"]
        self.temperature = cfg["initial_temperature_c"]
        self.load_w = 0.0          # requested by the running step (power_w)
        self.load_memory_mb = 0.0
        self.version = 0           # bumped whenever the regime changes from outside (load, restore)
        self._levels = (0.0, cfg["capacity_half_soc"] * cfg["battery_wh"],
                        cfg["capacity_full_soc"] * cfg["battery_wh"], cfg["battery_wh"])
        if state is not None:
            self.restore(state)

    # --- the physics -----------------------------------------------------------

    def _net_w(self, sunlit, capacity):
        cfg = self.bus
        return (cfg["solar_w"] if sunlit else 0.0) - cfg["bus_load_w"] - self.load_w * capacity

    def _regime(self, e, sunlit):
        """(capacity, net power W into the battery) holding just after a time when
        the energy is e. At a threshold where the battery would fall below it at
        the upper capacity but rise at the lower one, the energy is pinned there at
        the lower capacity (the surplus is shed), instead of chattering."""
        cfg = self.bus
        cap = models.compute_capacity(e / cfg["battery_wh"], cfg)
        net = self._net_w(sunlit, cap)
        lv = self._levels
        if net < 0 and (e == lv[1] or e == lv[2]) and cap > 0:
            below = 0.5 if cap == 1.0 else 0.0
            net_below = self._net_w(sunlit, below)
            return below, (0.0 if net_below > 0 else net_below)
        if (net > 0 and e >= lv[3]) or (net < 0 and e <= 0):
            return cap, 0.0   # full (solar curtailed) or empty
        return cap, net

    def _segment(self, t, e, t_limit):
        """One stretch of constant regime from (t, e), ending at t_limit, at the next
        eclipse boundary or where the energy reaches a level. Returns
        (t_end, e_end, capacity, sunlit)."""
        eclipsed, t_env = self.timeline.eclipse_state(t)
        sunlit = not eclipsed
        t_end = t_env if t_env < t_limit else t_limit
        cap, net = self._regime(e, sunlit)
        level = None
        if net < 0:
            for lv in reversed(self._levels):
                if lv < e:
                    level = lv
                    break
        elif net > 0:
            for lv in self._levels:
                if lv > e:
                    level = lv
                    break
        if level is not None:
            t_cross = t + (level - e) / net * 3600
            if t_cross <= t_end:
                return t_cross, level, cap, sunlit
        return t_end, e + net * (t_end - t) / 3600, cap, sunlit

    def advance_to(self, t):
        """Integrate the physics exactly up to Unix time t (never backwards)."""
        cfg = self.bus
        while self.t < t:
            t_end, e_end, cap, sunlit = self._segment(self.t, self.energy_wh, t)
            target = (cfg["t_sun_c"] if sunlit else cfg["t_eclipse_c"]) + cfg["k_c_per_w"] * self.load_w * cap
            self.temperature = target + (self.temperature - target) * math.exp(-(t_end - self.t) / cfg["tau_s"])
            self.energy_wh = min(cfg["battery_wh"], max(0.0, e_end))
            self.t = t_end
        return self

    def _sync(self):
        clock = self.clock
        if clock is not None:
            start = getattr(clock, "start_epoch", None)
            self.advance_to(start + clock.now_ms() / 1000 if start is not None else clock.epoch())

    # --- the hardware adapter interface (hal.sim_sensors) -------------------------

    def battery_percent(self):
        self._sync()
        return 100 * self.energy_wh / self.bus["battery_wh"]

    def temperature_c(self):
        self._sync()
        return self.temperature

    def in_eclipse(self):
        self._sync()
        return self.timeline.eclipse_state(self.t)[0]

    def link_up(self):
        return self.link_down_ms() is None

    def link_down_ms(self):
        """While no station is in view: how long (ms) that is sure to last,
        rounded down with a ms to spare (the next contact's start, or the end
        of the windows known); None while one is. The agent's looks that wait
        for the link sleep through it (agent._sleep_ms)."""
        self._sync()
        t = self.t
        tl = self.timeline
        tl.extend_to(t)
        nxt = tl.end
        for c in tl.contacts:
            if c[0] <= t < c[1]:
                return None
            if c[0] > t:
                nxt = c[0]
                break
        return int((nxt - t) * 1000) - 1

    def position(self):
        """(lat_deg, lon_deg, altitude_km) now."""
        self._sync()
        return self.orbit.subpoint(self.t)

    def in_saa(self):
        """Inside the South Atlantic Anomaly (a radiation monitor's view)."""
        self._sync()
        t = self.t
        eci = self.orbit.position(t)
        # outside the polygon's band of latitude: outside, with no geodetic
        # latitude worked out (the geodetic one lies farther from the equator
        # than the geocentric z / r gives, on the same side)
        x, y, z = eci
        r = math.sqrt(x * x + y * y + z * z)
        if z > r * _SAA_SIN_HI or z < r * _SAA_SIN_LO:
            return False
        lat, lon, alt = self.orbit.subpoint(t, eci)
        return models.saa_intensity(lat, lon, alt) >= models.SAA_MIN_INTENSITY

    def contact(self):
        """The contact in progress as {station, station_name, elevation_peak_deg}, or None."""
        self._sync()
        t = self.t
        for a, b, sid, peak, n in self.timeline.contacts:
            if a <= t < b:
                name = sid
                for st in self._stations:
                    if st["id"] == sid:
                        name = st.get("name", sid)
                        break
                return {"station": sid, "station_name": name,
                        "elevation_peak_deg": peak, "window": "contact-%d" % n}
            if a > t:
                break
        return None

    def set_compute_load(self, power_w, memory_mb=0):
        """The running step's power (W, before capacity scaling) and memory; 0 = idle."""
        if power_w < 0 or memory_mb < 0:
            raise ValueError("compute load must not be negative")
        self._sync()
        if float(power_w) != self.load_w:
            self.version += 1
        self.load_w = float(power_w)
        self.load_memory_mb = float(memory_mb)

    # --- persistence ------------------------------------------------------------------

    def physical_state(self):
        """The physics worth surviving a firmware reset (a JSON-able dict)."""
        return {"satellite_id": self.id, "t": self.t, "energy_wh": self.energy_wh,
                "temperature_c": self.temperature}

    def restore(self, state):
        """Continue from physical_state(); the computer's load is reset to idle."""
        try:
            t = float(state["t"])
            e = float(state["energy_wh"])
            temp = float(state["temperature_c"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("bad physical state: %r" % (state,))
        self.t = t
        self.energy_wh = min(self.bus["battery_wh"], max(0.0, e))
        self.temperature = temp
        self.load_w = 0.0
        self.load_memory_mb = 0.0
        self.version += 1
        return self
