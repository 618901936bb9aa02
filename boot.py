"""The first file the board runs: arm the watchdog, learn why we booted, check
the firmware against its manifest, start the agent (which picks normal or
safe mode from the reset history and the integrity check). On the MicroPython
unix port: `micropython boot.py CONFIG.json` (what `umbra agent run` does),
with lib/ and firmware/ on MICROPYPATH.

A missing or bad config is safe mode, never a boot loop: when the file still
names the agent and its link (LINK_KEYS), the agent runs in safe mode (no
jobs) and its agent.safe_mode event tells the Console why; when not even
that is there, a board prints the reason on its REPL every SAFE_IDLE_S and
waits for a good config (Ctrl-C gives the REPL).

Exit codes on the unix port (the parent process restarts the node):
    0  stopped cleanly          2  no usable config
    3  the agent asked for a reset (an intended reset)
    4  the agent cannot be loaded
"""
import gc
import json
import sys

try:
    gc.threshold(16384)  # FACTS.md: allocation stays fast with a small threshold
except AttributeError:
    pass

import agentconfig  # noqa: E402
import boardhal  # noqa: E402
import clock  # noqa: E402
import hal  # noqa: E402

EXIT_BAD_CONFIG = 2
EXIT_RESET = 3
EXIT_BROKEN = 4  # the agent itself cannot be loaded (its bytes are damaged)


def _heartbeat():
    # The unix port has no hardware watchdog: the parent process watches these
    # lines and kills and restarts the node when they stop (RELIABILITY.md).
    print("WDT")


def check_integrity():
    """Every deployed module against the SHA-256 manifest `umbra deploy` wrote.
    No manifest at all means this is not a deployed board (the unix port run
    from a checkout): nothing to check. Any other problem -> safe mode."""
    try:
        import manifest
        problems = manifest.verify("")
    except Exception as exc:  # boot must survive anything here
        return [("manifest", "unverifiable: %s" % exc)]
    return [p for p in problems if p[1] != manifest.NO_MANIFEST]


def make_link(cfg):
    """HTTP or the serial binding, by config; everything above is identical."""
    if cfg["transport"] == "serial":
        from seriallink import SerialLink
        return SerialLink(cfg, agentconfig.FIRMWARE_VERSION)
    from link import HttpLink
    return HttpLink(cfg, agentconfig.FIRMWARE_VERSION)


# What a config must still hold, when the rest of it is bad, for the agent to
# call home in safe mode and say why (the others take their defaults).
LINK_KEYS = ("agent_id", "api_key", "satellite_id", "api_url", "transport", "serial_port",
             "serial_baud", "storage_root")
SAFE_IDLE_S = 10  # with no usable config at all: the reason again on the REPL this often


def on_board():
    return sys.platform not in ("linux", "darwin", "win32")  # not the unix port (or CPython)


def read_config(path):
    """(cfg, problem). A good config: (cfg, None). A missing or bad one: the
    part that still lets the agent call home (identity and link, the rest
    defaults) and why it is bad, or (None, why) when not even that is there."""
    raw = None
    try:
        with open(path) as f:
            raw = json.load(f)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        return agentconfig.make(raw), None
    except OSError as exc:
        problem = "no config %s: %s" % (path, exc)
    except (ValueError, TypeError) as exc:
        problem = "bad config %s: %s" % (path, exc)
    if not isinstance(raw, dict):
        return None, problem
    try:
        cfg = agentconfig.make(dict((k, raw[k]) for k in LINK_KEYS if k in raw))
    except (ValueError, TypeError):
        return None, problem
    return (cfg if isinstance(cfg["api_key"], str) and cfg["api_key"] else None), problem


def safe_idle(reason):
    """Nothing to run (no usable config, or the agent cannot load): say why on
    the REPL every SAFE_IDLE_S, forever. Never exit: on a board that is a soft
    reset, which would only come back here (a boot loop). Ctrl-C gives the
    REPL, from where `umbra deploy --config` puts a good config in place."""
    import time
    wdt = boardhal.BoardWatchdog()  # a watchdog armed before a soft reset still runs: feed it
    wdt.arm()
    while True:
        print(json.dumps({"mode": "safe", "reason": reason}))
        for _ in range(SAFE_IDLE_S * 4):
            wdt.feed()
            time.sleep_ms(250)


def main(argv):
    path = argv[1] if len(argv) > 1 else "umbra.json"
    cfg, problem = read_config(path)
    if problem:
        print(json.dumps({"error": problem, "mode": "safe"}))
        if cfg is None:
            if on_board():
                safe_idle(problem)
            return EXIT_BAD_CONFIG
    board_wdt = boardhal.BoardWatchdog(cfg["watchdog_timeout_ms"])
    if board_wdt.arm():
        watchdog = board_wdt
    else:
        watchdog = hal.SimWatchdog(cfg["watchdog_timeout_ms"], on_feed=_heartbeat)
        watchdog.arm()
    real_clock = clock.RealClock()
    root = boardhal.storage_root(cfg["storage_root"])
    integrity = check_integrity()  # before loading the code it vouches for
    if problem:  # the agent runs in safe mode and tells the Console why
        integrity.insert(0, (path, problem))
    try:
        from agent import Agent
        link = make_link(cfg)
    except Exception as exc:  # the agent's own bytes are damaged: nothing to run
        print(json.dumps({"error": "cannot load the agent: %r" % (exc,), "integrity": integrity}))
        if on_board():
            safe_idle("cannot load the agent: %r" % (exc,))
        return EXIT_BROKEN
    agent = Agent(cfg, real_clock, hal.Sensors(), link, root, watchdog=watchdog,
                  reset_cause=boardhal.board_reset_cause(), integrity=integrity)
    agent.boot()
    print(json.dumps({"booted": cfg["agent_id"], "boot_count": agent.state["boot_count"],
                      "seq": agent.state["seq"]}))
    agent.sched.run()
    if agent.reset_requested:
        boardhal.board_reset()  # does not return on a board
        return EXIT_RESET
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    if not on_board():
        sys.exit(code)  # the unix port: the parent process acts on the code
    # on a board the REPL follows: sys.exit() would soft-reset it and run this again
