"""JSON streamed to a file in small pieces: what lib/store.py falls back to
when a fragmented heap has no block for a whole snapshot as one string.

    n = measure(obj)                       # bytes json.dump writes (pass 1)
    crc = write(obj, f, crc)               # the same bytes into f, CRC-32 on (pass 2)
    crc = checksum(obj, crc)               # their CRC-32 alone, nothing written

A snapshot writes its CRC after the bytes (it seeks back); a journal record,
appended, needs it before them: checksum, then write (whose CRC must agree).

json.dump makes the same bytes both times (the dict is not touched in
between). Pieces are gathered in a 512-byte buffer, so flash sees a write per
512 bytes, not one per token. No import cost until a snapshot needs it.
"""
import binascii
import json

try:
    from io import IOBase  # MicroPython: json.dump writes only to a stream object
except ImportError:
    IOBase = object

BUF = 512


class _Sink(IOBase):
    def __init__(self, out, crc, summing=True):
        self.out = out
        self.n = 0
        self.crc = crc
        self.summing = summing  # CRC-32 on (always when writing)
        self.buf = bytearray(BUF) if out is not None else None
        self.fill = 0

    def write(self, data):
        if isinstance(data, str):  # CPython hands over text
            data = data.encode()
        k = len(data)
        self.n += k
        if self.summing:
            self.crc = binascii.crc32(data, self.crc) & 0xFFFFFFFF
        if self.out is None:
            return k
        if self.fill + k > BUF:
            self.flush_buf()
        if k >= BUF:
            self.out.write(data)
        else:
            self.buf[self.fill:self.fill + k] = data
            self.fill += k
        return k

    def flush_buf(self):
        if self.fill:
            self.out.write(memoryview(self.buf)[:self.fill])
            self.fill = 0


def measure(obj):
    sink = _Sink(None, 0, False)
    json.dump(obj, sink)
    return sink.n


def checksum(obj, crc=0):
    """The CRC-32 of obj's JSON, continued from crc; nothing written."""
    sink = _Sink(None, crc)
    json.dump(obj, sink)
    return sink.crc


def write(obj, f, crc=0):
    """Stream obj's JSON into f; returns the CRC-32 continued from crc."""
    sink = _Sink(f, crc)
    json.dump(obj, sink)
    sink.flush_buf()
    return sink.crc
