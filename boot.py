"""The first file the board runs: arm the watchdog, learn why we booted, check
the firmware against its manifest, start the agent (which picks normal or
safe mode from the reset history and the integrity check). On the MicroPython unix port: `micropython boot.py CONFIG.json`
(what `umbra agent run` does), with lib/ and firmware/ on MICROPYPATH.

Exit codes on the unix port (the parent process restarts the node):
    0  stopped cleanly          2  bad config
    3  the agent asked for a reset (an intended reset)
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


def load_config(path):
    with open(path) as f:
        return agentconfig.make(json.load(f))


def main(argv):
    path = argv[1] if len(argv) > 1 else "umbra.json"
    try:
        cfg = load_config(path)
    except (OSError, ValueError) as exc:
        print(json.dumps({"error": "bad config %s: %s" % (path, exc)}))
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
    try:
        from agent import Agent
        link = make_link(cfg)
    except Exception as exc:  # the agent's own bytes are damaged: nothing to run
        print(json.dumps({"error": "cannot load the agent: %r" % (exc,), "integrity": integrity}))
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
    sys.exit(main(sys.argv))
