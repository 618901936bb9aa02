"""The `encrypt` step handler (docs/handlers.md): AES-CBC with PKCS#7 padding
into a file, through cryptolib. Imported by handlers.get("encrypt")."""
import binascii
import os

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

try:
    import cryptolib
except ImportError:  # CPython: no AES in the standard library
    cryptolib = None

from handlers import (HandlerError, _chunk_size, _chunks, _fraction, _hex, _open_output,
                      _out_path, _result, _source)

_AES_CBC = const(2)


def _fresh_iv(salt):
    """16 random bytes; a port without os.urandom (or whose urandom fails)
    gets a digest of the time, the ticks and the output path: unique per
    output, if not unpredictable (CBC needs the first, wants the second)."""
    try:
        return os.urandom(16)
    except (AttributeError, OSError, NotImplementedError):
        import hashlib
        import time
        try:
            ticks = time.ticks_us()
        except AttributeError:  # CPython
            ticks = time.perf_counter_ns()
        return hashlib.sha256(("%r:%d:%s" % (time.time(), ticks, salt)).encode()).digest()[:16]


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
        iv = ctx.get("iv") or _fresh_iv(path)
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
