"""The virtual board: the MicroPython unix port behind a pty, driven by stock
mpremote exactly as a USB board is."""
import os
import subprocess
import sys
import time

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


def wait_for(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


BUSY_BOOT = """
n = 0
try:
    n = int(open('boots.txt').read())
except OSError:
    pass
n += 1
open('boots.txt', 'w').write(str(n))
import time
while True:
    time.sleep_ms(50)
"""


def test_with_run_boot_a_reset_runs_boot_py_and_ctrl_c_gives_mpremote_the_repl(tmp_path):
    folder = tmp_path / "board"
    folder.mkdir()
    (folder / "boot.py").write_text(BUSY_BOOT)
    with VirtualBoard(folder, run_boot=True) as board:
        boots = folder / "boots.txt"
        assert wait_for(lambda: boots.exists() and boots.read_text() == "1")
        # boot.py never returns: mpremote's Ctrl-C interrupts it, as on a board
        res = mpremote(board.port, "resume", "exec", "print('n is', n)")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "n is 1" in res.stdout   # the REPL that follows boot.py keeps its globals
        res = mpremote(board.port, "resume", "exec", "--no-follow",
                       "import machine; machine.soft_reset()")
        assert res.returncode == 0, res.stdout + res.stderr
        assert wait_for(lambda: boots.read_text() == "2")
        assert board.boots == 2 and board.restarts == 1


def test_with_run_boot_exit_code_3_resets_the_board_and_boot_py_runs_again(tmp_path):
    folder = tmp_path / "board"
    folder.mkdir()
    (folder / "boot.py").write_text(
        "import sys\nn = len(open('boots.txt').read()) if 'boots.txt' in __import__('os').listdir() else 0\n"
        "open('boots.txt', 'a').write('x')\nsys.exit(3 if n < 2 else 0)\n")
    with VirtualBoard(folder, run_boot=True) as board:
        boots = folder / "boots.txt"
        assert wait_for(lambda: boots.exists() and boots.read_text() == "xxx")
        # the third run exits 0: the board stays at its REPL
        res = mpremote(board.port, "resume", "exec", "print(6 * 7)")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "42" in res.stdout
        assert board.boots == 3 and board.restarts == 2


def test_without_run_boot_boot_py_is_not_run(tmp_path):
    folder = tmp_path / "board"
    folder.mkdir()
    (folder / "boot.py").write_text("open('ran.txt', 'w').write('1')\n")
    with VirtualBoard(folder) as board:
        res = mpremote(board.port, "resume", "exec", "import os; print(sorted(os.listdir()))")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "ran.txt" not in res.stdout and board.boots == 0


def test_the_uart_carries_bytes_both_ways_between_board_end_and_ground_end(tmp_path):
    import serialport
    with VirtualBoard(tmp_path / "board", uart=True) as board:
        assert board.uart_port != board.uart_board_port
        ends = [serialport.open_port(p) for p in (board.uart_board_port, board.uart_port)]
        try:
            payload = bytes(range(256)) * 8   # every byte value: the line is raw
            for src, dst in ((0, 1), (1, 0)):
                ends[src].write(payload)
                got = b""
                deadline = time.monotonic() + 5
                while len(got) < len(payload) and time.monotonic() < deadline:
                    got += ends[dst].read(4096)
                    time.sleep(0.01)
                assert got == payload
        finally:
            for end in ends:
                end.close()
        assert board.uart_bytes == {"to_ground": 2048, "to_board": 2048, "dropped": 0}
