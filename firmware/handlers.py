"""On-board step handlers (STEPS.md "Handlers"), registered by name in REGISTRY.

The contract (docs/handlers.md has the long form):

    gen = handler(step, state, ctx)     # a generator function
    fraction = next(gen)                # one slice of work, then progress 0..1
    fraction = gen.send(x)              # the next slice (x: see synthetic)
    ... StopIteration.value             # the result when the work is done

- step:  the normalised step dict (workload.py); a handler reads `input` and
         its own parameters from it, and `compute_s` / `output_mb`.
- state: a dict, {} on a fresh start, or the copy the executor checkpointed.
         The handler keeps it current: at every yield it is a valid resume
         point (small, JSON-able), so the executor may persist it then.
- ctx:   what the executor lends: workdir (where output files go), data_root
         (where relative input paths live, default workdir), inputs (results
         of the steps this one depends on), chunk (bytes per slice, default
         1024), scratch (optional bytearray >= DEFLATE_SEGMENT, allocated once,
         used as the read buffer), deflate_head (optional, from
         new_deflate_head(): compress's hash table, allocated once), slice_s
         (synthetic), key / iv (encrypt).
- result: a JSON-able dict {"path": file or None, "value": small result or
         None, "size": bytes of output, "output_mb": size / 1e6}, so the agent
         can journal it and hand it to the next step as an input.

A handler raises HandlerError (or anything else) on bad input; the executor
turns that into a step failure. Work is streamed in chunks: no buffer the size
of the input is ever held in RAM.

Where the input comes from: step["input"] if given -- a relative path under
ctx["data_root"] (a string or {"path": p}), inline {"text": s}, {"hex": h},
or for stats {"values": [numbers]} -- otherwise the first result in
ctx["inputs"] (its file, or its value as bytes).
"""
import binascii
import hashlib
import json
import os
import struct
from array import array

try:
    import cryptolib
except ImportError:  # CPython: no AES in the standard library
    cryptolib = None

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

CHUNK = const(1024)           # bytes per slice (ctx["chunk"] overrides; 512..2048 sensible)
STATS_VALUES_PER_SLICE = const(64)
DEFLATE_SEGMENT = const(4096)  # input bytes per independent deflate segment (checkpoint unit)
_HASH_BITS = const(10)
_MAX_MATCH = const(258)
_AES_CBC = const(2)
_MAX_TOKEN = const(48)          # longest number text stats accepts
_SEPARATORS = b" \t\r\n,"
_INF = float("inf")


class HandlerError(Exception):
    """Bad input or a handler that cannot run on this port; the message says which."""


# ---------------------------------------------------------------- inputs and outputs

def _resolve(path, ctx):
    if not isinstance(path, str) or not path or path[0] == "/" or ".." in path.split("/"):
        raise HandlerError("input path must be relative to the data root: %r" % (path,))
    root = ctx.get("data_root") or ctx.get("workdir") or "."
    return root.rstrip("/") + "/" + path


def _file_size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        raise HandlerError("input file not found: %s" % path)


def _source(step, ctx):
    """("file", path, size) or ("bytes", data, size) or ("values", list, n)."""
    spec = step.get("input")
    if spec is not None:
        if isinstance(spec, str):
            path = _resolve(spec, ctx)
            return "file", path, _file_size(path)
        if isinstance(spec, dict):
            if "path" in spec:
                path = _resolve(spec["path"], ctx)
                return "file", path, _file_size(path)
            if isinstance(spec.get("text"), str):
                data = spec["text"].encode()
                return "bytes", data, len(data)
            if isinstance(spec.get("hex"), str):
                try:
                    data = binascii.unhexlify(spec["hex"])
                except ValueError:
                    raise HandlerError("input hex is not hexadecimal")
                return "bytes", data, len(data)
            if isinstance(spec.get("values"), list):
                return "values", spec["values"], len(spec["values"])
        raise HandlerError("unusable input %r" % (spec,))
    for res in ctx.get("inputs") or ():
        if not isinstance(res, dict):
            continue
        if res.get("path"):
            return "file", res["path"], _file_size(res["path"])
        value = res.get("value")
        if value is not None:
            data = value.encode() if isinstance(value, str) else json.dumps(value).encode()
            return "bytes", data, len(data)
    raise HandlerError("no input: give step.input or depend on a step with an output")


