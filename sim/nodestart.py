"""What a simulated node (node.py) does once, before its loop: read its
arguments, load its config, open or create its world, build its satellite
and, with --faults, the injector. An overlay: node.py loads it to start and,
on MicroPython, drops it again, so the run's heap holds none of this code
(docs/sim.md "Memory").
"""
import gc
import json
import sys
import time

import agentconfig
import hal
import lazywatch
import orbit
import timeutil
from agent import Agent
from clock import SimClock
from spacecraft import SimulatedSatellite, Timeline
from store import Store

WINDOW_CHUNK_S = 3600  # the world predicts windows this far ahead at a time (docs/sim.md "Memory")


def parse_args(argv):
    """The command line (node.py's docstring) as a dict of strings (True for a
    flag); ValueError for an unexpected or a missing argument."""
    args = {"hours": "48", "speed": "0"}
    flags = ("--until-idle", "--heap-watch")
    i = 0
    while i < len(argv):
        key = argv[i]
        if key in flags:
            args[key[2:]] = True
            i += 1
        elif key.startswith("--") and i + 1 < len(argv):
            args[key[2:]] = argv[i + 1]
            i += 2
        else:
            raise ValueError("unexpected argument %r" % key)
    for required in ("config", "world"):
        if required not in args:
            raise ValueError("--%s is required" % required)
    return args


def setup(node, args, reboot_ms, echo):
    """Give `node` its config, world store, clock, satellite, end and injector
    from the parsed arguments; ValueError or OSError when they do not make a
    world. A restart costs the computer `reboot_ms`; injections are `echo`ed."""
    node.cfg = agentconfig.make(_read_json(args["config"], "--config"))
    node.speed = float(args["speed"])
    node.restart_cause = args.get("reset-cause", "power_on")
    node.until_idle = bool(args.get("until-idle"))
    node.heap_watch = bool(args.get("heap-watch"))
    hal.makedirs(args["world"])
    node.wstore = Store(args["world"], name="world", max_log_bytes=4096).open()
    saved = node.wstore.state if isinstance(node.wstore.state, dict) else None
    if saved is None:
        if "tle" not in args:
            raise ValueError("--tle is required on the first start")
        lines = [ln.strip() for ln in _read(args["tle"], "--tle").split("\n")
                 if ln.strip() and not ln.startswith("#")]
        if len(lines) < 2:
            raise ValueError("--tle %s: not a TLE (fewer than two lines)" % args["tle"])
        start = timeutil.parse_iso(args["start"]) if "start" in args else time.time()
        bus = json.loads(args["bus"]) if "bus" in args else None
        if bus is not None and not isinstance(bus, dict):
            raise ValueError("--bus must be a JSON object")
        saved = {"start": start, "tle": lines[-2:], "name": lines[0] if len(lines) > 2 else None,
                 "end": start + float(args["hours"]) * 3600, "t_ms": 0, "sat": None,
                 "boots": 0, "bus": bus}
        node.first_boot = True
    else:
        node.first_boot = False
    node.saved = saved
    # one satellite needs no World: its clock, its timeline and itself
    try:
        orb = orbit.Orbit(orbit.parse_tle(saved["tle"][0], saved["tle"][1], saved.get("name")))
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise ValueError("--tle %s: not a TLE (%s)" % (args.get("tle", "in the world store"), exc))
    node.clock = SimClock(start_epoch=saved["start"])
    # the station table is needed only here: an overlay, like the TLE reader
    loaded = "stations" in sys.modules
    import stations
    timeline = Timeline(orb, saved["start"], WINDOW_CHUNK_S, stations.default_stations(), windows=False)
    if not loaded and sys.implementation.name == "micropython":
        del sys.modules["stations"]
    node.sat = SimulatedSatellite(node.cfg["satellite_id"], orb, saved["start"], bus=saved.get("bus"),
                                  timeline=timeline, clock=node.clock, state=saved["sat"])
    # a restart of this process is a reset of the computer: it takes a moment
    node.clock.advance_to(saved["t_ms"] + (0 if node.first_boot else reboot_ms))
    if "until" in args:  # stop this run at a time (the world carries on at the next start)
        node.end_ms = int((timeutil.parse_iso(args["until"]) - saved["start"]) * 1000)
    else:
        node.end_ms = int((saved["end"] - saved["start"]) * 1000)
    if "isl" in args:  # one clock for the fleet: join its ISL hub (an overlay)
        __import__("islstart").join(node, args["isl"])
    node.injector = None
    node.power_cut = ()   # the exception a power cut raises: none without --faults
    if "faults" in args:
        script = _read_json(args["faults"], "--faults")
        seed = int(args.get("seed", "0"))
        state_path = args["world"].rstrip("/") + "/faults.state"
        loaded = "faultscript" in sys.modules
        import faultscript
        if faultscript.world_only(script):
            # the spacecraft's faults alone: the computer's doors stay out of the heap
            script = faultscript.check_world(script)
            fired = faultscript.load_fired(state_path, seed)
            if not loaded and sys.implementation.name == "micropython":
                del sys.modules["faultscript"]
            from worldfaults import WorldFaults
            node.injector = WorldFaults(script, seed, state_path, echo, fired)
        else:
            import faults
            from faultfs import PowerCut
            node.power_cut = PowerCut
            node.injector = faults.Injector(script, seed=seed, state_path=state_path, echo=echo)


