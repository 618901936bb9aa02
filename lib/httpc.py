"""A tiny HTTP/1.1 client for the agent (MicroPython and CPython).

    request(method, url, headers=None, body=None, timeout_ms=5000)
        blocking, bounded by timeout_ms; for boot code and tools.
    result = yield from request_gen(method, url, headers=None, body=None,
                                    timeout_ms=5000, now_ms=None, pause=None)
        for scheduler tasks: a non-blocking socket, polled with a zero
        timeout; whenever nothing is ready it yields `pause` (default None,
        a bare yield = "give the others a turn"), so no single resume holds
        the scheduler longer than one send/recv of a few KiB.

body: bytes, str, a dict or list (sent as JSON), or a tuple of buffers sent
one after another (an event batch in pieces: no block the size of it all).
Both return (status, headers, body) -- headers a dict with lower-case names,
body a bytearray (the block it was read into, not copied) -- or
(None, None, "reason") when the link is down: refused,
reset, timeout, DNS failure, malformed or oversized reply. They never raise
(apart from GeneratorExit when a task is killed, or what is thrown into the
task while it waits; the socket is closed then).

Time: timeout_ms bounds the whole exchange (connect, send, receive) as
measured by now_ms(), a function returning milliseconds (e.g. a scheduler
clock's now_ms; default: the board's ticks). Under a simulated clock pass a
`pause` that advances time (e.g. scheduler.sleep_ms(10)), or a stalled peer
would be polled forever. DNS (getaddrinfo) is the one blocking step: use IP
addresses on flight links.

One request per connection (Connection: close), unless the caller keeps a
connection alive between requests (request_gen's `conn`: a simulated node
does; a board does not). Replies: Content-Length,
chunked (lib/httpchunk.py, imported at the first one), or read-to-close,
with at most max_body bytes of body and MAX_HEADER bytes of head; anything
bigger is refused as link down.
"""
import errno
import json
import select

try:
    import socket
except ImportError:  # a board without a network stack (a serial link instead)
    socket = None

try:
    from micropython import const
except ImportError:
    const = int  # CPython: the value itself

MAX_HEADER = const(8192)      # bytes: status line + headers
MAX_BODY = const(65536)       # bytes: default body cap
RECV_CHUNK = const(1024)      # bytes per recv() call
DEFAULT_TIMEOUT_MS = const(5000)

_WOULD_BLOCK = (errno.EAGAIN, errno.EINPROGRESS, errno.EALREADY,
                getattr(errno, "EWOULDBLOCK", errno.EAGAIN))
_POLLOUT = select.POLLOUT
_POLLIN = select.POLLIN
_POLL_FAIL = select.POLLERR | select.POLLHUP

try:
    from time import ticks_diff as _ticks_diff, ticks_ms as _ticks_ms
except ImportError:  # CPython
    from hostticks import ticks_diff as _ticks_diff, ticks_ms as _ticks_ms


class _Thrown(Exception):
    """Carries an exception thrown into request_gen at a pause past its own
    handlers (which take any other exception for a link failure)."""


class LinkDown(Exception):
    """Internal: any reason to give up on the exchange."""


def stopwatch():
    """Milliseconds since this call, wrap-safe over ticks_ms."""
    t0 = _ticks_ms()
    return lambda: _ticks_diff(_ticks_ms(), t0)


def _errno(exc):
    n = getattr(exc, "errno", None)
    if n is None and exc.args:
        n = exc.args[0]
    return n


def parse_url(url):
    """'http://host[:port]/path' -> (host, port, path); None if unusable."""
    if not isinstance(url, str) or not url.startswith("http://"):
        return None
    rest = url[7:]
    slash = rest.find("/")
    if slash < 0:
        hostport, path = rest, "/"
    else:
        hostport, path = rest[:slash], rest[slash:]
    port = 80
    colon = hostport.rfind(":")
    if colon >= 0:
        try:
            port = int(hostport[colon + 1:])
        except ValueError:
            return None
        hostport = hostport[:colon]
    if not hostport or not 0 < port < 65536:
        return None
    for c in " \r\n":
        if c in path or c in hostport:
            return None
    return hostport, port, path