def _chunks(src, offset, chunk, ctx):
    """Yield memoryviews of the source from offset on, chunk bytes at a time.
    The buffer is reused: consume each view before asking for the next. It is
    ctx["scratch"] when that is big enough (a bytearray the executor allocates
    once at boot, so a long-running board does not need a fresh 4 KiB block
    from a fragmented heap for every step)."""
    kind, obj, size = src
    if kind == "file":
        scratch = ctx.get("scratch")
        if scratch is not None and len(scratch) >= chunk:
            buf = memoryview(scratch)[:chunk]
        else:
            buf = bytearray(chunk)
        view = memoryview(buf)
        with open(obj, "rb") as f:
            f.seek(offset)
            while True:
                n = f.readinto(buf)
                if not n:
                    return
                yield view[:n]
    elif kind == "bytes":
        view = memoryview(obj)
        for i in range(offset, size, chunk):
            yield view[i:i + chunk]
    else:
        raise HandlerError("this handler needs bytes, not a list of values")


def _chunk_size(ctx):
    n = ctx.get("chunk") or CHUNK
    return max(16, min(int(n), 16384)) // 16 * 16


def _out_path(step, ctx, suffix):
    workdir = (ctx.get("workdir") or ".").rstrip("/")
    try:
        os.mkdir(workdir)
    except OSError:
        pass  # exists already (or the filesystem will tell us when we write)
    return "%s/%s%s" % (workdir, step["id"], suffix)


def _open_output(path, state):
    """Open the output at the checkpointed offset; restart if the file is short."""
    out_off = state.get("out_off", 0)
    if out_off:
        try:
            if os.stat(path)[6] >= out_off:
                f = open(path, "r+b")
                f.seek(out_off)
                return f, True
        except OSError:
            pass
    return open(path, "wb"), False


def _result(path=None, value=None, size=0):
    return {"path": path, "value": value, "size": size, "output_mb": size / 1e6}


def _fraction(done, total):
    return 1.0 if total <= 0 else min(1.0, done / total)


def _hex(raw):
    return binascii.hexlify(raw).decode()


def _f2h(x):
    return None if x is None else _hex(struct.pack("<d", x))


def _h2f(h):
    return None if h is None else struct.unpack("<d", binascii.unhexlify(h))[0]


# ---------------------------------------------------------------- synthetic

def synthetic(step, state, ctx):
    """Spends step.compute_s of compute time and accounts step.output_mb of
    output without materialising it. Each resume performs one slice:
    `gen.send(s)` counts s compute-seconds (next() or send(None): ctx["slice_s"],
    default 1 s); the yield reports the fraction done after it. The executor
    makes that time pass (sleeps, or advances a simulated clock), so it
    decides how long a slice is. State: {"done_ms"} -- resumes exactly."""
    total_ms = int(round(float(step.get("compute_s") or 0) * 1000))
    slice_ms = int(round(float(ctx.get("slice_s") or 1) * 1000)) or 1
    done = min(int(state.get("done_ms", 0)), total_ms)
    granted = None
    while done < total_ms:
        inc = slice_ms if granted is None else int(round(float(granted) * 1000))
        done = min(total_ms, done + max(0, inc))
        state["done_ms"] = done
        if done >= total_ms:
            break
        granted = yield done / total_ms
    out_mb = float(step.get("output_mb") or 0)
    res = _result(size=int(out_mb * 1e6))
    res["output_mb"] = out_mb
    return res


# ---------------------------------------------------------------- crc32

def crc32(step, state, ctx):
    """CRC-32 (zlib's) of the input. State {"off", "crc"}: resumes exactly."""
    src = _source(step, ctx)
    size = src[2]
    off = state.get("off", 0)
    crc = state.get("crc", 0)
    if off > size:
        off, crc = 0, 0
    chunks = _chunks(src, off, _chunk_size(ctx), ctx)
    try:
        for view in chunks:
            crc = binascii.crc32(view, crc) & 0xFFFFFFFF
            off += len(view)
            state["off"] = off
            state["crc"] = crc
            yield _fraction(off, size)
    finally:
        chunks.close()
    return _result(value=crc, size=4)


# ---------------------------------------------------------------- sha256

def sha256(step, state, ctx):
    """SHA-256 of the input; value = hex digest.

    A hashlib object cannot be saved mid-stream, so the checkpoint holds only
    the offset reached ({"off"}): after a reset the hash is recomputed from
    byte 0 (at C speed) and progress is reported from the checkpointed
    offset, never backwards. Same digest either way."""
    src = _source(step, ctx)
    size = src[2]
    reached = min(state.get("off", 0), size)
    h = hashlib.sha256()
    pos = 0
    chunks = _chunks(src, 0, _chunk_size(ctx), ctx)
    try:
        for view in chunks:
            h.update(view)
            pos += len(view)
            if pos > reached:
                reached = pos
                state["off"] = pos
            yield _fraction(reached, size)
    finally:
        chunks.close()
    return _result(value=_hex(h.digest()), size=32)


