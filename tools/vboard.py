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

The virtual board does not run boot.py on restart: it is a board whose
firmware has been copied but not started. `umbra agent run` runs the agent
under the unix port.

    python -m tools.vboard --dir DIR [--heap 256K]   # prints the pty path
"""
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
import tty

from tools import upy

RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
RAW_BANNER = b"raw REPL; CTRL-B to exit"
FRIENDLY_PROMPT = b">>> "
SOFT_REBOOT = b"MPY: soft reboot\r\n"
START_TIMEOUT_S = 10.0
HOST_WRITE_TIMEOUT_S = 2.0


class VirtualBoard:
    """One virtual board. `start()` returns the pty path for mpremote."""

    def __init__(self, directory, heap=None, micropython=None):
        self.directory = os.path.abspath(directory)
        self.heap = heap
        self.exe = micropython or upy.micropython_exe()
        self.port = None
        self.restarts = 0          # soft resets seen (child processes after the first)
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
        self._spawn()
        self._thread = threading.Thread(target=self._relay, name="vboard", daemon=True)
        self._thread.start()
        return self.port

    def stop(self):
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._kill_child()
        for fd in (self._host_master, self._host_slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._host_master = self._host_slave = None

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
        if not was_raw:
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
        self._tail = (self._tail + chunk)[-64:]
        raw_at = self._tail.rfind(RAW_BANNER)
        friendly_at = self._tail.rfind(FRIENDLY_PROMPT)
        if raw_at >= 0 or friendly_at >= 0:
            self._raw = raw_at > friendly_at

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
                    continue
            if self._child is not None and self._child.poll() is not None:
                self._drain_child()
                if not self._stopping.is_set():
                    self._restart()
                    self._tail = b""

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
    args = parser.parse_args(argv)
    board = VirtualBoard(args.dir, heap=args.heap)
    port = board.start()
    print(port, flush=True)
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
