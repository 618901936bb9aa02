"""Emulated MCUs. The tier that builds from source (vendor/micropython with
emu/board, tools/emu.py) runs the whole job on QEMU's mps2-an500 (Cortex-M7,
doubles) and mps2-an385 (Cortex-M3, single floats); its set-up installs the
ARM toolchain and QEMU with apt-get when root on Debian, and skips with the
reason otherwise. The older smoke path runs on images the user supplies
(Renode, a stock QEMU image: skipped when absent); its board-side half (RAM
disk, deploy, smoke scenario) runs on the virtual board either way."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from tools import ROOT, emu
from tools.vboard import VirtualBoard

QEMU_FIRMWARE = os.environ.get("UMBRA_QEMU_FIRMWARE")      # build-MPS2_AN385/firmware.elf
RENODE_FIRMWARE = os.environ.get("UMBRA_RENODE_FIRMWARE")  # build-STM32F4DISC/firmware.elf


def run_emu(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "tools.emu"] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_smoke_scenario_passes_on_a_board_with_only_a_ram_disk(tmp_path):
    with VirtualBoard(tmp_path / "board") as board:
        result = emu.smoke(board.port, ramfs_kb=emu.QEMU_RAMFS_KB)
    failed = [c for c in result["checks"] if not c["ok"]]
    assert result["passed"], failed
    checks = {c["check"] for c in result["checks"]}
    assert {"integrity", "import", "scheduler", "agent"} <= checks
    imported = {c["module"] for c in result["checks"] if c["check"] == "import"}
    assert "agent" in imported and "manifest" in imported
    # Everything went to the RAM disk, nothing to the board's folder.
    assert os.listdir(tmp_path / "board" / "lib") == []
    assert not os.path.exists(tmp_path / "board" / "manifest.json")


def test_missing_emulator_or_image_is_reported_with_exit_status_2(tmp_path):
    res = run_emu("--emulator", "qemu", "--firmware", str(tmp_path / "nope.elf"), timeout=60)
    assert res.returncode == 2
    assert "cannot run the qemu tier" in res.stdout
    assert "nope.elf does not exist" in res.stdout


QEMU_MISSING = emu.missing("qemu", QEMU_FIRMWARE)
RENODE_MISSING = emu.missing("renode", RENODE_FIRMWARE) + (
    [] if shutil.which("renode-test") else ["renode-test (Renode's Robot runner) not found"])


@pytest.mark.skipif(bool(QEMU_MISSING), reason="QEMU tier: " + "; ".join(QEMU_MISSING)
                    + " (set UMBRA_QEMU_FIRMWARE to a ports/qemu MPS2_AN385 image built "
                      "with MICROPY_VFS_LFS2=1; see docs/boards.md)")
def test_qemu_mps2_an385_deploys_and_passes_the_smoke_scenario():
    res = run_emu("--emulator", "qemu", "--firmware", QEMU_FIRMWARE)
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["smoke"] == "pass"


@pytest.mark.skipif(bool(RENODE_MISSING), reason="Renode tier: " + "; ".join(RENODE_MISSING)
                    + " (set UMBRA_RENODE_FIRMWARE to a STM32F4DISC image; see docs/boards.md)")
def test_renode_stm32f4_robot_suite_passes(tmp_path):
    res = subprocess.run(["renode-test", os.path.join(ROOT, "emu", "smoke.robot"),
                          "--variable", "FIRMWARE:%s" % os.path.abspath(RENODE_FIRMWARE),
                          "--results-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


# --- the tier that builds from source (make test runs it; docs/boards.md §4) ---------

import calendar  # noqa: E402
import select  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from serial_helpers import start_bridge  # noqa: E402
from tools import deploy  # noqa: E402
from tools.console import auth  # noqa: E402
from tools.scenario import START, Ground, load_job, types  # noqa: E402

AGENT = "sat-mcu"


def quick_standard_pipeline():
    """The standard pipeline (examples/jobs/standard-pipeline.json) with its
    compute time cut 1/600 (at least 2 s a step), to run on the real clock."""
    job = load_job("standard-pipeline.json")
    for step in job["steps"]:
        step["compute_s"] = max(2, step["compute_s"] // 600)
        if "checkpoint_interval_s" in step:
            step["checkpoint_interval_s"] = 2
    return job


@pytest.fixture(scope="session")
def tier():
    """The tier's set-up: the toolchain and QEMU (installed with apt-get when
    root on Debian); skips with the reason otherwise."""
    reasons = emu.setup_tier()
    if reasons:
        pytest.skip("emulated-MCU tier: %s (Debian: apt-get install %s)"
                    % ("; ".join(reasons), " ".join(emu.DEBIAN_PACKAGES)))
    return emu


@pytest.fixture
def ground(tmp_path):
    g = Ground(tmp_path)
    yield g
    g.close()


class ReplReader:
    """What the board prints on its REPL, read in a thread (a UART nobody reads
    fills and stalls the board's prints)."""

    def __init__(self, port):
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.data = b""
        self.stopping = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.stopping:
            if select.select([self.fd], [], [], 0.1)[0]:
                try:
                    self.data += os.read(self.fd, 4096)
                except OSError:
                    return

    def text(self):
        return self.data.decode(errors="replace").replace("\r\n", "\n")

    def close(self):
        self.stopping = True
        self.thread.join(2)
        os.close(self.fd)


def wait_for(condition, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return condition()


def parse_ts(stamp):
    return calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))


