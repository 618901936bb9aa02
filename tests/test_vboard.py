"""The virtual board: the MicroPython unix port behind a pty, driven by stock
mpremote exactly as a USB board is."""
import os
import subprocess
import sys

import pytest

from tools import ROOT
from tools.vboard import VirtualBoard

MPREMOTE = os.path.join(os.path.dirname(sys.executable), "mpremote")


def mpremote(port, *args, timeout=30):
    proc = subprocess.run([MPREMOTE, "connect", port] + list(args), capture_output=True,
                          text=True, timeout=timeout)
    return proc


@pytest.fixture
def board(tmp_path):
    with VirtualBoard(tmp_path / "board") as vb:
        yield vb


def test_vboard_module_prints_a_pty_that_mpremote_drives(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "tools.vboard", "--dir", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/pts/")
        res = mpremote(port, "exec", "import os; print('cwd', os.getcwd())")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "cwd %s" % tmp_path in res.stdout
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_files_copied_to_board_lib_land_in_its_folder_and_import(board, tmp_path):
    src = tmp_path / "greeting.py"
    src.write_text("WORD = 'hello from /lib'\n")
    res = mpremote(board.port, "fs", "cp", str(src), ":lib/",
                   "+", "exec", "import greeting; print(greeting.WORD)")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "hello from /lib" in res.stdout
    assert (tmp_path / "board" / "lib" / "greeting.py").read_text() == src.read_text()


def test_soft_reset_restarts_the_interpreter_like_a_board(board):
    res = mpremote(board.port, "resume", "exec", "remembered = 42")
    assert res.returncode == 0, res.stdout + res.stderr
    # Plain `mpremote connect` soft-resets first: the unix port exits, the
    # board prints "soft reboot" and a fresh interpreter forgets everything.
    res = mpremote(board.port, "exec", "print('remembered' in globals())")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().endswith("False")
    assert board.restarts >= 1


def test_machine_soft_reset_from_code_comes_back_in_the_raw_repl(board):
    res = mpremote(board.port, "resume", "exec", "--no-follow",
                   "import machine; machine.soft_reset()")
    assert res.returncode == 0, res.stdout + res.stderr
    res = mpremote(board.port, "resume", "exec", "print(6 * 7)")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "42" in res.stdout
    assert board.restarts == 1


def test_board_sha256sum_matches_the_host(board, tmp_path):
    src = tmp_path / "blob.bin"
    src.write_bytes(bytes(range(256)) * 9)
    res = mpremote(board.port, "resume", "fs", "cp", str(src), ":blob.bin",
                   "+", "fs", "sha256sum", ":blob.bin")
    assert res.returncode == 0, res.stdout + res.stderr
    import hashlib
    assert hashlib.sha256(src.read_bytes()).hexdigest() in res.stdout
