"""Run the Console as a real uvicorn server in a background thread, on a free
loopback port (tests, benchmarks, demos)."""
import socket
import threading
import time

import uvicorn

from .app import create_app


class RunningConsole:
    def __init__(self, server, thread, url, app):
        self.server = server
        self.thread = thread
        self.url = url
        self.app = app

    @property
    def db(self):
        return self.app.state.console.db

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def serve_in_thread(db_path, host="127.0.0.1", port=0, **app_kwargs):
    """Start the Console; returns a RunningConsole once it accepts connections."""
    return serve_app_in_thread(create_app(db_path, **app_kwargs), host, port)


def serve_app_in_thread(app, host="127.0.0.1", port=0, name="umbra-console"):
    """Serve an ASGI app with uvicorn in a daemon thread (the Console, the
    Simulation Service); returns a RunningConsole once it accepts connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it; without it every reply waits ~40 ms
    # for a delayed ACK (uvicorn sets it only on sockets it creates itself)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=2, backlog=512)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name=name)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("%s did not start" % name)
        time.sleep(0.01)
    url = "http://%s:%d" % sock.getsockname()[:2]
    return RunningConsole(server, thread, url, app)


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServiceProcess:
    """One of our HTTP services (`umbra <subcommand> --db PATH --host
    127.0.0.1 --port P`) in a subprocess of its own interpreter (no GIL shared
    with the clients), on a free loopback port; ready once /openapi.json answers."""

    subcommand = ("console",)
    name = "the Console"
    start_timeout_s = 20.0

    def __init__(self, db_path, port=None, extra_args=()):
        import subprocess
        import sys

        from tools import ROOT
        self.db_path = db_path
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.cli"] + list(self.subcommand) +
            ["--db", db_path, "--host", "127.0.0.1", "--port", str(self.port)] + list(extra_args),
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready(self.start_timeout_s)

    def _wait_ready(self, timeout):
        import httpx
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited: %s" % (self.name, self.proc.stderr.read().decode()))
            try:
                if httpx.get(self.url + "/openapi.json", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("%s did not start within %s s" % (self.name, timeout))

    def kill(self):
        """SIGKILL: no shutdown, no goodbye (what a crash looks like)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class ConsoleProcess(ServiceProcess):
    """`umbra console` in a subprocess, on a free loopback port."""
