"""lib/httpc.py against a real HTTP server on 127.0.0.1 (CPython's http.server in
a thread), with the client running under the MicroPython unix port and CPython."""
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import tools
from tools import upy

STALL_S = 4.0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body, ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path
        if path == "/json":
            self._send(200, b'{"ok": true}', extra=(("X-Server-Time", "2026-01-01T00:00:00Z"),))
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world" * 300):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/close":
            self.close_connection = True
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            self.wfile.write(b"read until close " * 100)
        elif path == "/nocontent":
            self.send_response(204)
            self.end_headers()
        elif path == "/missing":
            self._send(404, b'{"error": "not found"}')
        elif path == "/stall":
            time.sleep(STALL_S)
            self._send(200, b"late")
        elif path == "/cut":
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"only ten b")
        elif path == "/huge-length":
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 1024 * 1024))
            self.end_headers()
            self.wfile.write(b"x" * 4096)
        elif path == "/huge-stream":
            self.close_connection = True
            self.wfile.write(b"HTTP/1.0 200 OK\r\n\r\n")
            try:
                for _ in range(200):
                    self.wfile.write(b"y" * 1024)
            except OSError:
                pass
        elif path == "/nested":   # valid JSON, nested past any parser's depth
            self._send(200, b"[" * 20000 + b"]" * 20000)
        elif path == "/garbage":
            self.close_connection = True
            self.wfile.write(b"SPAM 200 maybe\r\n\r\nnot http")
        else:
            self._send(404, b'{"error": "no route"}')

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        reply = json.dumps({
            "method": "POST", "path": self.path, "body": body.decode(),
            "content_length": self.headers.get("Content-Length"),
            "api_key": self.headers.get("X-API-Key"),
            "agent_id": self.headers.get("X-Agent-ID"),
            "user_agent": self.headers.get("User-Agent"),
            "content_type": self.headers.get("Content-Type"),
        }).encode()
        self._send(201, reply)


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def refused_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return "http://127.0.0.1:%d/x" % port


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    """httpc (and its chunked decoder) precompiled with mpy-cross, as on a
    board: compiling the source needs more RAM than a 32 KiB heap has."""
    out = tmp_path_factory.mktemp("mpy")
    for name in ("httpc", "httpchunk"):
        upy.compile_one(os.path.join(tools.ROOT, "lib", name + ".py"), str(out / (name + ".mpy")))
    return str(out)


def fetch(runner, call, heap=None, **kw):
    """Run `call` (an expression using httpc) and return its result as JSON."""
    code = """
import json, httpc
st, hd, body = %s
if st is not None:
    body = body.decode()
print(json.dumps({"status": st, "headers": hd, "body": body}))
""" % call
    res = runner(code, heap=heap, **kw)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.last_json


def test_get_returns_status_case_insensitive_headers_and_body(portable, server):
    out = fetch(portable, "httpc.request('GET', %r, {'X-API-Key': 'k'}, None, 2000)" % (server + "/json"))
    assert out["status"] == 200
    assert json.loads(out["body"]) == {"ok": True}
    assert out["headers"]["x-server-time"] == "2026-01-01T00:00:00Z"
    assert out["headers"]["content-type"] == "application/json"


def test_post_sends_body_with_content_length_and_the_callers_headers(portable, server):
    hdrs = {"X-API-Key": "um_secret", "X-Agent-ID": "sat-1", "User-Agent": "umbra-agent/0.1.0",
            "Content-Type": "application/json"}
    out = fetch(portable, "httpc.request('POST', %r, %r, b'{\"a\": 1}', 2000)" % (server + "/api/x", hdrs))
    assert out["status"] == 201
    echo = json.loads(out["body"])
    assert echo == {"method": "POST", "path": "/api/x", "body": '{"a": 1}', "content_length": "8",
                    "api_key": "um_secret", "agent_id": "sat-1", "user_agent": "umbra-agent/0.1.0",
                    "content_type": "application/json"}


def test_chunked_reply_is_reassembled(portable, server):
    out = fetch(portable, "httpc.request('GET', %r, None, None, 2000)" % (server + "/chunked"))
    assert out["status"] == 200
    assert out["body"] == "hello chunked " + "world" * 300


