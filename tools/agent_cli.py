"""`umbra agent run`: the firmware under the MicroPython unix port.

Real time (default): runs boot.py under the unix port and plays the hardware
watchdog: the node prints a heartbeat line at every feed; when feeds stop for
longer than the watchdog timeout, or the node asks for a reset (exit 3) or
dies, the node is killed and started again from its store — a reset.

Simulated time (--sim): runs the node and its simulated world in one
MicroPython process on the simulated clock (sim/node.py), talking to a real
Console over HTTP. The world keeps its physics in its own store, so killing
the process resets the spacecraft's computer, not its orbit or battery.
"""
import json
import os
import select
import signal
import subprocess
import sys
import time

import click

from tools import ROOT, upy

BOOT = os.path.join(ROOT, "boot.py")
SIM_NODE = os.path.join(ROOT, "sim", "node.py")


def node_config(agent_id, api_url, api_key, uplink_key, satellite_id, state_dir, extra=None):
    cfg = {"agent_id": agent_id, "api_url": api_url, "api_key": api_key,
           "uplink_key": uplink_key, "satellite_id": satellite_id or agent_id.split("-")[-1],
           "storage_root": os.path.abspath(os.path.join(state_dir, "flash"))}
    cfg.update(extra or {})
    return cfg


class NodeProcess:
    """One MicroPython node process, restarted like a board on reset."""

    RESTART_CAUSES = {"watchdog": "watchdog", "intended": "soft", "crash": "unknown"}

    def __init__(self, argv, env, watchdog_s, echo=None, boot_grace_s=None, cause_arg=None):
        self.argv = argv
        # a node that takes its reset cause as an argument (sim/node.py
        # --reset-cause): a restart tells it why, as machine.reset_cause() would
        self.cause_arg = cause_arg
        self.cause = None
        self.env = env
        self.watchdog_s = watchdog_s
        # Until its first feed a node gets at least this long: starting the unix
        # port and loading the modules is not part of the firmware's budget (a
        # board's boot.py arms the WDT only once it runs).
        self.boot_grace_s = max(watchdog_s, 5.0) if boot_grace_s is None else boot_grace_s
        self.echo = echo
        self.proc = None
        self.resets = {"watchdog": 0, "intended": 0, "crash": 0}
        self.starts = []   # monotonic time of each (re)start
        self.kills = []    # monotonic time of each watchdog kill

    def start(self):
        argv = self.argv
        if self.cause_arg and self.cause:
            argv = argv + [self.cause_arg, self.RESTART_CAUSES[self.cause]]
        self.proc = subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, bufsize=0)
        self.last_feed = time.monotonic()
        self.fed = False
        self.starts.append(self.last_feed)
        self._buf = b""

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def supervise(self, max_restarts=None, until=None):
        """Run until the node exits 0 (or `until()` is true); restart it on
        watchdog expiry, intended reset or crash. Returns the last exit code."""
        restarts = 0
        self.start()
        while True:
            if until is not None and until():
                self.kill()
                return 0
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if chunk:
                    self._lines(chunk)
            code = self.proc.poll()
            limit = self.watchdog_s if self.fed else self.boot_grace_s
            if code is None and time.monotonic() - self.last_feed > limit:
                self.kill()
                self.kills.append(time.monotonic())
                code, cause = -1, "watchdog"
            elif code is None:
                continue
            else:
                rest = self.proc.stdout.read()
                if rest:
                    self._lines(rest)
                if code == 0:
                    return 0
                if code == 2:
                    return 2
                cause = "intended" if code == 3 else "crash"
            self.resets[cause] += 1
            self.cause = cause
            restarts += 1
            if max_restarts is not None and restarts > max_restarts:
                return code
            if self.echo:
                self.echo("node reset (%s); restarting from its store" % cause)
            self.start()

    def _lines(self, chunk):
        self._buf += chunk
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            text = line.decode(errors="replace").strip()
            if text == "WDT":
                self.last_feed = time.monotonic()
                self.fed = True
            elif text and self.echo:
                self.echo(text)


@click.group()
def agent():
    """Run the firmware agent under the MicroPython unix port."""


