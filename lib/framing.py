"""Frames for a serial link (PROTOCOL.md "Serial link"), MicroPython and CPython.

    frame = COBS(payload || CRC-16/CCITT-FALSE(payload)) || 0x00

COBS (Consistent Overhead Byte Stuffing) removes every zero byte from the
encoded data, so 0x00 marks frame ends only and a receiver that joins the
stream mid-frame, or sees garbage, resynchronises at the next 0x00. The CRC
(poly 0x1021, init 0xFFFF, no reflection, no final xor; big-endian on the
wire; crc16(b"123456789") == 0x29B1) catches corrupted frames, which are
dropped and counted, never delivered.

    encode(payload) -> frame bytes (with the trailing 0x00)
    decode(body)    -> payload, or None for bad COBS / bad CRC / too short
    Deframer(max_payload).feed(data) -> list of good payloads; counts
        frames (good), bad (bad COBS or CRC) and overflow (longer than
        max_payload: dropped up to the next 0x00). Empty frames (0x00 0x00)
        are idle fill and are ignored, so a sender may lead with a 0x00 to
        flush a half-received frame at the other end.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

CRC_INIT = const(0xFFFF)
DEFAULT_MAX_PAYLOAD = const(16384)   # bytes of payload a Deframer accepts


def crc16(data, crc=CRC_INIT):
    """CRC-16/CCITT-FALSE of `data` (bytes-like); pass `crc` to continue one."""
    for b in data:
        # Byte-wise form of the 0x1021 polynomial, no 512-byte table needed.
        x = ((crc >> 8) ^ b) & 0xFF
        x ^= x >> 4
        crc = ((crc << 8) ^ (x << 12) ^ (x << 5) ^ x) & 0xFFFF
    return crc


def cobs_encode(data):
    """COBS-encode bytes-like `data`; the result holds no zero byte."""
    n = len(data)
    out = bytearray(n + n // 254 + 1)
    code_at = 0     # where the current block's length code goes
    o = 1
    code = 1
    for b in data:
        if b == 0:
            out[code_at] = code
            code_at = o
            o += 1
            code = 1
        else:
            out[o] = b
            o += 1
            code += 1
            if code == 0xFF:        # a full block of 254 non-zero bytes
                out[code_at] = code
                code_at = o
                o += 1
                code = 1
    out[code_at] = code
    return bytes(out[:o])


def cobs_decode(data):
    """Inverse of cobs_encode; None if `data` is not valid COBS."""
    n = len(data)
    out = bytearray(n)
    o = 0
    i = 0
    while i < n:
        code = data[i]
        if code == 0 or i + code > n:
            return None
        i += 1
        for k in range(i, i + code - 1):
            b = data[k]
            if b == 0:
                return None
            out[o] = b
            o += 1
        i += code - 1
        if code != 0xFF and i < n:
            out[o] = 0
            o += 1
    return bytes(out[:o])


def encode(payload):
    """The frame for `payload` (bytes), trailing 0x00 included."""
    crc = crc16(payload)
    body = bytearray(payload)
    body.append(crc >> 8)
    body.append(crc & 0xFF)
    return cobs_encode(body) + b"\x00"


def decode(body):
    """Payload of one frame body (the bytes between two 0x00, delimiter
    excluded), or None when the COBS or the CRC is bad."""
    raw = cobs_decode(body)
    if raw is None or len(raw) < 2:
        return None
    payload = raw[:-2]
    if crc16(payload) != (raw[-2] << 8) | raw[-1]:
        return None
    return payload


def max_overhead(payload_len):
    """Most bytes a frame adds to a payload of this length: CRC, COBS codes
    (one per 254 non-zero bytes, at least one), delimiter."""
    return 2 + (payload_len + 2) // 254 + 1 + 1


class Deframer:
    """Splits a byte stream into frames; keeps only those that check out."""

    def __init__(self, max_payload=DEFAULT_MAX_PAYLOAD):
        # A COBS body of a max-size payload: payload + CRC + one code per 254.
        self.max_body = max_payload + 2 + (max_payload + 2) // 254 + 1
        self.buf = bytearray()
        self.skipping = False   # dropping an over-long frame up to its 0x00
        self.frames = 0
        self.bad = 0
        self.overflow = 0

    def feed(self, data):
        out = []
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        start = 0
        n = len(data)
        while start < n:
            end = data.find(b"\x00", start)
            if end < 0:
                self._take(data[start:])
                break
            self._take(data[start:end])
            if self.skipping:
                self.skipping = False
            elif self.buf:
                payload = decode(self.buf)
                if payload is None:
                    self.bad += 1
                else:
                    self.frames += 1
                    out.append(payload)
            self.buf = bytearray()
            start = end + 1
        return out

    def _take(self, chunk):
        if self.skipping or not chunk:
            return
        if len(self.buf) + len(chunk) > self.max_body:
            self.overflow += 1
            self.skipping = True
            self.buf = bytearray()
            return
        self.buf.extend(chunk)

    def reset(self):
        """Forget a half-received frame (e.g. after the port was reopened)."""
        self.buf = bytearray()
        self.skipping = False
