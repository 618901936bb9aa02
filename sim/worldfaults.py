"""The faults of a node's spacecraft rather than its computer (a brown-out:
the battery steps down), for a node whose fault script has only those.

sim/faults.py's Injector has doors into the computer (the journal's file
system, the link, the sensors, the tasks, the TMR cells) and holds ~30 KiB
of the node's heap for them (it and sim/faultfs.py, x64 .mpy): a node that
only browns out needs none of it, and its heap is then the agent's own plus
the simulated hardware, as on a node with no faults (sim/nodestart.py picks
this one). The same script format, the same once-state file, the same
{"fault": ...} lines as the Injector. Portable.

    inj = WorldFaults(script, seed=0, state_path=None, echo=None)
    inj.tick(node, now_ms) -> None    # between rounds: fires what is due
"""
import json
import os

KINDS = ("brownout",)


def suits(script):
    """True when `script` is a list of faults of KINDS alone (the node then
    checks it with check(), never loading sim/faults.py: a module loaded
    and dropped at the start leaves the heap in pieces). An empty script is
    the Injector's: it counts the journal's writes (the campaigns' census)."""
    if not isinstance(script, list) or not script:
        return False
    for f in script:
        if not isinstance(f, dict) or f.get("kind") not in KINDS:
            return False
    return True


def check_at(f, i):
    """A timed fault's at_s (faults.check_script's rule): a number >= 0."""
    at = f.get("at_s", 0)
    if not isinstance(at, (int, float)) or at < 0:
        raise ValueError("fault %d: at_s must be a number >= 0" % i)


def check(script):
    """A script that suits(): normalised as faults.check_script does (ids
    added), or ValueError naming the bad entry."""
    out = []
    for i, f in enumerate(script):
        check_at(f, i)
        f = dict(f)
        f["id"] = i
        out.append(f)
    return out


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


def load_fired(state_path, seed):
    """The ids of the once-faults fired by earlier runs of this process's
    script (the state file, when its seed is this one)."""
    fired = {}
    if state_path:
        try:
            with open(state_path) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            return fired
        if isinstance(doc, dict) and doc.get("seed") == seed:
            for k in doc.get("fired") or ():
                fired[int(k)] = 1
    return fired


def save_fired(state_path, seed, fired):
    if state_path:
        tmp = state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"seed": seed, "fired": [k for k in fired]}, f)
        os.rename(tmp, state_path)


class WorldFaults:
    """The node-facing part of faults.Injector for a script of KINDS alone
    (checked by check(); each fires once, at its at_s)."""

    def __init__(self, script, seed=0, state_path=None, echo=None):
        self.faults = script
        self.seed = seed
        self.state_path = state_path
        self.echo = echo
        self.fired = load_fired(state_path, seed)
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

    # the Injector's doors into the computer: none here
    def before_boot(self, node):
        pass

    def storage_fs(self):
        return None    # the journal on the plain file system

    def wrap_link(self, link):
        return link

    def after_boot(self, node, agent):
        pass

    def power_cut_now(self):
        return False   # no power cut in its script

    def note_reset(self, cause, now_ms, wall_ms):
        self.resets += 1

    def report(self):
        return {"seed": self.seed, "injected": self.counts, "skipped": {}, "resets": self.resets}
