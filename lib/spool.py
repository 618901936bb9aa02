"""The outbox on flash: a power-cut-safe, two-copy spool of numbered text
records (the agent's events waiting for the ground), so RAM holds none of
them however long the link stays down.

Files under `root` (N = `name`, c = copy "a" or "b", k = segment number):
  N.c.k   records appended in seq order: head (12 bytes), dep, text
The head is `<IHBBI`: seq, text length, dep length, magic, CRC-32 over the
first 8 head bytes, dep and text. `dep` is a short key the reader batches by
(a deployment id, or "" for none); `text` is the record itself.

Both copies get every record; a record is read from copy a, from b when a's
is bad. Appends go to the newest segment until it holds `segment_bytes`; a
segment is deleted once every record in it is acknowledged (drop()).

Who decides what is written: the caller appends a record *before* the
commit that makes it count (journal.py), so a power cut between the two
leaves an orphan record above the committed seq. open(upto=...) ignores
records above `upto`, and a new segment is started at every open and after
a failed commit (seal()), so an orphan is always last in its segment: a
segment's records run to the first seq of the next segment, no further.
The first bad record (torn by a cut, or a flipped bit) ends its copy of the
segment; open() rebuilds the shorter copy from the longer one.
"""
import binascii
import struct

from store import Files, opener

try:
    from micropython import const
except ImportError:
    const = int

_HEAD = const(12)
_MAGIC = const(0x5A)
_PIECE = const(128)  # bytes read at a time to check a record whose text is not wanted
_COPIES = ("a", "b")


class SpoolFull(Exception):
    """The spool holds max_bytes (per copy) of unacknowledged records."""


def _buf(s):
    """s as a buffer for crc32 and write: a str is one on MicroPython (its
    UTF-8 bytes, no copy); CPython needs the bytes."""
    if isinstance(s, str):
        try:
            memoryview(s)
        except TypeError:  # CPython
            return s.encode()
    return s


def _crc(data, crc=0):
    return binascii.crc32(data, crc) & 0xFFFFFFFF


class Spool:
    def __init__(self, root, name="outbox", fs=None, segment_bytes=4096, max_bytes=98304, copies=2):
        self.fs = fs if fs is not None else Files()
        self.prefix = "%s/%s." % (root.rstrip("/"), name)
        self.segment_bytes = segment_bytes
        self.copies = _COPIES[:copies]
        self.max_bytes = max_bytes
        self.segs = []      # [k, first seq, last seq, bytes] of every live segment, oldest first
        self.cur = None     # the segment appends go to (None: start a new one)
        self.next_k = 0
        self.repaired = 0   # segment copies rebuilt at open
        self.bad = 0        # records unreadable in both copies (lost: must stay 0)

    def _path(self, c, k):
        return "%s%s.%d" % (self.prefix, c, k)

    # -- reading -----------------------------------------------------------------

    def _scan(self, path, upto, body=False):
        """Yield (seq, dep, text, end offset) of the good records of one segment
        copy, up to its first bad one; text and dep only when body."""
        try:
            f = self.fs.open(path, "rb")
        except OSError:
            return
        try:
            pos = 0
            while True:
                head = f.read(_HEAD)
                if len(head) < _HEAD:
                    return
                seq, tlen, dlen, magic, crc = struct.unpack("<IHBBI", head)
                if magic != _MAGIC:
                    return
                # dep and text read apart (not one block of both, then a copy of
                # each part): a long-running heap has small holes, rarely big ones
                c = _crc(head[:8])
                if body:
                    dep = f.read(dlen)
                    text = f.read(tlen)
                    if len(dep) < dlen or len(text) < tlen or _crc(text, _crc(dep, c)) != crc:
                        return
                else:
                    left = dlen + tlen
                    while left:
                        piece = f.read(min(left, _PIECE))
                        if not piece:
                            return
                        c = _crc(piece, c)
                        left -= len(piece)
                    piece = None
                    if c != crc:
                        return
                if seq > upto:
                    return  # an orphan: always the last in its segment
                pos += _HEAD + dlen + tlen
                if body:
                    yield seq, dep, text, pos
                    dep = text = None
                else:
                    yield seq, None, None, pos
        finally:
            f.close()

    def open(self, upto, acked):
        """Find the live segments: records in (acked, upto] count, what is
        above upto is an orphan of a commit that never landed. Rebuilds a
        damaged copy from the other and deletes acknowledged segments
        (lib/storeopen.py: code run at a boot, out of the heap after)."""
        opener().open_spool(self, upto, acked)
        return self

    def _remove(self, k):
        for c in self.copies:
            try:
                self.fs.remove(self._path(c, k))
            except OSError:
                pass

    def records(self, after, limit_n, limit_bytes):
        """[(seq, dep, text)] of up to limit_n records above `after`, in seq
        order, whose texts add up to at most limit_bytes (the first one
        always). dep and text are bytes. A record bad in both copies is
        skipped and counted (bad)."""
        out = []
        size = 0
        for seg in self.segs:
            k, last = seg[0], seg[2]
            if last <= after:
                continue
            got = after
            for c in self.copies:
                scan = self._scan(self._path(c, k), last, True)
                for seq, dep, text, _ in scan:
                    if seq <= got:
                        continue
                    if out and (len(out) >= limit_n or size + len(text) > limit_bytes):
                        scan.close()  # its file closes now, not at the next collection
                        return out
                    got = seq
                    size += len(text)
                    out.append((seq, dep, text))
                if got >= last:
                    break
            if got < last:  # both copies cut short: the rest of this segment is lost
                self.bad += last - got
            after = last
        return out

    # -- writing -----------------------------------------------------------------

    def append(self, seq, dep, text):
        """Write one record to both copies (each durable when this returns)."""
        dep = (dep or "").encode()  # a short id: its bytes go out with the head
        text = _buf(text)
        dlen, tlen = len(dep), len(memoryview(text))
        if dlen > 255 or tlen > 65535:
            raise ValueError("spool record too large")
        rec = _HEAD + dlen + tlen
        total = 0
        for seg in self.segs:  # bytes (per copy) the live records take
            total += seg[3]
        if total + rec > self.max_bytes:
            raise SpoolFull("spool holds %d bytes" % total)
        seg = self.cur
        if seg is None or seg[3] + rec > self.segment_bytes:
            seg = self.cur = [self.next_k, seq, seq, 0]
            self.next_k += 1
            self.segs.append(seg)
        head = struct.pack("<IHBB", seq, tlen, dlen, _MAGIC)
        head += struct.pack("<I", _crc(text, _crc(dep, _crc(head))))
        for c in self.copies:
            f = self.fs.open(self._path(c, seg[0]), "ab")
            try:
                f.write(head + dep)  # two writes a copy: the head, then the text itself (no copy)
                f.write(text)
            finally:
                f.close()
        seg[2] = seq
        seg[3] += rec

    def seal(self, seq):
        """The record just appended (seq) is an orphan: its commit failed. It is
        not read, and the next append starts a new segment."""
        seg = self.cur
        if seg is not None and seg[2] == seq:
            seg[2] = seq - 1  # the segment's records end before it
        self.cur = None

    def drop(self, acked):
        """Delete the segments whose records are all acknowledged."""
        while self.segs and self.segs[0][2] <= acked:
            k = self.segs.pop(0)[0]
            if self.cur is not None and self.cur[0] == k:
                self.cur = None
            self._remove(k)
