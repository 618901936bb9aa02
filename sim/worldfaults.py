"""The faults of a node's spacecraft rather than its computer (a brown-out:
the battery steps down), for a node whose fault script has only those
(sim/faultscript.py world_only).

sim/faults.py's Injector has doors into the computer (the journal's file
system, the link, the sensors, the tasks, the TMR cells) and holds ~30 KiB
of the node's heap for them (it and sim/faultfs.py, x64 .mpy): a node that
only browns out needs none of it, and its heap is then the agent's own plus
the simulated hardware and this (~1.5 KiB), as on a node with no faults
(sim/nodestart.py picks it). The same script format, the same once-state
file, the same {"fault": ...} lines as the Injector. Portable.

    inj = WorldFaults(script, seed, state_path, echo, fired)   # faultscript's check_world, load_fired
    inj.tick(node, now_ms) -> None    # between rounds: fires what is due
"""
import json
import os


def brownout(sat, f):
    """The battery of `sat` (a SimulatedSatellite) steps down: to `soc` of
    full (never up), or by `drop` (0.3 unless given). The detail line."""
    st = sat.physical_state()
    full = sat.bus["battery_wh"]
    before = st["energy_wh"]
    if isinstance(f.get("soc"), (int, float)):
        after = min(before, f["soc"] * full)
    else:
        after = before * (1.0 - float(f.get("drop", 0.3)))
    st["energy_wh"] = after
    sat.restore(st)
    return {"soc_before": round(before / full, 3), "soc_after": round(after / full, 3)}


def save_fired(state_path, seed, fired):
    """The once-faults fired so far, for a restart of this process."""
    if state_path:
        tmp = state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"seed": seed, "fired": [k for k in fired]}, f)
        os.rename(tmp, state_path)


class WorldFaults:
    """The node-facing part of faults.Injector for a world-only script: each
    fault fires once, at its at_s. No doors into the computer (doors False:
    the node's boot wraps nothing)."""
    doors = False

    def __init__(self, script, seed, state_path, echo, fired):
        self.faults = script
        self.seed = seed
        self.state_path = state_path
        self.echo = echo
        self.fired = fired
        self.counts = {}
        self.resets = 0

    def tick(self, node, now_ms):
        for f in self.faults:
            if f["id"] in self.fired or f.get("at_s", 0) > now_ms / 1000.0:
                continue
            detail = brownout(node.sat, f)
            self.counts[f["kind"]] = self.counts.get(f["kind"], 0) + 1
            self.fired[f["id"]] = 1
            save_fired(self.state_path, self.seed, self.fired)
            if self.echo is not None:
                line = {"fault": f["kind"], "id": f["id"], "t_s": node.clock.now_ms() // 1000}
                line.update(detail)
                self.echo(line)
        return None

    def power_cut_now(self):
        return False   # no power cut in its script

    def note_reset(self, cause, now_ms, wall_ms):
        self.resets += 1

    def report(self):
        return {"seed": self.seed, "injected": self.counts, "skipped": {}, "resets": self.resets}
