"""The `crc32` and `sha256` step handlers (docs/handlers.md): one pass over the
input, a small value as the result. Imported by handlers.get()."""
import binascii
import hashlib

from handlers import _chunk_size, _chunks, _fraction, _hex, _result, _source


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
