"""The agent's configuration at run time: its firmware version, the compute
capacity rule, and `make(overrides)`, which builds a full config from the
defaults in firmware/agentdefaults.py (every tunable, with its unit and
limits) — loaded for that and dropped again, so a board keeps only the
config it runs with."""
import sys

FIRMWARE_VERSION = "0.1.0"


def make(overrides=None):
    """The defaults with `overrides`; ValueError for an unknown key or values
    that contradict each other (agentdefaults.make)."""
    import agentdefaults
    try:
        return agentdefaults.make(overrides)
    finally:
        if sys.implementation.name == "micropython":  # CPython keeps it: no heap to give back
            sys.modules.pop("agentdefaults", None)


def defaults():
    """A fresh copy of every default."""
    return make()


def compute_capacity(battery_pct, cfg):
    """1.0 at >= 30 %, 0.5 from 15 % to 30 %, 0 below 15 % (MODELS.md)."""
    if battery_pct is None:
        return 1.0
    margin = cfg["battery_margin_pct"]
    if battery_pct >= cfg["battery_full_compute_pct"] + margin:
        return 1.0
    if battery_pct >= cfg["battery_stop_pct"] + margin:
        return 0.5
    return 0.0
