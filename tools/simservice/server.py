"""Serving the Simulation Service: in a thread of this process (tests that
need no restart), or as `umbra sim serve` in a process of its own (tests that
kill it and start it again on its database; the bench)."""
from tools.console.server import ServiceProcess, serve_app_in_thread

from .app import create_app


def serve_in_thread(db_path, host="127.0.0.1", port=0, **app_kwargs):
    """The service on db_path; returns a RunningConsole-like handle (url, app, stop)."""
    running = serve_app_in_thread(create_app(db_path, **app_kwargs), host, port,
                                  name="umbra-simservice")
    running.service = running.app.state.simservice
    return running


class SimServiceProcess(ServiceProcess):
    """`umbra sim serve` in a subprocess on a free loopback port."""

    subcommand = ("sim", "serve")
    name = "the service"
    start_timeout_s = 30.0