def boot(node, cause):
    """Build the node's computer and boot it: its watchdog, its link, its
    agent (with sim/lazywatch.py's supervisor), and, with
    --faults, the injector's hooks. Every boot runs this (node._boot)."""
    node.sat.set_compute_load(0)
    gc.collect()
    inj = node.injector
    watchdog = hal.SimWatchdog(node.cfg["watchdog_timeout_ms"], clock=node.clock,
                               on_feed=node.heartbeat)
    watchdog.arm()
    if node.cfg["transport"] == "serial":  # a radio behind a serial line (docs/serial.md)
        from seriallink import SerialLink
        bps = node.sat.bus["radio_bps"]
        if bps:  # the radio's rate, in simulated time (sim/radio.py)
            import serialport
            from radio import RadioPort
            from scheduler import sleep_ms
            radio = RadioPort(serialport.open_port(node.cfg["serial_port"], node.cfg["serial_baud"]),
                              node.clock, bps)
            link = SerialLink(node.cfg, agentconfig.FIRMWARE_VERSION, port=radio,
                              now_ms=node.clock.now_ms, pause=sleep_ms(5))
        else:
            link = SerialLink(node.cfg, agentconfig.FIRMWARE_VERSION)
    else:
        from link import HttpLink  # here, not at the top: a serial node never holds it
        link = HttpLink(node.cfg, agentconfig.FIRMWARE_VERSION)
        link.block_ms = node.cfg["http_timeout_ms"]  # the simulated clock stands still meanwhile
        link.conn = [None, None]  # one connection kept alive: exchanges come milliseconds apart
    fs = None
    if inj is not None and inj.doors:
        inj.before_boot(node)
        fs = inj.storage_fs()
        link = inj.wrap_link(link)
    sensors = hal.sim_sensors(node.sat)
    if inj is not None:  # its timed faults fire between rounds: no link-down hint, every round stays
        sensors.link_down_ms = None
    node.agent = Agent(node.cfg, node.clock, sensors, link, node.cfg["storage_root"], watchdog=watchdog,
                       reset_cause=cause, fs=fs, isl=getattr(node, "isl", None))
    node.agent.journal.on_commit = node.sync_world
    node.watchdog = watchdog
    lazywatch.install(node.agent)  # the watchdog ticks no task can miss are skipped
    if inj is not None and inj.doors:
        inj.after_boot(node, node.agent)  # sensors wrapped before the boot reads them
    node.agent.boot()
    node.saved["boots"] = node.saved.get("boots", 0) + 1
    node.sync_world(force=True)


def _read(path, what):
    """The text of a file; OSError naming the file (MicroPython's own says
    only "[Errno 2] ENOENT")."""
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        raise OSError("%s %s: cannot read (%s)" % (what, path, exc))


def _read_json(path, what):
    try:
        return json.loads(_read(path, what))
    except ValueError as exc:
        raise ValueError("%s %s: not JSON (%s)" % (what, path, exc))


def summary(node, code, heap_free):
    """The exit summary line's document (node.py's main prints it)."""
    st = node.agent.state
    return {"node": node.cfg["agent_id"], "exit": code, "seq": st["seq"],
            "outbox": node.agent.journal.pending(), "mode": st["mode"],
            "done": st["done"], "boots": node.saved.get("boots"),
            "stats": node.agent.stats,
            "link_error": getattr(node.agent.link, "last_error", None),
            "heap_free": heap_free, "reboots": node.reboots,
            "heap_peak": node.heap_peak if node.heap_watch else None,
            "faults": node.injector.report() if node.injector else None,
            "isl": getattr(node, "isl", None) and __import__("islstart").bye(node.isl),
            "sim_time": timeutil.iso_utc(node.clock.epoch())}
