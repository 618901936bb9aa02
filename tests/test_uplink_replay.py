"""A signed workload is bound to the poll it answers (PROTOCOL.md, signed
workloads; docs/console.md, "Security model"): an attacker on the link who
recorded a signed reply and serves it again -- to an agent whose flash, and
with it its memory of nonces, was wiped -- does not make the agent run a
finished job again. The firmware runs under the real MicroPython unix port
in its simulated world; the Console is real; the attacker is a real HTTP
proxy on loopback between them."""
import http.server
import shutil
import threading

import httpx
import pytest

from tools.scenario import Ground, Node

JOB = {"name": "signed", "steps": [{"id": "a", "compute_s": 60, "output_mb": 1}]}


class ReplayingProxy:
    """Relays the agent's requests to the Console and records the first signed
    workload it sees; while `replay` > 0, answers a poll with it instead (and
    counts `replay` down)."""

    def __init__(self, console_url):
        self.recorded = None
        self.replay = 0
        self.replayed = 0
        proxy = self
        upstream = httpx.Client(base_url=console_url, timeout=20)
        self.upstream = upstream

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _relay(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                is_poll = self.path.startswith("/api/agent/workloads")
                if is_poll and proxy.replay > 0 and proxy.recorded is not None:
                    proxy.replay -= 1
                    proxy.replayed += 1
                    return self._answer(200, proxy.recorded)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                r = upstream.request(self.command, self.path, content=body, headers=headers)
                if is_poll and r.status_code == 200 and b'"auth"' in r.content \
                        and proxy.recorded is None:
                    proxy.recorded = r.content
                return self._answer(r.status_code, r.content)

            def _answer(self, status, content):
                self.send_response(status)
                if status != 204:
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if status != 204:
                    self.wfile.write(content)

            do_GET = do_POST = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.upstream.close()


@pytest.fixture
def ground(tmp_path):
    g = Ground(tmp_path)
    yield g
    g.close()


def test_a_recorded_signed_workload_replayed_to_a_wiped_agent_does_not_run_again(ground,
                                                                                 tmp_path):
    dep = ground.deploy(JOB)
    proxy = ReplayingProxy(ground.url)
    try:
        node = Node(ground, tmp_path, uplink=True, cfg={"api_url": proxy.url})
        code, _, out = node.run()
        assert code == 0, out
        assert ground.status(dep) == "completed"
        assert proxy.recorded is not None
        # the agent's flash is wiped (its nonces with it); the attacker serves
        # the recorded reply, well inside its signature's replay window
        shutil.rmtree(str(node.dir / "flash"))
        (node.dir / "flash").mkdir()
        proxy.replay = 3
        code, _, out = node.run()
        assert code == 0, out
        assert proxy.replayed == 3
    finally:
        proxy.close()
    evs = ground.events(dep)
    types = [e["type"] for e in evs]
    assert types.count("job.accepted") == 1 and types.count("job.completed") == 1, types
    assert types.count("step.started") == 1
    refusals = [e for e in evs if e["type"] == "job.failed"]
    assert refusals and all("another poll" in e["payload"]["reason"] for e in refusals), refusals
    assert ground.status(dep) == "completed"  # a finished job stays finished
