"""The spacecraft bus defaults (MODELS.md "Power", "Thermal", "Memory and
CPU") and their validation. Loaded only to build a satellite's bus through
models.bus_config, which drops it again on MicroPython: a node keeps the
bus it runs with, not the table it came from (docs/sim.md "Memory").
"""


def bus_config(overrides=None):
    """A satellite's bus (a 6U-class default): these defaults updated by
    `overrides` (dict). Unknown keys or non-numeric values raise ValueError (a
    typo must not silently do nothing). Every value comes out a float; whole
    numbers are written as ints here (each distinct float literal costs a node
    ~32 bytes of heap)."""
    cfg = {
        "battery_wh": 80,            # capacity
        "initial_soc": 0.8,          # state of charge at start (0..1)
        "solar_w": 45,               # array output in sunlight
        "bus_load_w": 8,             # always-on platform load
        "compute_w": 20,             # default power_w of a running step
        "capacity_full_soc": 0.30,   # compute capacity 1.0 at or above
        "capacity_half_soc": 0.15,   # 0.5 from here to full_soc; 0 below ("compute unavailable")
        "critical_soc": 0.10,        # below: critical
        "t_sun_c": 30,               # thermal equilibrium in sunlight, no compute
        "t_eclipse_c": -10,          # in eclipse, no compute
        "k_c_per_w": 2,              # heating per watt of compute load
        "tau_s": 600,                # thermal time constant
        "initial_temperature_c": 20,
        "thermal_limit_c": 75,       # the agent's gate (STEPS.md); informative here
        "memory_mb": 512,            # total RAM of the payload computer
        "memory_base_mb": 64,        # used with no step running
        "cpu_idle_percent": 5,       # CPU with no compute load
        "storage_mb": 8192,
        "downlink_mbps": 10,
        "radio_bps": 0,              # the serial link's radio, bits/s each way (0: an unpaced line; sim/radio.py)
    }
    for key in overrides or ():
        if key not in cfg:
            raise ValueError("unknown bus parameter %r" % (key,))
        value = overrides[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError("bus parameter %r must be a number, got %r" % (key, value))
        cfg[key] = value
    for key in cfg:
        cfg[key] = float(cfg[key])
    if cfg["battery_wh"] <= 0 or cfg["tau_s"] <= 0:
        raise ValueError("battery_wh and tau_s must be positive")
    if not 0 <= cfg["initial_soc"] <= 1:
        raise ValueError("initial_soc must be within 0..1")
    if not 0 <= cfg["capacity_half_soc"] <= cfg["capacity_full_soc"] <= 1:
        raise ValueError("need 0 <= capacity_half_soc <= capacity_full_soc <= 1")
    return cfg
