"""A virtual MicroPython board: the unix port behind a pseudo-terminal.

Stock `mpremote connect /dev/pts/N …` drives it as it drives a USB board:

- the board's filesystem is a host directory (the child runs with that
  directory as its working directory, so `:lib/x.mpy` lands in `DIR/lib/x.mpy`)
  and the module path is `'' .frozen DIR/lib`, as `/lib` is on a board;
- the unix port has a raw REPL only when its stdin is a tty (FACTS.md), so the
  child gets a raw pty of its own and this process relays bytes between it
  and the pty mpremote opens;
- a soft reset (Ctrl-D in the raw REPL, `machine.soft_reset()`) ends the unix
  port process: the board prints `MPY: soft reboot` and starts a fresh one,
  back in the raw REPL if it was in it (as a board's REPL mode survives a
  soft reset).

By default the virtual board does not run boot.py: it is a board whose
firmware has been copied but not started. With `run_boot` (`--boot`) it does
what a board does at every power-on and reset: run `DIR/boot.py` (when there
is one), then the REPL. Ctrl-C from the host interrupts a running boot.py
(SIGINT to the unix port, as a board's USB/UART interrupt character raises
KeyboardInterrupt), so `mpremote connect PORT resume …` still gets a REPL;
boot.py ending with exit code 3 (the agent asked for machine.reset, which the
unix port lacks) resets the board, which runs boot.py again.

With `uart` (`--uart`) the board also has a serial line, as a UART wired to a
radio or a USB-serial adapter: two pseudo-terminals joined by this process,
`uart_board_port` for the board (`serial_port` in the agent config) and
`uart_port` for the ground end (`umbra bridge --port`).

    python -m tools.vboard --dir DIR [--heap 256K] [--boot] [--uart]   # prints the pty paths
"""
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import tempfile
import time
import tty

from tools import upy

RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
RAW_BANNER = b"raw REPL; CTRL-B to exit"
FRIENDLY_PROMPT = b">>> "
SOFT_REBOOT = b"MPY: soft reboot\r\n"
START_TIMEOUT_S = 10.0
HOST_WRITE_TIMEOUT_S = 2.0
BOOT_FILE = "boot.py"
EXIT_RESET = 3             # boot.py: the agent asked for a reset
RESET_MARKER = b"vboard: reset requested by boot.py"
# Runs DIR/boot.py as the board's first file, in __main__ (the REPL that follows
# sees its globals, as on a board), with '' first on the module path; argv is
# [this file], so boot.py reads umbra.json.
LAUNCHER = """import sys
sys.path[0] = ''
try:
    exec(open('%s').read(), globals())
except SystemExit as exc:
    if exc.args and exc.args[0] == %d:
        print('%s')
""" % (BOOT_FILE, EXIT_RESET, RESET_MARKER.decode())
UART_CHUNK = 4096


