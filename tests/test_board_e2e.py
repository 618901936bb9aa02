"""End to end on the virtual board: the firmware deployed with the real
`umbra deploy`, started by boot.py as a board starts it, on the real clock,
talking over its serial line through the real `umbra bridge` process to the
real Console (uvicorn on loopback), completes a job.

Nothing is simulated but the hardware: the board is the MicroPython unix port
behind a pty (tools/vboard.py, `run_boot`), its UART two ptys joined by the
virtual board (`uart`), its sensors unknown (no gating)."""
import json
import os
import select
import subprocess
import sys
import threading
import time

import pytest

from serial_helpers import start_bridge
from tools import ROOT
from tools.console import auth
from tools.scenario import Ground, types
from tools.vboard import VirtualBoard

AGENT = "sat-25544"
# Two short onboard steps: modelled compute on the real clock (20 s in all),
# the second one a real handler (deflate) working on the first one's output.
JOB = {"name": "Serial link check",
       "steps": [{"id": "collect", "name": "Collect frames", "location": "onboard",
                  "compute_s": 12, "output_mb": 4, "power_w": 10},
                 {"id": "pack", "name": "Compress", "location": "onboard", "compute_s": 8,
                  "output_mb": 1, "handler": "compress", "depends_on": ["collect"]}]}
COMPLETION_TIMEOUT_S = 75


class BoardConsole:
    """Reads what the board prints on its REPL pty (a USB console nobody
    else reads once the deploy is done), line by line, in a thread."""

    def __init__(self, port):
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.data = b""
        self.stopping = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.stopping:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.data += os.read(self.fd, 4096)
                except OSError:
                    return

    def lines(self):
        text = self.data.decode(errors="replace").replace("\r\n", "\n")
        return [ln for ln in text.split("\n") if ln and ln != "WDT"]

    def close(self):
        self.stopping = True
        self.thread.join(2)
        os.close(self.fd)


@pytest.fixture
def ground(tmp_path):
    g = Ground(tmp_path)
    yield g
    g.close()


def wait_until(condition, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return condition()


def test_the_virtual_board_runs_the_agent_over_serial_through_the_bridge_and_completes_a_job(
        ground, tmp_path):
    started = time.monotonic()
    # A rate-limited key, as a flying agent gets: the agent stays within the
    # Console's limits on its own (poll every 10 s, telemetry every 30 s).
    key = auth.create_key(ground.db, "agent", AGENT, satellite_id="25544")
    dep = ground.deploy(JOB)

    with VirtualBoard(tmp_path / "board", run_boot=True, uart=True) as board:
        config = {"agent_id": AGENT, "api_key": key["key"], "satellite_id": "25544",
                  "transport": "serial", "serial_port": board.uart_board_port,
                  # the board's filesystem root (its working directory); None
                  # would pick "/" on the unix port, the host's root
                  "storage_root": "."}
        cfg_path = tmp_path / "sat.json"
        cfg_path.write_text(json.dumps(config))
        bridge = start_bridge(board.uart_port, ground.url)
        console = None
        try:
            bridge.wait_for("open")
            deploy = subprocess.run([sys.executable, "-m", "tools.cli", "deploy", "--port", board.port,
                                     "--config", str(cfg_path)],
                                    cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert deploy.returncode == 0, deploy.stdout + deploy.stderr
            assert ", reset in " in deploy.stdout and " 0 removed" in deploy.stdout
            console = BoardConsole(board.port)
            deployed_s = time.monotonic() - started

            # The deploy's reset runs boot.py; the agent registers, polls, runs.
            done = wait_until(lambda: ground.status(dep) in ("completed", "failed"),
                              COMPLETION_TIMEOUT_S)
            job_s = time.monotonic() - started - deployed_s
            board_lines = console.lines()
            assert done, "no end of job within %d s; board said:\n%s" % (
                COMPLETION_TIMEOUT_S, "\n".join(board_lines[-40:]))
            assert ground.status(dep) == "completed"
        finally:
            if console is not None:
                console.close()
            code, out, counts = bridge.stop()
        assert code == 0, out
        # one power-on plus the deploy's reset; boot.py ran once, after the deploy
        assert board.boots == 1 and board.restarts == 1
        uart = dict(board.uart_bytes)

    # The board booted once and said so on its console; nothing crashed.
    booted = [json.loads(ln) for ln in board_lines if ln.startswith('{"') and "booted" in ln]
    assert len(booted) == 1 and booted[0]["booted"] == AGENT and booted[0]["boot_count"] == 1
    assert not [ln for ln in board_lines if "Traceback" in ln or "Error" in ln], board_lines

    # The Console holds every event exactly once, seq contiguous from 1.
    evs = ground.events(dep)
    kinds = types(evs)
    assert kinds[0] == "job.accepted" and kinds[-1] == "job.completed"
    for once in ("job.accepted", "plan.created", "transfer.completed", "job.completed"):
        assert kinds.count(once) == 1, kinds
    for step in ("collect", "pack"):
        mine = [e for e in evs if e["step_id"] == step]
        assert types(mine) == ["placement.decided", "step.started", "step.progress",
                               "step.progress", "step.progress", "step.completed"]
        assert [e["payload"]["percent"] for e in mine if e["type"] == "step.progress"] == [25, 50, 75]
    agent_level = ground.agent_events(AGENT)
    assert types(agent_level) == ["agent.booted"]
    assert agent_level[0]["payload"]["boot_count"] == 1
    rows = ground.db.query("SELECT seq FROM events WHERE origin = ? ORDER BY seq", (AGENT,))
    seqs = [r["seq"] for r in rows]
    assert seqs == list(range(1, len(evs) + 2))      # the deployment's events + agent.booted
    assert evs[-1]["seq"] == seqs[-1]

    # The bridge: one session, every frame answered, each request relayed at
    # most once (a retry the agent sent is answered from the cache), nothing
    # lost, refused or oversized on the line.
    assert counts["hellos"] == 1 and counts["sessions"] == 1 and counts["no_session"] == 0, counts
    for zero in ("bad_frames", "bad_requests", "http_errors", "oversize", "reconnects"):
        assert counts[zero] == 0, counts
    assert counts["frames_out"] == counts["frames_in"], counts
    assert counts["relayed"] + counts["replayed"] + counts["hellos"] == counts["frames_in"], counts
    # register + the first poll + one event batch at least
    assert counts["relayed"] >= 3
    assert uart["to_ground"] > 0 and uart["to_board"] > 0 and uart["dropped"] == 0

    total_s = time.monotonic() - started
    print("\nboard e2e: deploy %.1f s, job %.1f s, total %.1f s; %d events (seq 1..%d); bridge %s; "
          "uart %s" % (deployed_s, job_s, total_s, len(seqs), seqs[-1],
                       " ".join("%s=%d" % kv for kv in sorted(counts.items()) if kv[1]), uart))
