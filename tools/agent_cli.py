"""`umbra agent run`: the firmware under the MicroPython unix port.

Real time (default): runs boot.py under the unix port and plays the hardware
watchdog: the node prints a heartbeat line at every feed; when feeds stop for
longer than the watchdog timeout, or the node asks for a reset (exit 3) or
dies, the node is killed and started again from its store — a reset.

Simulated time (--sim): runs the node and its simulated world in one
MicroPython process on the simulated clock (sim/node.py), talking to a real
Console over HTTP. The world keeps its physics in its own store, so killing
the process resets the spacecraft's computer, not its orbit or battery.

Ending: the run ends at --hours / --until (exit 0, one summary line), at a
start-up error (exit 2, one line saying why, no restart), after
--max-restarts resets in a row (exit 3), or at SIGTERM / SIGINT (the node
killed and reaped within a second; exit 143 / 130). EXIT_* below.
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


# `umbra agent run` exit codes (README "The agent", docs/sim.md "Ending a run")
EXIT_DONE = 0        # the run ended: --hours / --until reached, --until-idle reached, or the node stopped
EXIT_START = 2       # start-up error: bad option, unreadable or invalid TLE / config, heap too small
EXIT_GAVE_UP = 3     # the node reset --max-restarts times in a row: a reset loop
EXIT_NOT_IDLE = 4    # --until-idle: the time ran out before the job ended and everything was reported
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

MAX_RESTARTS = 10    # default --max-restarts: resets in a row before giving up
HEALTHY_S = 600.0    # a node that ran this long (wall seconds) since its start ends a row of resets


class NodeProcess:
    """One MicroPython node process, restarted like a board on reset.

    supervise() returns the node's last exit code and leaves in `outcome`:
      "done"     the node exited with one of `done_codes` (default: 0, and for
                 sim/node.py -- a node given `cause_arg` -- also 4, its end time)
      "start"    the first start failed before its first watchdog feed, or the
                 node exited 2 (bad arguments): `why` says why
      "gave_up"  `max_restarts` resets in a row: `why` says why
      "signal"   stop() was called (SIGTERM / SIGINT): `stopped` is the signal
    """

    RESTART_CAUSES = {"watchdog": "watchdog", "intended": "soft", "crash": "unknown"}

    def __init__(self, argv, env, watchdog_s, echo=None, boot_grace_s=None, cause_arg=None,
                 done_codes=None, healthy_s=HEALTHY_S, cwd=None):
        self.argv = argv
        self.cwd = cwd  # the folder it runs in (None: ours); tools.scenario.Node.cwd
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
        if done_codes is None:
            done_codes = (0, 4) if cause_arg else (0,)
        self.done_codes = tuple(done_codes)
        self.healthy_s = healthy_s
        self.proc = None
        self.resets = {"watchdog": 0, "intended": 0, "crash": 0}
        self.starts = []   # monotonic time of each (re)start
        self.kills = []    # monotonic time of each watchdog kill
        self.stopped = None  # the signal number once stop() was called
        self._tail = []      # the last lines the node printed (for a start-up error)
        self.outcome = None
        self.why = None
        self.summary = None  # the last exit summary line the node printed

    def start(self):
        argv = self.argv
        if self.cause_arg and self.cause:
            argv = argv + [self.cause_arg, self.RESTART_CAUSES[self.cause]]
        self.proc = subprocess.Popen(argv, env=self.env, cwd=self.cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, bufsize=0)
        self.last_feed = time.monotonic()
        self.fed = False
        self.starts.append(self.last_feed)
        self._buf = b""
        self._tail = []

    def stop(self, signum):
        """From a signal handler: kill the node now, end supervise() at its
        next turn (within 0.2 s). Takes no lock and waits for nothing."""
        self.stopped = signum
        proc = self.proc
        if proc is not None and proc.returncode is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except OSError:
                pass

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()  # reaped: no zombie left behind

    def supervise(self, max_restarts=MAX_RESTARTS, until=None):
        """Run until the node exits with a done code (or `until()` is true);
        restart it on watchdog expiry, intended reset or crash, at most
        `max_restarts` times in a row (None: without limit)."""
        in_a_row = 0
        self.start()
        while True:
            if self.stopped is not None:
                self.kill()
                return self._end("signal", None, self.proc.returncode)
            if until is not None and until():
                self.kill()
                return self._end("done", None, 0)
            try:
                ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            except (OSError, ValueError):
                ready = []
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if chunk:
                    self._lines(chunk)
            code = self.proc.poll()
            limit = self.watchdog_s if self.fed else self.boot_grace_s
            if self.stopped is not None:
                continue
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
                if self._buf:
                    self._lines(b"\n")
                if code in self.done_codes:
                    return self._end("done", None, code)
                if code == 2 or (len(self.starts) == 1 and not self.fed and code != 3):
                    return self._end("start", self._why(code), code)
                cause = "intended" if code == 3 else "crash"
            self.resets[cause] += 1
            self.cause = cause
            ran = time.monotonic() - self.starts[-1]
            in_a_row = 1 if ran >= self.healthy_s else in_a_row + 1
            if max_restarts is not None and in_a_row > max_restarts:
                return self._end("gave_up", "the node reset %d times in a row (last: %s, %s); giving up"
                                 % (in_a_row, cause, self._why(code)), code)
            if self.echo:
                self.echo("node reset (%s); restarting from its store" % cause)
            self.start()

    def _end(self, outcome, why, code):
        self.outcome, self.why = outcome, why
        return code

    def _why(self, code):
        # the node's own {"error": ...} line, else the last line it printed
        for text in reversed(self._tail):
            if text.startswith("{") and '"error"' in text:
                try:
                    return str(json.loads(text)["error"])
                except (ValueError, KeyError, TypeError):
                    pass
        last = self._tail[-1] if self._tail else "no output"
        return "exit code %s: %s" % (code, last)

    def _lines(self, chunk):
        self._buf += chunk
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            text = line.decode(errors="replace").strip()
            if text == "WDT":
                self.last_feed = time.monotonic()
                self.fed = True
            elif text:
                if text.startswith("{") and '"node"' in text and '"exit"' in text:
                    self.summary = text  # the node's exit summary
                self._tail = (self._tail + [text])[-20:]
                if self.echo:
                    self.echo(text)


def supervise_with_signals(node, max_restarts=MAX_RESTARTS, done=None):
    """supervise() with SIGTERM / SIGINT ending it (the node killed and reaped
    within a second, whatever the supervisor was doing); returns the exit
    code of `umbra agent run` and a message for stderr (or None)."""
    def handler(signum, _frame):
        node.stop(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = node.supervise(max_restarts=max_restarts)
    finally:
        node.kill()
        for s, h in old.items():
            signal.signal(s, h)
    if node.outcome == "signal":
        return (EXIT_SIGINT if node.stopped == signal.SIGINT else EXIT_SIGTERM), None
    if node.outcome == "start":
        return EXIT_START, "the node did not start: %s" % node.why
    if node.outcome == "gave_up":
        return EXIT_GAVE_UP, node.why
    return (done(code) if done else code), None


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
@click.option("--tle", "tle_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="--sim: TLE file of the satellite.")
@click.option("--start", default=None, help="--sim: ISO start time of the world (default: now).")
@click.option("--speed", default=0.0, type=float,
              help="--sim: simulated seconds per wall second (0 = as fast as possible).")
@click.option("--hours", default=48.0, type=float,
              help="--sim: the world ends this long after its start (set on the first start); "
                   "the run ends there, exit 0.")
@click.option("--until", "until_iso", default=None,
              help="--sim: end this run at this ISO time (the world carries on at the next run).")
@click.option("--until-idle", is_flag=True, help="Exit once a job has ended and everything is reported.")
@click.option("--heap", default=None, help="MicroPython heap cap, e.g. 160K.")
@click.option("--mpy", "use_mpy", is_flag=True,
              help="Run the modules compiled to .mpy with mpy-cross (as on a board).")
@click.option("--bus", default=None, help="--sim: JSON of bus overrides (MODELS.md), e.g. '{\"initial_soc\": 0.2}'.")
@click.option("--faults", "faults_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="--sim: a fault script (JSON list, sim/faults.py) for the fault injector.")
@click.option("--seed", default=0, type=int, help="--sim: seed of the fault injector.")
@click.option("--max-restarts", default=MAX_RESTARTS, type=click.IntRange(0, None), show_default=True,
              help="Give up (exit 3) after this many resets in a row (a reset after %d min of running "
                   "ends a row)." % (HEALTHY_S // 60))
@click.option("--config-json", default=None,
              help="JSON of agent config overrides, e.g. '{\"watchdog_timeout_ms\": 2000}'.")
@click.option("--quiet", is_flag=True, help="Print only the run's summary line (and errors).")
def run(agent_id, api_url, api_key, uplink_key, satellite_id, state_dir, sim, tle_file, start,
        speed, hours, until_iso, until_idle, heap, use_mpy, bus, faults_file, seed, max_restarts,
        config_json, quiet):
    """Run the firmware (boot.py) under the unix port, restarting it on reset.

    Exit codes: 0 the run ended (--hours / --until reached, --until-idle
    reached, the node stopped); 2 start-up error (bad option, unreadable or
    invalid TLE / config, heap too small); 3 gave up after --max-restarts
    resets in a row; 4 --until-idle: the time ran out first; 130 SIGINT,
    143 SIGTERM."""
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
        if until_iso:
            args += ["--until", until_iso]
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

    def done(code):
        # sim/node.py exits 4 at its end time: the end of the run, unless
        # --until-idle asked for the job to end first
        if code == 4 and sim:
            return EXIT_NOT_IDLE if until_idle else EXIT_DONE
        return EXIT_DONE if code == 0 else code

    code, why = supervise_with_signals(node, max_restarts=max_restarts, done=done)
    if quiet and node.summary and node.outcome == "done":
        click.echo(node.summary)  # --quiet: the run's one summary, nothing else
    if why:
        click.echo("Error: %s" % why, err=True)
    elif code == EXIT_NOT_IDLE:
        click.echo("Error: the time ran out before the job ended (--until-idle)", err=True)
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