def start_board(tier, target, tmp_path, ground, key, config=None):
    elf = tier.build(target, frozen=True)
    board = tier.QemuBoard(target, elf, tmp_path / "board").start()
    cfg = config if config is not None else {
        "agent_id": AGENT, "api_key": key, "satellite_id": "25544", "transport": "serial",
        "serial_port": 1, "storage_root": "/"}
    cfg_path = tmp_path / "sat.json"
    cfg_path.write_text(json.dumps(cfg) if isinstance(cfg, dict) else cfg)
    return board, cfg_path


@pytest.mark.parametrize("target, upset", [("an500", "reset"), ("an385", "power_cut")])
def test_the_frozen_firmware_runs_the_standard_pipeline_over_uart_on_an_emulated_mcu(
        tier, ground, tmp_path, target, upset):
    """boot.py -> the agent on the real clock -> UART1 -> umbra bridge -> the
    real Console, on a Cortex-M7 with doubles (an500) and a Cortex-M3 with
    single-precision floats (an385). Half-way through the job the board is
    reset (machine.reset()) or loses power (QEMU stopped, started again on
    its flash): the job completes, every event once, seq contiguous, and
    every timestamp is the real time to the second (a step's completion minus
    its start is its compute time), the first boot's included."""
    key = auth.create_key(ground.db, "agent", AGENT, rate_limited=False,
                          satellite_id="25544")["key"]
    job = quick_standard_pipeline()
    dep = ground.deploy(job)
    board, cfg_path = start_board(tier, target, tmp_path, ground, key)
    bridge = start_bridge(board.uart_port, ground.url)
    repl = None
    started = time.time()
    try:
        bridge.wait_for("open")
        summary = deploy.deploy_to(board.port, config=str(cfg_path), frozen=True)
        assert summary["reset"] and summary["verified"] == 3       # boot.py, umbra.json, manifest
        repl = ReplReader(board.port)
        # half-way: features (the long step) has started on board
        assert wait_for(lambda: any(e["type"] == "step.started" and e["step_id"] == "features"
                                    for e in ground.events(dep)), 90), repl.text()[-2000:]
        if upset == "reset":
            repl.close()
            repl = None
            deploy.Board(board.port).mpremote("exec", "--no-follow",
                                              "import machine\nmachine.reset()")
            repl = ReplReader(board.port)
        else:
            repl.close()
            repl = None
            bridge.stop()
            board.power_cut()
            time.sleep(1)
            board.start()   # the same flash; new ptys, as a re-enumerated USB port would be
            bridge = start_bridge(board.uart_port, ground.url)
            bridge.wait_for("open")
            repl = ReplReader(board.port)
        done = wait_for(lambda: ground.status(dep) in ("completed", "failed"), 120)
        finished = time.time()
        assert done, repl.text()[-3000:]
        assert ground.status(dep) == "completed", repl.text()[-3000:]
    finally:
        if repl is not None:
            repl.close()
        bridge.stop()
        board.power_cut()
    board_out = repl.text()
    assert "Traceback" not in board_out, board_out[-3000:]

    evs = ground.events(dep)
    kinds = types(evs)
    assert kinds[0] == "job.accepted" and kinds[-1] == "job.completed"
    for once in ("job.accepted", "plan.created", "security.encrypted", "transfer.completed",
                 "job.completed"):
        assert kinds.count(once) == 1, kinds
    onboard = [s["id"] for s in job["steps"] if s["location"] == "onboard"]
    for step in onboard:
        assert [e["type"] for e in evs if e["step_id"] == step].count("step.completed") == 1
    # every event once, seq contiguous, across the upset
    seqs = ground.all_seqs(AGENT)
    assert seqs == list(range(1, len(seqs) + 1))
    booted = [e for e in ground.agent_events(AGENT) if e["type"] == "agent.booted"]
    assert [e["payload"]["boot_count"] for e in booted] == [1, 2]
    assert booted[1]["payload"]["reset_cause"] == ("soft" if upset == "reset" else "power_on")

    # timestamps: the real time, to the second, from the first boot on
    stamps = [parse_ts(e["timestamp"]) for e in booted + evs]
    assert all(started - 1 <= t <= finished + 1 for t in stamps), \
        [e["timestamp"] for e in booted + evs]
    assert parse_ts(evs[-1]["timestamp"]) > parse_ts(evs[0]["timestamp"])
    for step in onboard:
        mine = [e for e in evs if e["step_id"] == step]
        start = [parse_ts(e["timestamp"]) for e in mine if e["type"] == "step.started"]
        end = [parse_ts(e["timestamp"]) for e in mine if e["type"] == "step.completed"][0]
        compute = [s["compute_s"] for s in job["steps"] if s["id"] == step][0]
        if len(start) == 1:   # not the step the upset cut (its start is earlier, its work resumed)
            # never shorter than its compute; longer by the emulator's lag on a loaded
            # host (8 s under 2-core load was seen), never by a missed step
            assert compute - 1 <= end - start[0] <= compute + 10, (step, mine)


