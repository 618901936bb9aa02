"""Chunked transfer coding for lib/httpc.py replies, loaded only when a server
sends one (the Console answers the agent with Content-Length)."""
from httpc import MAX_HEADER, LinkDown


def dechunk(r):
    """Move the chunk data of reply `r` from r.buf into r.body, as far as
    r.buf goes. r.chunk_state: 0 size line, 1 data, 2 CRLF after data, 3 trailers."""
    while not r.done:
        if r.chunk_state == 0:           # "<hex size>[;ext]\r\n"
            eol = r.buf.find(b"\r\n")
            if eol < 0:
                if len(r.buf) > 256:
                    raise LinkDown("malformed chunk size")
                return
            line = r.buf[:eol].split(b";")[0].strip()
            r.buf = r.buf[eol + 2:]
            try:
                size = int(line, 16)
            except ValueError:
                raise LinkDown("malformed chunk size")
            if size < 0:
                raise LinkDown("malformed chunk size")
            if len(r.body) + size > r.max_body:
                raise LinkDown("reply body larger than %d bytes" % r.max_body)
            r.remaining = size
            r.chunk_state = 1 if size else 3
        elif r.chunk_state == 1:         # chunk data
            n = min(len(r.buf), r.remaining)
            r._take(n)
            r.remaining -= n
            if r.remaining:
                return
            r.chunk_state = 2
        elif r.chunk_state == 2:         # CRLF after the data
            if len(r.buf) < 2:
                return
            if r.buf[:2] != b"\r\n":
                raise LinkDown("malformed chunk end")
            r.buf = r.buf[2:]
            r.chunk_state = 0
        else:                            # trailers up to an empty line
            eol = r.buf.find(b"\r\n")
            if eol < 0:
                if len(r.buf) > MAX_HEADER:
                    raise LinkDown("reply trailers too large")
                return
            r.buf = r.buf[eol + 2:]
            if eol == 0:
                r.done = True
