"""Power-cut-safe persistent store: an append-only journal plus A/B snapshots.

Files under `root` (N = `name`, g = a snapshot generation):
  N.a, N.b   snapshot slots: magic "UMS1", generation, word, CRC-32, payload
  N.<g>.log  records appended after snapshot g: word, CRC-32, payload, ...
  N.tmp      scratch file, renamed over a slot or a log (atomic commit)
`word` is a little-endian u32: payload kind in the top byte (0 JSON, 1 bytes),
payload length in the low 24 bits. The CRC-32 covers the word and the payload
(and the generation, for slots).

Recovery (`open()`, in lib/storeopen.py: code a board runs at its boot only,
loaded for the call): the newest valid slot wins, a bad slot falls back to the
other; the records are those of the logs with generation >= the winner, in
order; the first bad or torn record ends the valid journal: the log is cut
there (rewritten via N.tmp + rename, MicroPython has no truncate) and later
logs are dropped. The log of the previous snapshot is kept until the next
snapshot, so falling back to the older slot replays its log and loses nothing.
See docs/store.md for what is guaranteed across a power cut.

All file-system access goes through `fs` (default `Files`: builtin open and
os), so sim/faultfs.py can count writes, cut power and flip bits.
"""
import binascii
import json
import os
import struct
import sys

try:
    from micropython import const
except ImportError:
    const = int  # CPython: the value itself

KIND_JSON = const(0)
KIND_BYTES = const(1)
_LEN_MASK = const(0xFFFFFF)
_REC_HDR = const(8)      # word, crc
_SLOT_HDR = const(16)    # magic, generation, word, crc
_CHUNK = const(256)
_SLOT_MAGIC = b"UMS1"
_SLOTS = ("a", "b")


class StoreFull(Exception):
    """The journal reached hard_log_bytes: the owner must snapshot() first."""


class Files:
    """Default file-system adapter: builtin open and os functions (builtins
    are not bound as methods, so Files().rename(a, b) is os.rename(a, b))."""

    open = open
    rename = os.rename
    remove = os.remove
    listdir = os.listdir
    mkdir = os.mkdir

    def size(self, path):
        """File size in bytes, or -1 when missing."""
        try:
            return os.stat(path)[6]
        except OSError:
            return -1


def encode(obj):
    """(kind, payload, length). On MicroPython JSON stays the str itself,
    which is a buffer of its UTF-8 bytes there (no second copy of a big
    state). payload is None when the heap has no block for the text in one
    piece: append() and snapshot() stream it then (lib/jsonsink.py). A
    journal writing one record to two stores encodes it once (append's
    `encoded`)."""
    if isinstance(obj, (bytes, bytearray)):
        return KIND_BYTES, bytes(obj), len(obj)
    try:
        text = json.dumps(obj)
        try:
            return KIND_JSON, text, len(memoryview(text))
        except TypeError:  # CPython
            text = text.encode()
            return KIND_JSON, text, len(text)
    except MemoryError:
        return KIND_JSON, None, _overlay("jsonsink").measure(obj)


_DROP = sys.implementation.name == "micropython"  # a loaded module lives in the heap there


def _overlay(name):
    """lib/<name>.py for one call: imported at need and not kept in
    sys.modules (the caller's reference keeps it while it runs), unless a
    caller holds it there for a run of calls (hold_opener). CPython (the
    forecast's agents, the Console) keeps it: no heap to give back."""
    mods = sys.modules
    held = name in mods
    module = __import__(name)
    if not held and _DROP:
        del mods[name]
    return module


def opener():
    """lib/storeopen.py: the recovery Store.open and Spool.open run, code a
    board needs at its boot only."""
    return _overlay("storeopen")


def hold_opener(hold=True):
    """Keep lib/storeopen.py in RAM for a run of opens (journal.Journal.open:
    two stores and the outbox), each would load it again; hold_opener(False)
    lets it go."""
    if hold:
        import storeopen
    elif _DROP:
        sys.modules.pop("storeopen", None)


def _decode(kind, payload):
    if kind == KIND_BYTES:
        return payload
    return json.loads(payload)


def _crc(data, crc=0):
    return binascii.crc32(data, crc) & 0xFFFFFFFF


