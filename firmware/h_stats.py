"""The `stats` step handler (docs/handlers.md): count, mean, min, max, var, std
of a numeric series in one pass. Imported by handlers.get("stats")."""
import binascii
import json
import struct

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from handlers import HandlerError, _chunk_size, _chunks, _fraction, _hex, _result, _source

STATS_VALUES_PER_SLICE = const(64)
_MAX_TOKEN = const(48)          # longest number text stats accepts
_SEPARATORS = b" \t\r\n,"
_INF = float("inf")


def _f2h(x):
    return None if x is None else _hex(struct.pack("<d", x))


def _h2f(h):
    return None if h is None else struct.unpack("<d", binascii.unhexlify(h))[0]


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