def test_a_board_without_a_config_lands_in_safe_mode_says_why_and_does_not_boot_loop(
        tier, ground, tmp_path):
    board, cfg_path = start_board(tier, "an500", tmp_path, ground, None,
                                  config='{"agent_id": "sat-x", "transport": "serial"')
    try:
        summary = deploy.deploy_to(board.port, config=None, frozen=True, reset=False)
        assert summary["verified"] == 2   # boot.py and its manifest; no umbra.json
        deploy.Board(board.port).mpremote("exec", "--no-follow", "import machine\nmachine.reset()")
        repl = ReplReader(board.port)
        try:
            assert wait_for(lambda: repl.text().count('"mode": "safe"') >= 2, 40), repl.text()
            text = repl.text()
        finally:
            repl.close()
    finally:
        board.power_cut()
    assert '"error": "no config umbra.json' in text
    assert '{"mode": "safe", "reason": "no config umbra.json' in text
    assert text.count("MPY: soft reboot") == 0 and text.count("MicroPython v") <= 1, text


def compare_cli(ground, dep):
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "events", dep, "--compare", "--json",
                           "--console", ground.url, "--key", ground.user],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, json.loads(proc.stdout)


def test_the_demo_mission_runs_on_an_emulated_mcu_with_its_world_and_matches_its_plan(
        tier, ground, tmp_path):
    """The demo mission (a pass, the sun, an eclipse, a downlink: 4.6 h
    simulated) on the Cortex-M7: the frozen firmware and its simulated world
    (sim/node.py, frozen into the image) on the board, on the simulated clock,
    its link UART1 -> umbra bridge -> the real Console. The events the
    Console holds are the plan's, event for event and to the second
    (`umbra events --compare`), every event once, seq contiguous."""
    key = auth.create_key(ground.db, "agent", AGENT, rate_limited=False,
                          satellite_id="25544")["key"]
    dep = ground.deploy(load_job("demo-mission.json"))
    elf = tier.build("an500", frozen=True)
    board = tier.QemuBoard("an500", elf, tmp_path / "board").start()
    bridge = start_bridge(board.uart_port, ground.url)
    repl = None
    try:
        bridge.wait_for("open")
        with open(ground.tle_path) as f:
            tle = f.read()
        tier.start_world(board.port, tier.world_config(AGENT, key), tle, START)
        repl = ReplReader(board.port)
        assert wait_for(lambda: tier.node_summary(repl.text()) or "Traceback" in repl.text(),
                        120), repl.text()[-3000:]
        text = repl.text()
    finally:
        if repl is not None:
            repl.close()
        bridge.stop()
        board.power_cut()
    summary = tier.node_summary(text)
    assert summary is not None, text[-3000:]
    assert summary["exit"] == 0 and summary["reboots"] == 0 and summary["outbox"] == 0, summary
    assert ground.status(dep) == "completed"
    kinds = types(ground.events(dep))
    for kind in ("pass_step.merged", "eclipse_step.started", "window_step.completed",
                 "eclipse_step.completed", "transfer.completed", "job.completed"):
        assert kind in kinds, kinds
    rc, doc = compare_cli(ground, dep)
    assert rc == 0 and doc["summary"]["identical"], doc["summary"]
    assert doc["summary"]["missing"] == doc["summary"]["extra"] == 0
    assert all(r["mark"] == "=" for r in doc["rows"])
    seqs = ground.all_seqs(AGENT)
    assert seqs == list(range(1, len(seqs) + 1))
    assert [e["type"] for e in ground.agent_events(AGENT)] == ["agent.booted"]
    assert len(seqs) == len(kinds) + 1