def _head_bytes(method, host, port, path, headers, body_len, keep=False):
    lines = ["%s %s HTTP/1.1" % (method, path)]
    lines.append("Host: %s" % (host if port == 80 else "%s:%d" % (host, port)))
    for name in headers or ():
        value = str(headers[name])
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise LinkDown("bad header %r" % name)
        low = name.lower()
        if low in ("host", "content-length", "connection"):
            continue
        lines.append("%s: %s" % (name, value))
    if body_len or method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: %d" % body_len)
    lines.append("Connection: keep-alive" if keep else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class _Reply:
    """Incremental reply parser: feed() bytes, then done / result()."""

    def __init__(self, max_body, no_body):
        self.max_body = max_body
        self.no_body = no_body
        self.buf = b""          # unparsed bytes
        self.status = None
        self.headers = None
        self.mode = None        # "length" | "chunked" | "close"
        self.remaining = 0      # length mode: body bytes still due; chunked: bytes of current chunk
        self.body = bytearray()
        self.fill = 0           # body bytes received
        self.done = False
        self.chunk_state = 0    # chunked: 0 size line, 1 data, 2 CRLF after data, 3 trailers

    def feed(self, data):
        self.buf += data
        if self.status is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEADER:
                    raise LinkDown("reply head too large")
                return
            if end > MAX_HEADER:
                raise LinkDown("reply head too large")
            self._parse_head(self.buf[:end])
            self.buf = self.buf[end + 4:]
        if self.mode == "length":
            n = min(len(self.buf), self.remaining)
            self._take(n)
            self.remaining -= n
            if self.remaining <= 0:
                self.done = True
        elif self.mode == "chunked":  # rare from the Console: loaded on first use
            import httpchunk
            httpchunk.dechunk(self)
        elif self.mode == "close":
            self._take(len(self.buf))

    def _take(self, n):
        fill = self.fill
        if fill + n > self.max_body:
            raise LinkDown("reply body larger than %d bytes" % self.max_body)
        if fill + n > len(self.body):
            self.body.extend(self.buf[:n])  # length unknown: the body grows
        else:
            self.body[fill:fill + n] = self.buf[:n]  # Content-Length: one block, taken once
        self.fill = fill + n
        self.buf = self.buf[n:]

    def _parse_head(self, head):
        try:
            text = head.decode()
        except Exception:
            raise LinkDown("malformed reply head")
        lines = text.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise LinkDown("malformed status line")
        try:
            status = int(parts[1])
        except ValueError:
            raise LinkDown("malformed status code")
        if not 100 <= status <= 599:
            raise LinkDown("malformed status code")
        headers = {}
        for line in lines[1:]:
            colon = line.find(":")
            if colon <= 0:
                raise LinkDown("malformed header line")
            name = line[:colon].strip().lower()
            value = line[colon + 1:].strip()
            headers[name] = headers[name] + ", " + value if name in headers else value
        self.status = status
        self.headers = headers
        if self.no_body or status in (204, 304) or status < 200:
            self.mode = "length"
            self.remaining = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self.mode = "chunked"
        elif "content-length" in headers:
            try:
                n = int(headers["content-length"])
            except ValueError:
                raise LinkDown("malformed Content-Length")
            if n < 0:
                raise LinkDown("malformed Content-Length")
            if n > self.max_body:
                raise LinkDown("reply body larger than %d bytes" % self.max_body)
            self.mode = "length"
            self.remaining = n
            self.body = bytearray(n)
        else:
            self.mode = "close"

    def closed(self):
        """The peer closed the connection: finished or cut short?"""
        if self.status is None:
            raise LinkDown("connection closed before the reply head")
        if self.mode == "close":
            self.done = True
        if not self.done:
            raise LinkDown("connection closed mid-reply")


def _ready(poller, sock, mask, pause, wait_ms):
    """Poll the socket for `mask` up to wait_ms; when it is not ready, yield
    `pause` once. Returns the poll events (0 when none)."""
    poller.register(sock, mask)
    events = poller.poll(wait_ms)
    if not events:
        try:
            yield pause
        except Exception as exc:
            # thrown into the task at its pause (a supervisor, a fault
            # injector): the task's own failure, not the link's
            raise _Thrown(exc)
        return 0
    return events[0][1]


class _Stale(Exception):
    """Internal: a kept-alive connection failed before any byte of the reply
    came back (the server had closed it): the exchange is tried once more on
    a fresh one."""


def request_gen(method, url, headers=None, body=None, timeout_ms=DEFAULT_TIMEOUT_MS,
                now_ms=None, pause=None, max_body=MAX_BODY, _block_ms=0, conn=None):
    """Generator version for cooperative tasks:
    `status, headers, body = yield from httpc.request_gen(...)`.
    Polls with a zero timeout (request() passes _block_ms to block instead)
    and yields `pause` whenever the socket is not ready. Returns the result
    tuple; never raises (except GeneratorExit, or what is thrown into the
    task while it waits: that is the task's, and goes on up).

    conn: None (one request per connection), or a list [target, socket] the
    caller keeps between calls: the connection is kept alive in it and
    reused by the next request to the same host and port (a simulated node,
    whose exchanges come milliseconds apart; close_conn() ends it)."""
    now_ms = now_ms or stopwatch()
    sock = None
    keep = False
    try:
        target = parse_url(url)
        if target is None:
            raise LinkDown("bad url %r" % (url,))
        host, port, path = target
        if body is None:
            body = b""
        elif isinstance(body, str):
            body = body.encode()
        elif isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            if not headers or not ("Content-Type" in headers or "content-type" in headers):
                headers = dict(headers or {})
                headers["Content-Type"] = "application/json"
        # a tuple body is sent piece by piece: no one block the size of it all
        parts = body if isinstance(body, tuple) else (body,)
        size = 0
        for part in parts:
            size += len(part)
        parts = (_head_bytes(method, host, port, path, headers, size, conn is not None),) + parts
        body = None
        deadline = now_ms() + timeout_ms
        if socket is None:
            raise LinkDown("no network stack on this board")
        if conn is not None:  # the kept connection is ours for this exchange
            sock = conn[1] if conn[0] == (host, port) else None
            if conn[1] is not None and sock is None:
                close_conn(conn)
            conn[1] = None
        poller = select.poll()
        while True:
            fresh = sock is None
            if fresh:
                addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
                sock = socket.socket(addr[0], socket.SOCK_STREAM)
                sock.setblocking(False)
                if conn is not None:
                    # a kept connection sends a request's pieces at once: without
                    # this, Nagle holds the next piece for the peer's delayed ACK (40 ms)
                    try:
                        sock.setsockopt(getattr(socket, "IPPROTO_TCP", 6),
                                        getattr(socket, "TCP_NODELAY", 1), 1)
                    except Exception:
                        pass
                try:
                    sock.connect(addr[-1])
                except OSError as exc:
                    if _errno(exc) not in _WOULD_BLOCK:
                        raise
            try:
                reply = yield from _exchange(sock, poller, parts, deadline, now_ms, pause, _block_ms,
                                             max_body, method, fresh)
                break
            except _Stale:
                sock.close()
                sock = None
        parts = None
        if conn is not None and reply.mode != "close" and \
                "close" not in reply.headers.get("connection", "").lower():
            conn[0], conn[1] = (host, port), sock
            keep = True
        return reply.status, reply.headers, reply.body  # a bytearray: no copy of a big reply
    except _Thrown as thrown:
        raise thrown.args[0]
    except LinkDown as exc:
        return None, None, str(exc.args[0]) if exc.args else "link down"
    except OSError as exc:
        return None, None, "network error: %s" % _os_reason(exc)
    except MemoryError:
        return None, None, "out of memory reading reply"
    except Exception as exc:  # anything odd from a port's socket layer: still link down
        return None, None, "network error: %r" % (exc,)
    finally:
        if sock is not None and not keep:
            try:
                sock.close()
            except Exception:
                pass


def close_conn(conn):
    """Close the connection a request_gen(conn=...) kept alive, if any."""
    if conn is not None and conn[1] is not None:
        try:
            conn[1].close()
        except Exception:
            pass
        conn[1] = None


def _exchange(sock, poller, parts, deadline, now_ms, pause, block_ms, max_body, method, fresh):
    """Send the request, read the reply (a _Reply). On a reused connection
    (not fresh) a failure before any reply byte is _Stale."""
    got = False
    try:
        # Connected when writable; a refused connect shows up as POLLERR/HUP
        # (or as an error from the first send).
        for part in parts:
            sent = 0
            view = memoryview(part)
            while sent < len(view):
                if now_ms() >= deadline:
                    raise LinkDown("timeout sending request")
                try:
                    n = sock.send(view[sent:sent + 2048])
                except OSError as exc:
                    if _errno(exc) not in _WOULD_BLOCK:
                        raise
                    n = None
                if n:
                    sent += n
                else:
                    ready = yield from _ready(poller, sock, _POLLOUT, pause,
                                              max(0, min(deadline - now_ms(), block_ms)))
                    if ready & _POLL_FAIL and not ready & _POLLOUT:
                        raise LinkDown("connection failed")
        view = None

        reply = _Reply(max_body, method == "HEAD")
        while not reply.done:
            if now_ms() >= deadline:
                raise LinkDown("timeout waiting for reply")
            try:
                data = sock.recv(RECV_CHUNK)
            except OSError as exc:
                if _errno(exc) not in _WOULD_BLOCK:
                    raise
                data = None
            if data is None:            # would block (some ports return None)
                yield from _ready(poller, sock, _POLLIN, pause,
                                  max(0, min(deadline - now_ms(), block_ms)))
                continue
            if not data:
                reply.closed()
                break
            got = True
            reply.feed(data)
        return reply
    except (LinkDown, OSError):
        if fresh or got:
            raise
        raise _Stale()


def _os_reason(exc):
    """The errno's name (ECONNREFUSED ...), else the error's text."""
    return errno.errorcode.get(_errno(exc)) or str(exc)


def request(method, url, headers=None, body=None, timeout_ms=DEFAULT_TIMEOUT_MS,
            max_body=MAX_BODY, now_ms=None):
    """Blocking request, bounded by timeout_ms: request_gen with polls that
    wait (up to a second each) instead of yielding. See the module doc."""
    gen = request_gen(method, url, headers, body, timeout_ms, now_ms, None, max_body, 1000)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value
    finally:
        gen.close()
