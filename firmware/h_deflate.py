"""The `compress` step handler (docs/handlers.md): raw deflate (RFC 1951) of the
input into a file, our own encoder. Imported by handlers.get("compress").

Our own deflate encoder: LZ77 (greedy, one hash head per 3-byte prefix)
with the fixed Huffman code of RFC 1951. Why not deflate.DeflateIO? Its
compressor is a build option that the unix port here (and many board
builds) leaves out, and its state cannot be checkpointed. Ours compresses
the input in DEFLATE_SEGMENT-byte segments, each ending byte-aligned with an
empty stored block (a "full flush"), so a segment never refers to another:
the checkpoint is {in_off, out_off} at a segment boundary and a resumed run
writes exactly the bytes an uninterrupted one would. The stream ends with
an empty final block. Any inflater reads it: zlib.decompress(data, -15),
deflate.DeflateIO(f, deflate.RAW).
"""
from array import array

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from handlers import (DEFLATE_HASH_BITS, DEFLATE_SEGMENT, _chunks, _fraction,
                      _open_output, _out_path, _result, _source, new_deflate_head)

_MAX_MATCH = const(258)


def _reverse(code, nbits):
    r = 0
    for _ in range(nbits):
        r = (r << 1) | (code & 1)
        code >>= 1
    return r


def _fixed_literal_codes():
    """Bit-reversed fixed Huffman codes and their lengths for symbols 0..287."""
    codes = array("H", range(288))   # every entry is set below: no zeroed temporary
    lens = bytearray(288)
    for sym in range(288):
        if sym < 144:
            code, n = 0x30 + sym, 8
        elif sym < 256:
            code, n = 0x190 + sym - 144, 9
        elif sym < 280:
            code, n = sym - 256, 7
        else:
            code, n = 0xC0 + sym - 280, 8
        codes[sym] = _reverse(code, n)
        lens[sym] = n
    return codes, lens


def _top_bit(x):
    n = 0
    while x > 1:
        x >>= 1
        n += 1
    return n


class _BitWriter:
    """LSB-first bit packer writing through a small fixed buffer."""

    def __init__(self, sink, size=256):
        self.sink = sink      # file-like with write()
        self.acc = 0
        self.nbits = 0
        self.buf = bytearray(size)
        self.pos = 0
        self.written = 0      # bytes handed to the sink

    def put(self, value, nbits):
        self.acc |= value << self.nbits
        self.nbits += nbits
        while self.nbits >= 8:
            self.buf[self.pos] = self.acc & 0xFF
            self.pos += 1
            self.acc >>= 8
            self.nbits -= 8
            if self.pos == len(self.buf):
                self.drain()

    def align(self):
        if self.nbits:
            self.put(0, 8 - self.nbits)

    def raw(self, data):
        self.drain()
        self.sink.write(data)
        self.written += len(data)

    def drain(self):
        if self.pos:
            self.sink.write(memoryview(self.buf)[:self.pos])
            self.written += self.pos
            self.pos = 0


def _deflate_segment(data, n, bw, codes, lens, head):
    """Encode data[:n] as one fixed-Huffman block plus an empty stored block.
    A generator: yields now and then so a big segment does not hold the CPU."""
    for i in range(len(head)):
        head[i] = 0
    mask = (1 << DEFLATE_HASH_BITS) - 1
    bw.put(2, 3)                      # BFINAL=0, BTYPE=01 (fixed Huffman)
    i = 0
    next_yield = 1024
    while i < n:
        if i >= next_yield:
            next_yield += 1024
            yield
        length = 0
        if i + 2 < n:
            h = ((data[i] << 6) ^ (data[i + 1] << 3) ^ data[i + 2]) & mask
            cand = head[h] - 1
            head[h] = i + 1
            if cand >= 0:
                limit = min(_MAX_MATCH, n - i)
                while length < limit and data[cand + length] == data[i + length]:
                    length += 1
        if length >= 3:
            dist = i - cand
            # length symbol 257..285 and its extra bits
            l3 = length - 3
            if l3 < 8:
                sym, xbits, xval = 257 + l3, 0, 0
            elif length == 258:
                sym, xbits, xval = 285, 0, 0
            else:
                nb = _top_bit(l3)
                sym = 257 + 4 * (nb - 1) + ((l3 >> (nb - 2)) & 3)
                xbits = nb - 2
                xval = l3 & ((1 << xbits) - 1)
            bw.put(codes[sym], lens[sym])
            if xbits:
                bw.put(xval, xbits)
            # distance code 0..29 (5 bits, bit-reversed) and its extra bits
            d1 = dist - 1
            if d1 < 4:
                dsym, xbits, xval = d1, 0, 0
            else:
                nb = _top_bit(d1)
                dsym = 2 * nb + ((d1 >> (nb - 1)) & 1)
                xbits = nb - 1
                xval = d1 & ((1 << xbits) - 1)
            bw.put(_reverse(dsym, 5), 5)
            if xbits:
                bw.put(xval, xbits)
            # index the positions the match covered (better matches later)
            end = i + length
            i += 1
            while i < end:
                if i + 2 < n:
                    head[((data[i] << 6) ^ (data[i + 1] << 3) ^ data[i + 2]) & mask] = i + 1
                i += 1
        else:
            sym = data[i]
            bw.put(codes[sym], lens[sym])
            i += 1
    bw.put(0, 7)                      # end of block (symbol 256 = 7 zero bits)
    bw.put(0, 3)                      # BFINAL=0, BTYPE=00 (stored), then align
    bw.align()
    bw.raw(b"\x00\x00\xff\xff")         # LEN=0, NLEN=~0


def compress(step, state, ctx):
    """Raw deflate of the input into <workdir>/<step id>.deflate.
    State {"in_off", "out_off"} at segment boundaries: resumes exactly."""
    src = _source(step, ctx)
    size = src[2]
    path = _out_path(step, ctx, ".deflate")
    f, resumed = _open_output(path, state)
    in_off = state.get("in_off", 0) if resumed else 0
    out_off = state.get("out_off", 0) if resumed else 0
    if in_off > size:
        f.close()
        f, in_off, out_off = open(path, "wb"), 0, 0
    codes, lens = _fixed_literal_codes()
    head = ctx.get("deflate_head")
    if head is None or len(head) != 1 << DEFLATE_HASH_BITS:
        head = new_deflate_head()
    try:
        bw = _BitWriter(f)
        # one chunk = one segment (regular files read full chunks, so the
        # boundaries are the same in a resumed run)
        chunks = _chunks(src, in_off, DEFLATE_SEGMENT, ctx)
        try:
            for view in chunks:
                for _ in _deflate_segment(view, len(view), bw, codes, lens, head):
                    yield _fraction(in_off, size)
                in_off += len(view)
                f.flush()
                state["in_off"] = in_off
                state["out_off"] = out_off + bw.written
                yield _fraction(in_off, size)
        finally:
            chunks.close()
        f.write(b"\x03\x00")          # empty final block: BFINAL=1, fixed, end of block
        total = out_off + bw.written + 2
    finally:
        f.close()
    state["in_off"] = size
    state["out_off"] = total
    return _result(path=path, size=total)
