"""The simulated world: one SimClock, any number of satellites, one ground
network. A discrete-event driver asks `next_boundary_ms()` and sleeps until
then, so every eclipse entry/exit, contact start/end and compute-capacity
switch is seen exactly when it happens.

    w = World(start_epoch, horizon_s=86400)
    sat = w.add_satellite("25544", orbitio.read_tle_text(text))
    while True:
        t = w.next_boundary_ms()
        if t is None: break
        w.advance_to_ms(t)
"""
import math

import clock as clocklib
import models
import orbit as orbitlib
import orbitio
import spacecraft
import stations as stationlib

_MARGIN_S = 600.0

# --- ISL link model (MODELS.md) ----------------------------------------------------
ISL_RANGE_KM = 5000.0
ISL_DISTANCE_SLOPE = 0.6        # quality loss at full range
ISL_ECLIPSE_PENALTY = 0.9       # x when either endpoint is in eclipse
ISL_MAX_MBPS = 100.0
LIGHT_KM_S = 299792.458
ISL_HOP_OVERHEAD_S = 0.002


def validate_station(s):
    """Check one station dict ({id, lat, lon, ...}); returns it, or raises ValueError."""
    for key in ("id", "lat", "lon"):
        if key not in s:
            raise ValueError("station needs %r: %r" % (key, s))
    if not -90 <= s["lat"] <= 90 or not -180 <= s["lon"] <= 360:
        raise ValueError("station %r: latitude/longitude out of range" % (s["id"],))
    return s


def isl_quality(distance_km, either_in_eclipse):
    """Link quality 0..1 between two satellites `distance_km` apart (0 beyond range)."""
    if distance_km > ISL_RANGE_KM or distance_km < 0:
        return 0.0
    quality = 1.0 - (distance_km / ISL_RANGE_KM) * ISL_DISTANCE_SLOPE
    if either_in_eclipse:
        quality *= ISL_ECLIPSE_PENALTY
    return quality


def isl_hop(distance_km, either_in_eclipse):
    """{distance_km, quality, bandwidth_mbps, latency_ms, up} for one ISL hop."""
    quality = isl_quality(distance_km, either_in_eclipse)
    return {"distance_km": distance_km, "quality": quality, "up": quality > 0,
            "bandwidth_mbps": ISL_MAX_MBPS * quality,
            "latency_ms": (distance_km / LIGHT_KM_S + ISL_HOP_OVERHEAD_S) * 1000.0}


class World:
    def __init__(self, start, horizon_s=86400.0, stations=None,
                 min_elevation_deg=models.MIN_ELEVATION_DEG, chunk_s=None):
        if horizon_s <= 0:
            raise ValueError("the horizon must be positive")
        self.start = float(start)
        self.horizon_s = float(horizon_s)
        self.clock = clocklib.SimClock(start_epoch=self.start)
        if stations is None:
            stations = stationlib.default_stations()
        self.stations = [validate_station(s) for s in stations]
        self.min_elevation_deg = min_elevation_deg
        # windows are predicted this far at a time (default: the whole horizon);
        # a small chunk keeps a long run inside a small heap
        self.chunk_s = chunk_s
        self.satellites = {}
        self.order = []          # satellite ids in the order they were added
        self._next = {}          # sat id -> (sat.version, its next boundary): only stale ones are recomputed

    # --- population ---------------------------------------------------------------

    def add_satellite(self, sat_id, elements, bus=None, state=None):
        """Add a satellite from an elements dict (tle.parse_tle, orbitio.keplerian_elements)
        or an Orbit. Its windows over the horizon are computed now."""
        if sat_id in self.satellites:
            raise ValueError("satellite %r is already in the world" % (sat_id,))
        orb = elements if isinstance(elements, orbitlib.Orbit) else orbitlib.Orbit(elements)
        # windows a little past the horizon, so a state at its very end knows what follows
        timeline = spacecraft.Timeline(orb, self.start, self.chunk_s or (self.horizon_s + _MARGIN_S),
                                       self.stations, self.min_elevation_deg)
        sat = spacecraft.SimulatedSatellite(sat_id, orb, self.start, bus=bus, timeline=timeline,
                                            clock=self.clock, state=state)
        self.satellites[sat_id] = sat
        self.order.append(sat_id)
        return sat

    def satellite(self, sat_id):
        sat = self.satellites.get(sat_id)
        if sat is None:
            raise ValueError("unknown satellite %r" % (sat_id,))
        return sat

    # --- time ----------------------------------------------------------------------

    def now(self):
        """Physical time (Unix s): the clock's origin plus its milliseconds."""
        return self.start + self.clock.now_ms() / 1000.0

    def to_ms(self, t):
        """Unix time -> the clock's milliseconds, rounded up (at that ms, t has passed)."""
        return int(math.ceil((t - self.start) * 1000.0 - 1e-6))

    def advance_to_ms(self, t_ms):
        """Move the clock. Satellites integrate lazily (and exactly) up to the
        clock's time whenever they are read, so an idle one costs nothing."""
        self.clock.advance_to(t_ms)

    def sync(self):
        """Bring every satellite's physics up to the clock now."""
        now = self.now()
        for sid in self.order:
            self.satellites[sid].advance_to(now)

    def forget_past(self, keep_s=3600.0):
        """Let every satellite drop windows that ended more than keep_s ago."""
        t = self.now() - keep_s
        for sid in self.order:
            self.satellites[sid].timeline.forget_before(t)

    def next_boundary_ms(self, after_ms=None):
        """The first boundary of any satellite after `after_ms` (default: now),
        in clock ms, or None past the horizon."""
        now_ms = self.clock.now_ms()
        after_ms = now_ms if after_ms is None else after_ms
        after = self.start + after_ms / 1000.0
        end = self.start + self.horizon_s
        best = None
        for sid in self.order:
            sat = self.satellites[sid]
            cached = self._next.get(sid)
            if cached is not None and cached[0] == sat.version and cached[1] > after:
                t = cached[1]
            else:
                if sat.t <= after <= self.now():
                    sat.advance_to(after)
                t = next_boundary(sat, after)
                if after == sat.t:        # complete (capacity switches included): keep it
                    self._next[sid] = (sat.version, t)
            if best is None or t < best:
                best = t
        if best is None or best > end:
            return None
        t_ms = self.to_ms(best)
        return t_ms if t_ms > after_ms else after_ms + 1

    def boundaries(self, until_ms=None):
        """Advance through every boundary up to `until_ms` (default: the horizon),
        yielding the clock ms after each step."""
        end_ms = self.to_ms(self.start + self.horizon_s) if until_ms is None else until_ms
        while True:
            t_ms = self.next_boundary_ms()
            if t_ms is None or t_ms > end_ms:
                if self.clock.now_ms() < end_ms:
                    self.advance_to_ms(end_ms)
                    yield end_ms
                return
            self.advance_to_ms(t_ms)
            yield t_ms

    # --- links -------------------------------------------------------------------------

    def windows(self, sat_id, kind=None):
        """The satellite's windows over the horizon (Unix-second start/end)."""
        tl = self.satellite(sat_id).timeline
        t0 = self.start
        t1 = t0 + self.horizon_s
        tl.extend_to(t1 - 1e-6)
        return [w for w in tl.windows if w["end"] > t0 and w["start"] < t1
                and (kind is None or w["kind"] == kind)]

    def link_up(self, sat_id, t=None):
        """True while the satellite is in a contact window with any station."""
        tl = self.satellite(sat_id).timeline
        return tl.contact(self.now() if t is None else t) is not None

    def distance_km(self, a, b, t=None):
        t = self.now() if t is None else t
        xa, ya, za = self.satellite(a).orbit.position(t)
        xb, yb, zb = self.satellite(b).orbit.position(t)
        return math.sqrt((xa - xb) ** 2 + (ya - yb) ** 2 + (za - zb) ** 2)

    def isl_link(self, a, b, t=None):
        """The ISL between satellites a and b at t (MODELS.md): {distance_km,
        quality, bandwidth_mbps, latency_ms, up}."""
        t = self.now() if t is None else t
        either_dark = (self.satellite(a).timeline.eclipse_state(t)[0]
                       or self.satellite(b).timeline.eclipse_state(t)[0])
        return isl_hop(self.distance_km(a, b, t), either_dark)


