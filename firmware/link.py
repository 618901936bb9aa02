"""The agent's side of the Console protocol (PROTOCOL.md), over any transport
that can carry one request and bring back one reply.

`call(method, path, body)` is a generator for a scheduler task:
    status, reply = yield from link.call("GET", "/api/agent/workloads")
status None means "link down" (reply is then the reason); the caller retries at
its next opportunity. Nothing here raises on bad network or bad replies.

The HTTP client is an overlay: imported at the first call of a contact,
dropped by `idle()` when the link goes down, so the hours between passes
(eclipse steps, most of an orbit) run without it in RAM.
"""
import json
import sys

USER_AGENT = "umbra-agent/"


class HttpLink:
    def __init__(self, cfg, version, now_ms=None):
        self.base = cfg["api_url"].rstrip("/")
        self.timeout_ms = cfg["http_timeout_ms"]
        self.now_ms = now_ms
        # X-Umbra-Compact: workloads without the predicted stream and the
        # window list, which would not fit a microcontroller's heap.
        self.headers = {"X-API-Key": cfg["api_key"], "X-Agent-ID": cfg["agent_id"],
                        "User-Agent": USER_AGENT + version, "X-Umbra-Compact": "1"}
        self.requests = 0
        self.failures = 0
        self.bytes_sent = 0
        self.last_error = None
        self.busy = None  # ms-since-start of the exchange on the link, if any
        # ms an exchange may block the process waiting for the socket instead of
        # yielding: 0 on a board (the other tasks run meanwhile); a simulated
        # node blocks (its clock stands still during an exchange either way)
        self.block_ms = 0
        # [target, socket] to keep the connection alive between exchanges
        # (httpc.request_gen's conn): None on a board (one request per
        # connection); a simulated node keeps it (its exchanges come ms apart)
        self.conn = None

    def call(self, method, path, body=None, raw=None):
        """body: an object to send as JSON; raw: JSON text already encoded (or
        a tuple of its pieces)."""
        data = raw
        headers = self.headers
        if body is not None:
            data = json.dumps(body)
        if data is not None:
            headers = dict(self.headers)
            headers["Content-Type"] = "application/json"
            if isinstance(data, tuple):  # JSON text in pieces (httpc sends them in turn)
                for part in data:
                    self.bytes_sent += len(part)
            else:
                self.bytes_sent += len(data)
        self.requests += 1
        # One exchange on the link at a time: one radio, one socket and one
        # reply in the heap; and the order the Console sees is the order the
        # tasks asked in. A holder that vanished uncleaned is overtaken.
        while self.busy is not None and self.busy() < self.timeout_ms + 1000:
            yield None
        httpc = __import__("httpc")
        self.busy = httpc.stopwatch()
        try:
            status, _, raw = yield from httpc.request_gen(
                method, self.base + path, headers, data, self.timeout_ms, self.now_ms,
                None, 65536, self.block_ms, self.conn)  # pause, httpc.MAX_BODY
        finally:
            self.busy = None
        if status is None:
            self.failures += 1
            self.last_error = raw
            return None, raw
        reply = None
        if raw:
            try:
                reply = json.loads(raw)
            except (ValueError, RuntimeError):  # not JSON, or nested past the parser's depth
                reply = None
        return status, reply

    def idle(self):
        """The link is down: drop the HTTP client until the next contact."""
        if self.busy is None:
            c = self.conn  # a kept connection (simulation) closes with the link
            if c and c[1]:
                c[1].close()
                c[1] = None
            for name in ("httpc", "httpchunk"):
                if name in sys.modules:
                    del sys.modules[name]
