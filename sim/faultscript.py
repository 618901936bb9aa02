"""A fault script's format, as a node checks it at its start (sim/nodestart.py
loads this then and, on MicroPython, drops it after): whether the script
holds only the spacecraft's own faults (sim/worldfaults.py runs those), the
rule every timed fault's at_s follows (sim/faults.py's check_script uses it
too), and the once-faults an earlier run of this process's script fired.
Portable."""
import json

WORLD_KINDS = ("brownout",)   # sim/worldfaults.py's


def world_only(script):
    """True when `script` is a non-empty list of WORLD_KINDS faults alone (an
    empty script is the Injector's: it counts the journal's writes, the
    campaigns' census)."""
    if not isinstance(script, list) or not script:
        return False
    for f in script:
        if not isinstance(f, dict) or f.get("kind") not in WORLD_KINDS:
            return False
    return True


def check_at(f, i):
    """A timed fault's at_s: a number >= 0."""
    at = f.get("at_s", 0)
    if not isinstance(at, (int, float)) or at < 0:
        raise ValueError("fault %d: at_s must be a number >= 0" % i)


def check_world(script):
    """A script that world_only(): normalised as faults.check_script does
    (ids added), or ValueError naming the bad entry."""
    out = []
    for i, f in enumerate(script):
        check_at(f, i)
        f = dict(f)
        f["id"] = i
        out.append(f)
    return out


def load_fired(state_path, seed):
    """{id: 1} of the once-faults fired by earlier runs of this process's
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