def test_reply_without_length_is_read_until_the_server_closes(portable, server):
    out = fetch(portable, "httpc.request('GET', %r, None, None, 2000)" % (server + "/close"))
    assert out["status"] == 200
    assert out["body"] == "read until close " * 100


def test_no_content_reply_has_an_empty_body(portable, server):
    out = fetch(portable, "httpc.request('GET', %r, None, None, 2000)" % (server + "/nocontent"))
    assert out["status"] == 204
    assert out["body"] == ""


def test_http_error_status_is_a_reply_not_link_down(portable, server):
    out = fetch(portable, "httpc.request('GET', %r, None, None, 2000)" % (server + "/missing"))
    assert out["status"] == 404
    assert json.loads(out["body"]) == {"error": "not found"}


def test_refused_port_is_link_down(portable, refused_url):
    out = fetch(portable, "httpc.request('GET', %r, None, None, 2000)" % refused_url)
    assert out["status"] is None and out["headers"] is None
    assert out["body"] == "network error: ECONNREFUSED"


def test_unknown_host_is_link_down(portable):
    out = fetch(portable, "httpc.request('GET', 'http://no-such-host.invalid:8080/', None, None, 2000)")
    assert out["status"] is None
    assert out["body"]


@pytest.mark.parametrize("url", ["https://127.0.0.1/x", "ftp://h/", "http://", "http://h:notaport/",
                                 "http://h:99999/", 42])
def test_unusable_url_is_link_down(portable, url):
    out = fetch(portable, "httpc.request('GET', %r, None, None, 2000)" % (url,))
    assert out["status"] is None
    assert out["body"].startswith("bad url")


def test_stalled_server_times_out_within_the_bound(portable, server):
    t0 = time.monotonic()
    out = fetch(portable, "httpc.request('GET', %r, None, None, 400)" % (server + "/stall"))
    elapsed = time.monotonic() - t0
    assert out["status"] is None
    assert "timeout" in out["body"]
    assert elapsed < STALL_S - 1.5  # 0.4 s timeout + interpreter start-up, well before the reply


def test_connection_closed_mid_reply_is_link_down(portable, server):
    out = fetch(portable, "httpc.request('GET', %r, None, None, 2000)" % (server + "/cut"))
    assert out["status"] is None
    assert out["body"] == "connection closed mid-reply"


def test_declared_oversized_reply_is_refused(portable, server):
    out = fetch(portable, "httpc.request('GET', %r, None, None, 2000, 65536)" % (server + "/huge-length"))
    assert out["status"] is None
    assert "larger than 65536" in out["body"]


def test_streamed_oversized_reply_is_refused(portable, server):
    out = fetch(portable, "httpc.request('GET', %r, None, None, 3000, 50000)" % (server + "/huge-stream"))
    assert out["status"] is None
    assert "larger than 50000" in out["body"]


def test_malformed_status_line_is_link_down(portable, server):
    out = fetch(portable, "httpc.request('GET', %r, None, None, 2000)" % (server + "/garbage"))
    assert out["status"] is None
    assert "malformed" in out["body"]


def test_header_with_line_break_is_refused_not_sent(portable, server):
    out = fetch(portable, "httpc.request('GET', %r, {'X-API-Key': 'a\\r\\nX-Evil: 1'}, None, 2000)"
                % (server + "/json"))
    assert out["status"] is None
    assert out["body"].startswith("bad header")


GEN_DRIVER = """
import json, httpc
def other_task(counter):
    while True:
        counter[0] += 1
        yield

def run(url, timeout_ms, now_ms=None, fake=None):
    counter = [0]
    other = other_task(counter)
    req = httpc.request_gen('GET', url, {'X-Agent-ID': 'sat-1'}, None, timeout_ms, now_ms)
    yields = 0
    while True:                  # a two-task round robin, like the scheduler's rounds
        try:
            next(req)
        except StopIteration as stop:
            result = stop.value
            break
        yields += 1
        if fake is not None:
            fake[0] += 100       # the simulated clock moves 100 ms per round
        next(other)
    st, hd, body = result
    return {"status": st, "body": body.decode() if st is not None else body,
            "yields": yields, "other_ran": counter[0]}
"""