class Store:
    """One journal + snapshot pair. Call open() before anything else."""

    def __init__(self, root, name="journal", max_log_bytes=16384, fs=None,
                 max_snapshot_bytes=8192, max_record_bytes=1024, hard_log_bytes=None):
        self.root = root.rstrip("/") or "/"
        self.name = name
        self.fs = fs if fs is not None else Files()
        self.max_log_bytes = max_log_bytes            # needs_compaction() above this
        self.hard_log_bytes = hard_log_bytes or 2 * max_log_bytes  # append() refuses above
        self.max_snapshot_bytes = max_snapshot_bytes  # largest snapshot payload
        self.max_record_bytes = max_record_bytes      # largest record payload
        self.state = None
        self.generation = 0
        self.corrupt = False       # slots existed but none was valid (storage_corrupt)
        self._slot = None          # index of the slot holding `generation`
        self._chain = []           # log generations replayed after the snapshot
        self._cur = 0              # generation of the log appends go to
        self._max_gen = 0          # highest generation seen (next snapshot is above)
        self._log_bytes = 0
        self._good_bytes = 0       # size of the current log up to its last good record
        self._reset_needed = False
        self._dirty = False        # an append failed half-way: cut before the next
        self.counts = {"records_cut": 0, "bytes_cut": 0, "slot_fallbacks": 0,
                       "records_bad": 0, "appends": 0, "snapshots": 0}

    # -- paths --------------------------------------------------------------
    def _path(self, suffix):
        return "%s/%s.%s" % ("" if self.root == "/" else self.root, self.name, suffix)

    def _log_path(self, gen):
        return self._path("%d.log" % gen)

    def _log_gens(self):
        prefix = self.name + "."
        gens = []
        for entry in self.fs.listdir(self.root):
            if entry.startswith(prefix) and entry.endswith(".log"):
                mid = entry[len(prefix):-4]
                if mid.isdigit():
                    gens.append(int(mid))
        gens.sort()
        return gens

    def _remove(self, path):
        try:
            self.fs.remove(path)
        except OSError:
            pass

    # -- recovery -------------------------------------------------------------
    def open(self):
        """Recover: pick the newest valid snapshot, cut a torn or corrupt tail
        (lib/storeopen.py: code a board runs once a boot, out of its heap after)."""
        opener().open_store(self)
        return self

    def _check_slot(self, i):
        path = self._path(_SLOTS[i])
        size = self.fs.size(path)
        if size < 0:
            return None
        try:
            with self.fs.open(path, "rb") as f:
                hdr = f.read(_SLOT_HDR)
                if len(hdr) < _SLOT_HDR or hdr[:4] != _SLOT_MAGIC:
                    return -1
                gen, word, crc = struct.unpack("<III", hdr[4:])
                n = word & _LEN_MASK
                if (word >> 24) > KIND_BYTES or n > self.max_snapshot_bytes \
                        or size != _SLOT_HDR + n:
                    return -1
                c = _crc(hdr[4:12])
                while n:
                    chunk = f.read(min(_CHUNK, n))
                    if not chunk:
                        return -1
                    c = _crc(chunk, c)
                    n -= len(chunk)
        except OSError:
            return -1
        return gen if c == crc else -1

    def _load_slot(self, i):
        with self.fs.open(self._path(_SLOTS[i]), "rb") as f:
            hdr = f.read(_SLOT_HDR)
            gen, word, crc = struct.unpack("<III", hdr[4:])
            payload = f.read(word & _LEN_MASK)
        if _crc(payload, _crc(hdr[4:12])) != crc:  # changed since _check_slot
            raise ValueError("slot changed")
        return _decode(word >> 24, payload)

    def _scan(self, path):
        """Yield (end_offset, kind, payload) for each good record; stops at the
        first torn or corrupt one. Streams: one record in RAM at a time."""
        pos = 0
        with self.fs.open(path, "rb") as f:
            while True:
                hdr = f.read(_REC_HDR)
                if len(hdr) < _REC_HDR:
                    return
                word, crc = struct.unpack("<II", hdr)
                n = word & _LEN_MASK
                if (word >> 24) > KIND_BYTES or n > self.max_record_bytes:
                    return
                payload = f.read(n)
                if len(payload) < n or _crc(payload, _crc(hdr[:4])) != crc:
                    return
                pos += _REC_HDR + n
                yield pos, word >> 24, payload

    def _cut(self, path, good):
        """Keep the first `good` bytes of `path` (copy + atomic rename)."""
        if good == 0:
            self._remove(path)
            return
        tmp = self._path("tmp")
        with self.fs.open(path, "rb") as src:
            with self.fs.open(tmp, "wb") as dst:
                left = good
                while left:
                    chunk = src.read(min(_CHUNK, left))
                    if not chunk:
                        break
                    dst.write(chunk)
                    left -= len(chunk)
                dst.flush()
        self.fs.rename(tmp, path)

    def _cleanup(self, keep_from):
        """Remove logs older than `keep_from` and a leftover scratch file."""
        for gen in self._log_gens():
            if gen < keep_from:
                self._remove(self._log_path(gen))
        if self.fs.size(self._path("tmp")) >= 0:
            self._remove(self._path("tmp"))

    # -- the journal ----------------------------------------------------------
    def append(self, obj, encoded=None):
        """Append one record (bytes or a JSON-able object); durable on return.
        encoded: encode(obj), made once by a caller that appends it to more
        than one store."""
        if self._reset_needed:
            self.snapshot(None)  # both slots were bad: restart from safe defaults
        kind, payload, n = encoded or encode(obj)
        encoded = None
        if n > self.max_record_bytes:
            raise ValueError("record of %d bytes > max_record_bytes" % n)
        if self._log_bytes + _REC_HDR + n > self.hard_log_bytes:
            raise StoreFull("journal full (%d bytes): snapshot first" % self._log_bytes)
        path = self._log_path(self._cur)
        if self._dirty:
            self._cut(path, self._good_bytes)
            self._dirty = False
        if not self._chain or self._chain[-1] != self._cur:
            self._chain.append(self._cur)  # first record after a snapshot
            self._good_bytes = 0
        word = struct.pack("<I", (kind << 24) | n)
        start = _crc(word)
        # payload None (no block for it): streamed, its CRC from a pass of its own
        sink = _overlay("jsonsink") if payload is None else None
        crc = _crc(payload, start) if sink is None else sink.checksum(obj, start)
        try:
            with self.fs.open(path, "ab") as f:
                # the head, then the payload itself: no copy of it to glue the head on
                f.write(word + struct.pack("<I", crc))
                if sink is None:
                    f.write(payload)
                elif sink.write(obj, f, start) != crc:  # the same bytes both times, or refused
                    raise OSError("record changed while streamed")
                f.flush()
        except Exception:
            self._dirty = True  # part of the record may be on flash
            raise
        self._good_bytes += _REC_HDR + n
        self._log_bytes += _REC_HDR + n
        self.counts["appends"] += 1

    def records(self):
        """Generator over the records appended since the snapshot, oldest first."""
        for gen in self._chain:
            path = self._log_path(gen)
            if self.fs.size(path) < 0:
                continue
            end = 0
            for end, kind, payload in self._scan(path):
                yield _decode(kind, payload)
            if end < self.fs.size(path):  # went bad since open(): stop here
                self.counts["records_bad"] += 1
                return

    def snapshot(self, state):
        """Store the folded state as generation+1 and restart the journal empty.
        Atomic: a power cut leaves either the old snapshot + old records or
        the new snapshot + no records."""
        kind, payload, n = encode(state)  # payload None: streamed (lib/jsonsink.py)
        if n > self.max_snapshot_bytes:
            raise ValueError("snapshot of %d bytes > max_snapshot_bytes" % n)
        gen = max(self._max_gen, self.generation, self._cur) + 1
        target = 0 if self._slot is None else 1 - self._slot
        head = struct.pack("<II", gen, (kind << 24) | n)
        tmp = self._path("tmp")
        with self.fs.open(tmp, "wb") as f:
            if payload is None:
                f.write(_SLOT_MAGIC + head + b"\0\0\0\0")
                crc = _overlay("jsonsink").write(state, f, _crc(head))
                f.seek(_SLOT_HDR - 4)
                f.write(struct.pack("<I", crc))
            else:
                f.write(_SLOT_MAGIC + head + struct.pack("<I", _crc(payload, _crc(head))))
                f.write(payload)
            f.flush()
        self.fs.rename(tmp, self._path(_SLOTS[target]))  # the commit point
        prev = None if self._slot is None else self.generation
        self.state = state
        self.generation = self._max_gen = self._cur = gen
        self._slot = target
        self._chain = []
        self._log_bytes = self._good_bytes = 0
        self._reset_needed = self._dirty = False
        self.counts["snapshots"] += 1
        if prev is None:  # no valid older slot: a leftover bad one only confuses
            self._remove(self._path(_SLOTS[1 - target]))
        # logs older than the fallback slot are garbage now
        self._cleanup(gen if prev is None else prev)

    # -- size -------------------------------------------------------------------
    def log_bytes(self):
        return self._log_bytes

    def needs_compaction(self):
        return self._log_bytes > self.max_log_bytes

    def bound_bytes(self):
        """Upper bound of the files' total size: two slots plus a scratch copy,
        the current and the previous journal, plus a scratch copy of one."""
        return 3 * (_SLOT_HDR + self.max_snapshot_bytes) + 3 * self.hard_log_bytes

    @property
    def stats(self):
        d = dict(self.counts)
        d["generation"] = self.generation
        d["log_bytes"] = self._log_bytes
        d["corrupt"] = self.corrupt
        return d