class VirtualBoard:
    """One virtual board. `start()` returns the pty path for mpremote."""

    def __init__(self, directory, heap=None, micropython=None, run_boot=False, uart=False):
        self.directory = os.path.abspath(directory)
        self.heap = heap
        self.exe = micropython or upy.micropython_exe()
        self.run_boot = run_boot
        self.uart = uart
        self.port = None
        self.uart_port = None        # ground end of the serial line (the bridge opens it)
        self.uart_board_port = None  # board end (the agent's serial_port)
        self.uart_bytes = {"to_ground": 0, "to_board": 0, "dropped": 0}
        self.restarts = 0          # soft resets seen (child processes after the first)
        self.boots = 0             # times boot.py was started
        self._launcher = None
        self._in_boot = False      # boot.py runs: Ctrl-C from the host interrupts it
        self._reset_asked = False  # boot.py ended asking for a reset
        self._uart_fds = []
        self._uart_thread = None
        self._host_master = None
        self._host_slave = None
        self._child = None
        self._child_master = None
        self._raw = False
        self._tail = b""
        self._stopping = threading.Event()
        self._thread = None

    # --- lifecycle ----------------------------------------------------------

    def start(self):
        os.makedirs(os.path.join(self.directory, "lib"), exist_ok=True)
        self._host_master, self._host_slave = pty.openpty()
        tty.setraw(self._host_slave)  # mpremote needs a raw line: no ONLCR, no echo
        # Keeping our own slave fd open keeps the pty alive between mpremote runs.
        self.port = os.ttyname(self._host_slave)
        os.set_blocking(self._host_master, False)
        if self.run_boot:
            fd, self._launcher = tempfile.mkstemp(prefix="vboard-boot-", suffix=".py")
            with os.fdopen(fd, "w") as f:
                f.write(LAUNCHER)
        if self.uart:
            self._open_uart()
        self._spawn()
        self._thread = threading.Thread(target=self._relay, name="vboard", daemon=True)
        self._thread.start()
        return self.port

    def stop(self):
        self._stopping.set()
        for thread in (self._thread, self._uart_thread):
            if thread is not None:
                thread.join(timeout=2)
        self._kill_child()
        for fd in [self._host_master, self._host_slave] + self._uart_fds:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._host_master = self._host_slave = None
        self._uart_fds = []
        if self._launcher is not None:
            try:
                os.unlink(self._launcher)
            except OSError:
                pass
            self._launcher = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # --- the unix port child --------------------------------------------------

    def _spawn(self):
        master, slave = pty.openpty()
        tty.setraw(slave)
        argv = [self.exe]
        if self.heap:
            argv += ["-X", "heapsize=%s" % self.heap]
        boot = self.run_boot and os.path.isfile(os.path.join(self.directory, BOOT_FILE))
        if boot:
            argv += ["-i", self._launcher]   # boot.py, then the REPL
            self.boots += 1
            self._raw = False
        self._in_boot = boot
        env = dict(os.environ)
        env["MICROPYPATH"] = ".frozen:" + os.path.join(self.directory, "lib")
        self._child = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                       cwd=self.directory, env=env, close_fds=True,
                                       start_new_session=True)
        os.close(slave)  # so that reads on master fail once the child is gone
        self._child_master = master

    def _kill_child(self):
        child, self._child = self._child, None
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        if self._child_master is not None:
            try:
                os.close(self._child_master)
            except OSError:
                pass
            self._child_master = None

    def _restart(self):
        """The child exited (soft reset): announce it and start a fresh one."""
        was_raw = self._raw
        self._kill_child()
        self.restarts += 1
        self._write_host(SOFT_REBOOT)
        self._spawn()
        if not was_raw or self._in_boot:
            # A board running boot.py reaches its REPL only when boot.py ends.
            return
        # Back into the raw REPL before the host sees anything, like a board.
        seen = self._read_child_until(FRIENDLY_PROMPT)
        os.write(self._child_master, b"\r\x01")
        seen = self._read_child_until(RAW_PROMPT)
        if seen is not None:
            self._raw = True
            self._write_host(RAW_PROMPT)

    def _read_child_until(self, marker):
        data = b""
        deadline = time.monotonic() + START_TIMEOUT_S
        while marker not in data and time.monotonic() < deadline:
            ready, _, _ = select.select([self._child_master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(self._child_master, 4096)
                except OSError:
                    return None
                if not chunk:
                    return None
                data += chunk
        return data if marker in data else None

    # --- the relay --------------------------------------------------------------

    def _write_host(self, data):
        # Like a USB serial port nobody reads: output waits a little, then is
        # dropped, rather than stalling the board.
        while data:
            _, writable, _ = select.select([], [self._host_master], [], HOST_WRITE_TIMEOUT_S)
            if not writable:
                return
            try:
                n = os.write(self._host_master, data)
            except BlockingIOError:
                continue
            data = data[n:]

    def _track_mode(self, chunk):
        seen = self._tail + chunk
        if RESET_MARKER in seen:
            self._reset_asked = True
            seen = seen.replace(RESET_MARKER, b"")
        self._tail = seen[-64:]
        raw_at = self._tail.rfind(RAW_BANNER)
        friendly_at = self._tail.rfind(FRIENDLY_PROMPT)
        if raw_at >= 0 or friendly_at >= 0:
            self._raw = raw_at > friendly_at
            self._in_boot = False  # a prompt: boot.py has ended

    def _interrupt(self, data):
        """Host bytes while boot.py runs: the interrupt character raises
        KeyboardInterrupt in it (and is consumed, as on a board)."""
        if not self._in_boot or b"\x03" not in data or self._child is None:
            return data
        self._in_boot = False  # once: the REPL that follows reads the rest
        try:
            self._child.send_signal(signal.SIGINT)
        except OSError:
            pass
        return data.replace(b"\x03", b"")

    def _cooked(self, chunk, previous):
        # Boards print \r\n; the unix port prints bare \n. Outside the raw REPL
        # (whose protocol bytes must pass untouched) make it look like a board.
        if self._raw or b"\n" not in chunk:
            return chunk
        out = bytearray()
        for byte in chunk:
            if byte == 0x0A and previous != 0x0D:
                out.append(0x0D)
            out.append(byte)
            previous = byte
        return bytes(out)

    def _relay(self):
        last_byte = 0
        while not self._stopping.is_set():
            fds = [self._host_master]
            if self._child_master is not None:
                fds.append(self._child_master)
            try:
                ready, _, _ = select.select(fds, [], [], 0.05)
            except (OSError, ValueError):
                return
            if self._host_master in ready:
                try:
                    data = os.read(self._host_master, 4096)
                except OSError:
                    data = b""
                data = self._interrupt(data)
                if data and self._child_master is not None:
                    try:
                        os.write(self._child_master, data)
                    except OSError:
                        pass  # the child is going; its restart follows
            if self._child_master is not None and self._child_master in ready:
                try:
                    chunk = os.read(self._child_master, 4096)
                except OSError:
                    chunk = b""
                if chunk:
                    cooked = self._cooked(chunk, last_byte)
                    last_byte = chunk[-1]
                    self._track_mode(chunk)
                    self._write_host(cooked)
                    if self._reset_asked and self._child is not None:
                        self._reset_asked = False
                        self._child.kill()  # machine.reset(): the board starts again
                        self._child.wait()
                    continue
            if self._child is not None and self._child.poll() is not None:
                self._drain_child()
                if not self._stopping.is_set():
                    self._restart()
                    self._tail = b""

    # --- the serial line ------------------------------------------------------

    def _open_uart(self):
        board_master, board_slave = pty.openpty()
        ground_master, ground_slave = pty.openpty()
        for fd in (board_master, board_slave, ground_master, ground_slave):
            tty.setraw(fd)
        for fd in (board_master, ground_master):
            os.set_blocking(fd, False)
        # our own slave fds keep both lines up while nobody has them open
        self._uart_fds = [board_master, board_slave, ground_master, ground_slave]
        self.uart_board_port = os.ttyname(board_slave)
        self.uart_port = os.ttyname(ground_slave)
        self._uart_thread = threading.Thread(target=self._relay_uart, args=(board_master, ground_master),
                                             name="vboard-uart", daemon=True)
        self._uart_thread.start()

    def _relay_uart(self, board, ground):
        """Bytes both ways, as a wire would carry them. A side that does not
        read loses what does not fit in its buffer (a UART has no flow control
        here), rather than stalling the other direction."""
        route = {board: (ground, "to_ground"), ground: (board, "to_board")}
        while not self._stopping.is_set():
            try:
                ready, _, _ = select.select([board, ground], [], [], 0.05)
            except (OSError, ValueError):
                return
            for fd in ready:
                try:
                    data = os.read(fd, UART_CHUNK)
                except OSError:
                    continue
                dst, name = route[fd]
                self.uart_bytes[name] += len(data)
                try:
                    n = os.write(dst, data)
                except (BlockingIOError, OSError):
                    n = 0
                self.uart_bytes["dropped"] += len(data) - n

    def _drain_child(self):
        while self._child_master is not None:
            ready, _, _ = select.select([self._child_master], [], [], 0)
            if not ready:
                return
            try:
                chunk = os.read(self._child_master, 4096)
            except OSError:
                return
            if not chunk:
                return
            self._track_mode(chunk)
            self._write_host(chunk)


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tools.vboard",
                                     description="A virtual MicroPython board on a pty.")
    parser.add_argument("--dir", required=True, help="the board's filesystem (a host folder)")
    parser.add_argument("--heap", default=None, help="unix port heap size, e.g. 256K")
    parser.add_argument("--boot", action="store_true",
                        help="run DIR/boot.py at power-on and every reset, as a board does")
    parser.add_argument("--uart", action="store_true",
                        help="give the board a serial line (two ptys: board end, ground end)")
    args = parser.parse_args(argv)
    board = VirtualBoard(args.dir, heap=args.heap, run_boot=args.boot, uart=args.uart)
    port = board.start()
    print(port, flush=True)
    if board.uart:
        print("uart board end %s (the agent's serial_port)" % board.uart_board_port)
        print("uart ground end %s (umbra bridge --port)" % board.uart_port, flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    finally:
        board.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