# --- a satellite as a discrete-event driver and an observer see it -----------------
# (here, not in spacecraft.py: a node's one satellite needs neither, and every
# function a node loads costs it RAM)

def state_of(sat):
    """Everything an observer (a timeline, a test) wants of a satellite at once."""
    sat._sync()
    t = sat.t
    tl = sat.timeline
    bus = sat.bus
    eclipsed = tl.eclipse_state(t)[0]
    cap = sat._regime(sat.energy_wh, not eclipsed)[0]
    station = tl.contact(t)
    lat, lon, alt = sat.orbit.subpoint(t)
    load_w = sat.load_w * cap
    idle = bus["cpu_idle_percent"]
    busy = min(1.0, load_w / bus["compute_w"]) if bus["compute_w"] > 0 else 0.0
    return {"satellite_id": sat.id, "time": orbitio.iso(t), "t": t,
            "battery_wh": sat.energy_wh,
            "battery_percent": 100.0 * sat.energy_wh / bus["battery_wh"],
            "temperature_c": sat.temperature, "in_eclipse": eclipsed,
            "link_up": station is not None, "station": station,
            "lat": lat, "lon": lon, "altitude_km": alt,
            "compute_capacity": cap, "compute_load_w": load_w,
            "memory_mb": bus["memory_base_mb"] + (sat.load_memory_mb if sat.load_w > 0 else 0.0),
            "cpu_percent": idle + (100.0 - idle) * busy}


def next_capacity_change(sat, limit_s=None):
    """Unix time of the satellite's next change of compute capacity under its
    current load, or None within `limit_s` (default: its timeline's chunk)."""
    tl = sat.timeline
    t, e = sat.t, sat.energy_wh
    horizon = t + (limit_s if limit_s is not None else tl.chunk_s)
    cap0 = sat._regime(e, not tl.eclipse_state(t)[0])[0]
    while t < horizon:
        t, e, cap, _ = sat._segment(t, e, horizon)
        if cap != cap0:
            return t
        if t < horizon and sat._regime(e, not tl.eclipse_state(t)[0])[0] != cap0:
            return t
    return None


def next_window_boundary(tl, t):
    """The first window boundary (eclipse or contact start/end) of a Timeline after t."""
    tl.extend_to(t)
    b = tl.boundaries
    if b is None:
        b = []
        for w in tl.windows:
            if w["kind"] != "sunlit":
                b.append(w["start"])
                b.append(w["end"])
        b.sort()
        tl.boundaries = b
    lo, hi = 0, len(b)
    while lo < hi:              # first boundary > t
        mid = (lo + hi) // 2
        if b[mid] <= t:
            lo = mid + 1
        else:
            hi = mid
    return b[lo] if lo < len(b) else tl.end


def next_boundary(sat, after=None):
    """The next time anything about a satellite changes regime: an eclipse or
    contact boundary, or a compute-capacity switch."""
    after = sat.t if after is None else after
    best = next_window_boundary(sat.timeline, after)
    cap_t = next_capacity_change(sat, best - sat.t) if after <= sat.t else None
    if cap_t is not None and after < cap_t < best:
        best = cap_t
    return best