# ---------------------------------------------------------------- stats

def _welford(acc, x):
    n, mean, m2, lo, hi = acc
    n += 1
    delta = x - mean
    mean += delta / n
    m2 += delta * (x - mean)
    return (n, mean, m2, x if lo is None or x < lo else lo, x if hi is None or x > hi else hi)


def _number(token, where):
    """float(token); where: byte offset (int) or index label, for the error."""
    try:
        x = float(token)
    except (ValueError, TypeError):
        raise HandlerError("stats: not a number %r at %s" % (token, _where(where)))
    if x != x or x in (_INF, -_INF):
        raise HandlerError("stats: non-finite value at %s" % _where(where))
    return x


def _where(where):
    return "byte %d" % where if isinstance(where, int) else where


def stats(step, state, ctx):
    """Summary statistics (count, mean, min, max, var, std -- sample, n-1) of a
    numeric series, one pass (Welford). Input: {"values": [...]} inline, or
    text with numbers separated by whitespace or commas. State: offset (at a
    number boundary) and the accumulator, floats stored as exact hex:
    resumes exactly."""
    src = _source(step, ctx)
    kind, obj, size = src
    off = state.get("off", 0)
    acc = (state.get("n", 0), _h2f(state.get("mean")) or 0.0, _h2f(state.get("m2")) or 0.0,
           _h2f(state.get("min")), _h2f(state.get("max")))
    if off > size:
        off, acc = 0, (0, 0.0, 0.0, None, None)

    def save():
        state["off"] = off
        state["n"] = acc[0]
        state["mean"] = _f2h(acc[1])
        state["m2"] = _f2h(acc[2])
        state["min"] = _f2h(acc[3])
        state["max"] = _f2h(acc[4])

    if kind == "values":
        while off < size:
            end = min(size, off + STATS_VALUES_PER_SLICE)
            for i in range(off, end):
                v = obj[i]
                if isinstance(v, bool) or not isinstance(v, (int, float)) \
                        or v != v or v in (_INF, -_INF):
                    raise HandlerError("stats: not a finite number %r at index %d" % (v, i))
                acc = _welford(acc, float(v))
            off = end
            save()
            yield _fraction(off, size)
    else:
        # scan byte by byte into a small token buffer: no copies of the chunk
        tok = bytearray(_MAX_TOKEN)
        k = 0                        # bytes in tok; off = file offset of tok[0]
        pos = off
        chunks = _chunks(src, off, _chunk_size(ctx), ctx)
        try:
            for view in chunks:
                for c in view:
                    pos += 1
                    if c in _SEPARATORS:
                        if k:
                            acc = _welford(acc, _number(bytes(tok[:k]), off))
                            k = 0
                        off = pos
                    elif k < _MAX_TOKEN:
                        tok[k] = c
                        k += 1
                    else:
                        raise HandlerError("stats: token too long at byte %d" % off)
                save()
                yield _fraction(off, size)
        finally:
            chunks.close()
        if k:
            acc = _welford(acc, _number(bytes(tok[:k]), off))
            off = pos
            save()
    n, mean, m2, lo, hi = acc
    var = m2 / (n - 1) if n > 1 else None
    value = {"count": n, "mean": mean if n else None, "min": lo, "max": hi,
             "var": var, "std": var ** 0.5 if var is not None else None}
    return _result(value=value, size=len(json.dumps(value)))


# ---------------------------------------------------------------- compress (raw deflate)
#
# Our own deflate encoder: LZ77 (greedy, one hash head per 3-byte prefix)
# with the fixed Huffman code of RFC 1951. Why not deflate.DeflateIO? Its
# compressor is a build option that the unix port here (and many board
# builds) leaves out, and its state cannot be checkpointed. Ours compresses
# the input in DEFLATE_SEGMENT-byte segments, each ending byte-aligned with an
# empty stored block (a "full flush"), so a segment never refers to another:
# the checkpoint is {in_off, out_off} at a segment boundary and a resumed run
# writes exactly the bytes an uninterrupted one would. The stream ends with
# an empty final block. Any inflater reads it: zlib.decompress(data, -15),
# deflate.DeflateIO(f, deflate.RAW).

def _reverse(code, nbits):
    r = 0
    for _ in range(nbits):
        r = (r << 1) | (code & 1)
        code >>= 1
    return r


def _fixed_literal_codes():
    """Bit-reversed fixed Huffman codes and their lengths for symbols 0..287."""
    codes = array("H", bytes(2 * 288))
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
    mask = (1 << _HASH_BITS) - 1
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


