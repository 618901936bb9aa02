# Frozen into the emulated boards' images (emu/board/board.mk). The board's
# start-up always; with UMBRA_FROZEN=1 in the environment, Umbra's flight code
# too (firmware/ and lib/ less the ground-only modules, tools/deploy.py
# HOST_ONLY), as a flight board ships it: code runs from flash, the heap
# holds only data. UMBRA_ROOT: the checkout (tools/emu.py sets both).
#
# Every image also carries the simulated world a node needs (sim/node.py and
# what it imports; not the fault injector): the test rig of the demo mission
# on the board (docs/boards.md "The demo mission"). It is not flight code, so
# it lives in flash whichever way the flight code comes and its code never
# counts against the heap; a flight board's image leaves it out.
import os

root = os.environ["UMBRA_ROOT"]
freeze(root + "/emu/board", "_umbraboot.py")
WORLD = ("busdefaults.py", "lazywatch.py", "models.py", "node.py", "nodestart.py", "orbit.py",
         "orbitscan.py", "spacecraft.py", "stations.py", "tle.py")
freeze(root + "/sim", WORLD)

if os.environ.get("UMBRA_FROZEN") == "1":
    host_only = ("planner", "planner_run", "hostticks")
    for folder in ("firmware", "lib"):
        here = root + "/" + folder
        names = sorted(n for n in os.listdir(here)
                       if n.endswith(".py") and n[:-3] not in host_only)
        freeze(here, tuple(names))
