"""Serving the Simulation Service: in a thread of this process (tests that
need no restart), or as `umbra sim serve` in a process of its own (tests that
kill it and start it again on its database; the bench)."""
import os
import signal
import subprocess
import sys
import time

from tools.console.server import free_port, serve_app_in_thread

from .app import create_app


def serve_in_thread(db_path, host="127.0.0.1", port=0, **app_kwargs):
    """The service on db_path; returns a RunningConsole-like handle (url, app, stop)."""
    running = serve_app_in_thread(create_app(db_path, **app_kwargs), host, port,
                                  name="umbra-simservice")
    running.service = running.app.state.simservice
    return running


class SimServiceProcess:
    """`umbra sim serve` in a subprocess on a free loopback port."""

    def __init__(self, db_path, port=None, extra_args=()):
        from tools import ROOT
        self.db_path = db_path
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "sim", "serve", "--db", db_path,
             "--host", "127.0.0.1", "--port", str(self.port)] + list(extra_args),
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()

    def _wait_ready(self, timeout=30.0):
        import httpx
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the service exited: %s" % self.proc.stderr.read().decode())
            try:
                if httpx.get(self.url + "/openapi.json", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("the service did not start within %s s" % timeout)

    def kill(self):
        """SIGKILL: no shutdown, no goodbye (what a crash looks like)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