@agent.command()
@click.option("--agent-id", required=True, help="Agent id, e.g. sat-25544.")
@click.option("--api-url", required=True, help="Console URL, e.g. http://127.0.0.1:8080.")
@click.option("--api-key", required=True, help="The agent's API key.")
@click.option("--uplink-key", default=None, help="HMAC key for signed workloads.")
@click.option("--satellite-id", default=None, help="Catalog id (default: from the agent id).")
@click.option("--state-dir", default=None, help="Node folder (flash). Default var/nodes/AGENT_ID.")
@click.option("--sim", is_flag=True, help="Run in the simulated world on the simulated clock.")
@click.option("--tle", "tle_file", default=None, help="--sim: TLE file of the satellite.")
@click.option("--start", default=None, help="--sim: ISO start time of the world (default: now).")
@click.option("--speed", default=0.0, type=float,
              help="--sim: simulated seconds per wall second (0 = as fast as possible).")
@click.option("--hours", default=48.0, type=float, help="--sim: stop after this much simulated time.")
@click.option("--until-idle", is_flag=True, help="Exit once a job has ended and everything is reported.")
@click.option("--heap", default=None, help="MicroPython heap cap, e.g. 160K.")
@click.option("--mpy", "use_mpy", is_flag=True,
              help="Run the modules compiled to .mpy with mpy-cross (as on a board).")
@click.option("--bus", default=None, help="--sim: JSON of bus overrides (MODELS.md), e.g. '{\"initial_soc\": 0.2}'.")
@click.option("--faults", "faults_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="--sim: a fault script (JSON list, sim/faults.py) for the fault injector.")
@click.option("--seed", default=0, type=int, help="--sim: seed of the fault injector.")
@click.option("--max-restarts", default=None, type=int, help="Give up after this many resets.")
@click.option("--config-json", default=None,
              help="JSON of agent config overrides, e.g. '{\"watchdog_timeout_ms\": 2000}'.")
@click.option("--quiet", is_flag=True)
def run(agent_id, api_url, api_key, uplink_key, satellite_id, state_dir, sim, tle_file, start,
        speed, hours, until_idle, heap, use_mpy, bus, faults_file, seed, max_restarts,
        config_json, quiet):
    """Run the firmware (boot.py) under the unix port, restarting it on reset."""
    state_dir = state_dir or os.path.join(ROOT, "var", "nodes", agent_id)
    os.makedirs(os.path.join(state_dir, "flash"), exist_ok=True)
    extra = {}
    if sim:
        extra["time_sync"] = False
    if config_json:
        try:
            extra.update(json.loads(config_json))
        except (ValueError, TypeError, AttributeError):
            raise click.BadParameter("not a JSON object", param_hint="--config-json")
    if faults_file and not sim:
        raise click.BadParameter("the fault injector runs in the simulated world: add --sim",
                                 param_hint="--faults")
    cfg = node_config(agent_id, api_url, api_key, uplink_key, satellite_id, state_dir, extra)
    cfg_path = os.path.join(state_dir, "umbra.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    mpy_dir = upy.compile_portable(os.path.join(ROOT, "build", "mpy")) if use_mpy else None
    if sim:
        args = _sim_args(cfg_path, state_dir, tle_file, start, speed, hours, until_idle)
        if bus:
            args += ["--bus", bus]
        if faults_file:
            args += ["--faults", os.path.abspath(faults_file), "--seed", str(seed)]
        argv, env = upy.command(SIM_NODE, heap=heap, args=args, mpy_dir=mpy_dir)
    else:
        argv, env = upy.command(BOOT, heap=heap, args=[cfg_path], mpy_dir=mpy_dir)
    echo = None if quiet else click.echo
    node = NodeProcess(argv, env, watchdog_s=cfg.get("watchdog_timeout_ms", 8000) / 1000, echo=echo,
                       cause_arg="--reset-cause" if sim else None)

    def stop(*_):
        node.kill()
        sys.exit(130)

    signal.signal(signal.SIGTERM, stop)
    try:
        code = node.supervise(max_restarts=max_restarts)
    except KeyboardInterrupt:
        node.kill()
        code = 130
    sys.exit(code)


def _sim_args(cfg_path, state_dir, tle_file, start, speed, hours, until_idle):
    args = ["--config", cfg_path, "--world", os.path.join(state_dir, "world"),
            "--speed", str(speed), "--hours", str(hours)]
    if tle_file:
        args += ["--tle", os.path.abspath(tle_file)]
    if start:
        args += ["--start", start]
    if until_idle:
        args.append("--until-idle")
    return args