def new_deflate_head():
    """compress's hash table (2 KiB). An executor that runs many steps lends
    one in ctx["deflate_head"], allocated once like the scratch buffer."""
    return array("H", bytes(2 << _HASH_BITS))


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
    if head is None or len(head) != 1 << _HASH_BITS:
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


# ---------------------------------------------------------------- encrypt (AES-CBC)

def encrypt(step, state, ctx):
    """AES-CBC with PKCS#7 padding into <workdir>/<step id>.enc = IV || ciphertext.
    Key: ctx["key"] (16 bytes = AES-128, 32 = AES-256; it must match
    step["encryption"] when given). IV: ctx["iv"] or os.urandom(16), kept in
    the state. State {"in_off", "out_off", "iv", "prev"} (prev: the last
    ciphertext block, the next CBC IV): resumes exactly. MicroPython only
    (cryptolib); under CPython the first resume raises HandlerError."""
    if cryptolib is None:
        raise HandlerError("encrypt: cryptolib (AES) is not available on this port")
    key = ctx.get("key")
    if isinstance(key, str):         # hex, as a config file would carry it
        try:
            key = binascii.unhexlify(key)
        except ValueError:
            key = None
    if not isinstance(key, (bytes, bytearray)) or len(key) not in (16, 32):
        raise HandlerError("encrypt: ctx key must be 16 or 32 bytes")
    want = step.get("encryption")
    if want is not None and want != ("aes128" if len(key) == 16 else "aes256"):
        raise HandlerError("encrypt: key length does not match %s" % want)
    src = _source(step, ctx)
    size = src[2]
    path = _out_path(step, ctx, ".enc")
    f, resumed = _open_output(path, state)
    if not resumed or "iv" not in state or state.get("in_off", 0) > size:
        f.close()
        iv = ctx.get("iv") or os.urandom(16)
        if isinstance(iv, str):
            iv = binascii.unhexlify(iv)
        if len(iv) != 16:
            raise HandlerError("encrypt: iv must be 16 bytes")
        f = open(path, "wb")
        f.write(iv)
        state.clear()
        state["iv"] = state["prev"] = _hex(iv)
        state["in_off"] = 0
        state["out_off"] = 16
    in_off = state["in_off"]
    out_off = state["out_off"]
    chunk = _chunk_size(ctx)
    out = memoryview(bytearray(chunk + 16))
    try:
        chunks = _chunks(src, in_off, chunk, ctx)
        try:
            for view in chunks:
                k = len(view)
                last = in_off + k >= size
                full = k - k % 16
                if full < k and not last:
                    raise HandlerError("encrypt: short read in the middle of the input")
                cipher = cryptolib.aes(key, _AES_CBC, binascii.unhexlify(state["prev"]))
                if full:
                    cipher.encrypt(view[:full], out[:full])
                n = full
                if last:                 # PKCS#7: 1..16 bytes, each the pad length
                    pad = 16 - k % 16
                    cipher.encrypt(bytes(view[full:]) + bytes([pad]) * pad, out[full:full + 16])
                    n += 16
                f.write(out[:n])
                in_off += k
                out_off += n
                state["in_off"] = in_off
                state["out_off"] = out_off
                state["prev"] = _hex(out[n - 16:n])
                if last:
                    break
                f.flush()
                yield _fraction(in_off, size)
        finally:
            chunks.close()
        if size == 0 and out_off == 16:  # empty input: one block of pure padding
            cipher = cryptolib.aes(key, _AES_CBC, binascii.unhexlify(state["prev"]))
            f.write(cipher.encrypt(bytes([16]) * 16))
            out_off += 16
            state["out_off"] = out_off
    finally:
        f.close()
    return _result(path=path, size=out_off)


# ---------------------------------------------------------------- registry

REGISTRY = {
    "synthetic": synthetic,
    "compress": compress,
    "sha256": sha256,
    "crc32": crc32,
    "stats": stats,
    "encrypt": encrypt,
}


def get(name):
    """The handler registered under name, or None."""
    return REGISTRY.get(name)


def available(name):
    """Can this port run the handler? (encrypt needs cryptolib.)"""
    if name == "encrypt":
        return cryptolib is not None
    return name in REGISTRY


def drive(handler, step, state, ctx, max_slices=None, on_slice=None):
    """Run a handler to the end, or stop after max_slices yields (as a reset
    would). Returns (result or None, number of slices); on_slice(fraction) is
    called at every yield; `state` holds the resume point. For tests, tools
    and simple executors."""
    gen = handler(step, state, ctx)
    slices = 0
    try:
        while max_slices is None or slices < max_slices:
            fraction = next(gen)
            slices += 1
            if on_slice is not None:
                on_slice(fraction)
    except StopIteration as stop:
        return stop.value, slices
    gen.close()
    return None, slices
