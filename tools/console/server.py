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
    app = create_app(db_path, **app_kwargs)
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
                              name="umbra-console")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the Console did not start")
        time.sleep(0.01)
    url = "http://%s:%d" % sock.getsockname()[:2]
    return RunningConsole(server, thread, url, app)
