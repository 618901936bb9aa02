"""On-board step handlers (STEPS.md "Handlers"): the front -- registry, contract,
shared input/output helpers. Each handler's body lives in its own module
(h_digest: crc32 and sha256, h_stats, h_deflate: compress, h_crypt: encrypt,
h_synthetic), imported by get(name) when a step needs it, so a board holds
only the front and the one handler it runs. MODULES names them all, for an
executor that drops them from RAM after a step.

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
import json
import os
from array import array

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

CHUNK = const(1024)           # bytes per slice (ctx["chunk"] overrides; 512..2048 sensible)
DEFLATE_SEGMENT = const(4096)  # input bytes per independent deflate segment (checkpoint unit)
DEFLATE_HASH_BITS = const(10)  # compress's hash table: 2**bits 16-bit entries (new_deflate_head)

# The registry: handler name -> the module that defines it (as a function of
# the same name). Names only, so the table costs no handler code; get() imports
# the one module a step needs. workload.HANDLER_NAMES lists the same names (a
# test keeps them equal). MODULES: every module get() may import.
MODULE_OF = {
    "synthetic": "h_synthetic",
    "compress": "h_deflate",
    "sha256": "h_digest",
    "crc32": "h_digest",
    "stats": "h_stats",
    "encrypt": "h_crypt",
}
MODULES = ("h_synthetic", "h_deflate", "h_digest", "h_stats", "h_crypt")


class HandlerError(Exception):
    """Bad input or a handler that cannot run on this port; the message says which."""


# ---------------------------------------------------------------- registry

def get(name):
    """The handler registered under name, or None. Imports its module (if not
    loaded yet): only that handler's code enters the heap."""
    home = MODULE_OF.get(name)
    return None if home is None else getattr(__import__(home), name)


def available(name):
    """Can this port run the handler? (encrypt needs cryptolib.)"""
    if name == "encrypt":
        try:
            import cryptolib  # noqa: F401 -- a built-in module: costs no heap
        except ImportError:
            return False
        return True
    return name in MODULE_OF


def new_deflate_head():
    """compress's hash table (2 KiB). An executor that runs many steps lends
    one in ctx["deflate_head"], allocated once like the scratch buffer. Built
    from a range, not from bytes(2 KiB): no 2 KiB temporary on the way. Its
    contents do not matter: compress clears it at every segment."""
    return array("H", range(1 << DEFLATE_HASH_BITS))


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