def test_request_gen_returns_the_same_reply_as_request(portable, server):
    res = portable(GEN_DRIVER + """
print(json.dumps(run(%r, 2000)))
""" % (server + "/chunked"))
    assert res.returncode == 0, res.stdout
    out = res.last_json
    assert out["status"] == 200
    assert out["body"] == "hello chunked " + "world" * 300


def test_request_gen_yields_while_waiting_so_other_tasks_run(portable, server):
    res = portable(GEN_DRIVER + """
print(json.dumps(run(%r, 300)))
""" % (server + "/stall"))
    assert res.returncode == 0, res.stdout
    out = res.last_json
    assert out["status"] is None and "timeout" in out["body"]
    assert out["yields"] > 10
    assert out["other_ran"] == out["yields"]


def test_request_gen_timeout_follows_the_injected_clock(portable, server):
    t0 = time.monotonic()
    res = portable(GEN_DRIVER + """
fake = [0]
print(json.dumps(run(%r, 1000, lambda: fake[0], fake)))
""" % (server + "/stall"))
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res.stdout
    out = res.last_json
    assert out["status"] is None and "timeout" in out["body"]
    # 1000 ms of simulated time at 100 ms per round: about ten rounds, whatever the wall clock did
    assert 8 <= out["yields"] <= 12
    assert elapsed < STALL_S - 1.5


def test_request_gen_refused_port_is_link_down(portable, refused_url):
    res = portable(GEN_DRIVER + "print(json.dumps(run(%r, 2000)))\n" % refused_url)
    assert res.returncode == 0, res.stdout
    assert res.last_json["status"] is None


def test_closing_request_gen_mid_exchange_does_not_raise(portable, server):
    res = portable("""
import httpc
req = httpc.request_gen('GET', %r, None, None, 2000)
next(req)            # waiting on the stalled server
req.close()          # the task is killed: socket closed, nothing raised
print('{"closed": true}')
""" % (server + "/stall"))
    assert res.returncode == 0, res.stdout
    assert res.last_json == {"closed": True}


def test_an_exception_thrown_into_a_waiting_request_is_the_tasks_not_link_down(portable, server):
    """A supervisor or fault injector throws into the task while it waits on
    the link: that failure goes up to the scheduler (fault.detected), it is
    not mistaken for a dead link."""
    res = portable("""
import json, httpc
req = httpc.request_gen('GET', %r, None, None, 2000)
next(req)            # waiting on the stalled server
try:
    req.throw(ZeroDivisionError("thrown in"))
    got = "no exception"
except ZeroDivisionError as exc:
    got = "ZeroDivisionError: %%s" %% exc
except StopIteration as stop:
    got = "returned %%r" %% (stop.value,)
print(json.dumps({"got": got}))
""" % (server + "/stall"))
    assert res.returncode == 0, res.stdout
    assert res.last_json == {"got": "ZeroDivisionError: thrown in"}


def test_client_works_in_a_32k_heap(mpy, server, frozen):
    out = fetch(mpy, "httpc.request('GET', %r, None, None, 2000)" % (server + "/chunked"), heap="32K",
                extra_path=(frozen,))
    assert out["status"] == 200
    assert len(out["body"]) == len("hello chunked ") + 1500


def test_the_agents_link_takes_a_reply_nested_past_the_parsers_depth_for_no_reply(portable, server):
    """A hostile or broken reply must not crash the task that polls (and so
    reset the board at every poll): it is no reply, like a body that is not
    JSON."""
    res = portable("""
import json, link
cfg = {"api_url": %r, "http_timeout_ms": 3000, "api_key": "k", "agent_id": "sat-1"}
l = link.HttpLink(cfg, "0")
out = []
for path in ("/nested", "/json"):
    g = l.call("GET", path)
    try:
        while True:
            next(g)
    except StopIteration as stop:
        status, reply = stop.value
        # MicroPython parses it (an explicit stack) into a list, CPython gives
        # up (RecursionError): either way no workload, and no crash
        out.append([status, reply if isinstance(reply, dict) else type(reply).__name__])
print(json.dumps(out))
""" % server)
    nested, ok = res.check().last_json
    assert nested[0] == 200 and nested[1] in ("list", "NoneType")
    assert ok == [200, {"ok": True}]
