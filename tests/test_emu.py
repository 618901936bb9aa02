"""Emulated MCUs (Renode, QEMU). The emulators and the MicroPython firmware
images are not on this machine: those tests skip and say what is missing.
The board-side half (RAM disk, deploy, smoke scenario) runs here on the
virtual board, so it is tested either way."""
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
        result = emu.smoke(board.port, ramfs_kb=128)
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
