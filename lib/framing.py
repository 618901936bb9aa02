"""Frames for a serial link (PROTOCOL.md "Serial link"), MicroPython and CPython.

    frame = COBS(payload || CRC-16/CCITT-FALSE(payload)) || 0x00

COBS (Consistent Overhead Byte Stuffing) removes every zero byte from the
encoded data, so 0x00 marks frame ends only and a receiver that joins the
stream mid-frame, or sees garbage, resynchronises at the next 0x00. The CRC
(poly 0x1021, init 0xFFFF, no reflection, no final xor; big-endian on the
wire; crc16(b"123456789") == 0x29B1) catches corrupted frames, which are
dropped and counted, never delivered.

No frame is held twice: encode_parts builds the frame in one buffer from the
payload's pieces (never joined first), and the Deframer decodes a frame in
the buffer it arrived in.

    encode_parts(parts) -> memoryview of the frame (trailing 0x00 included)
    encode(payload)     -> frame bytes
    decode(body)        -> payload, or None for bad COBS / bad CRC / too short
    Deframer(max_payload): push() one frame at a time in place (the board),
        or feed(data) -> list of good payloads (the host); counts frames
        (good), bad (bad COBS or CRC) and overflow (longer than max_payload:
        dropped up to the next 0x00). Empty frames (0x00 0x00) are idle fill
        and are ignored, so a sender may lead with a 0x00 to flush a
        half-received frame at the other end.
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


def encode_parts(parts):
    """The frame for the payload that is the pieces `parts` (bytes-likes, or
    str: UTF-8) one after another, trailing 0x00 included, built in one buffer: no copy of
    the payload joined, no copy of the frame trimmed. Returns a memoryview of
    exactly the frame."""
    parts = [p.encode() if isinstance(p, str) else p for p in parts]
    n = 0
    crc = CRC_INIT
    for part in parts:
        n += len(part)
        crc = crc16(part, crc)
    out = bytearray(n + 2 + (n + 2) // 254 + 2)
    code_at = 0     # where the current block's length code goes
    o = 1
    code = 1
    parts.append(bytes((crc >> 8, crc & 0xFF)))
    for part in parts:
        for b in part:
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
    out[o] = 0
    return memoryview(out)[:o + 1]


def encode(payload):
    """The frame for `payload` (bytes), trailing 0x00 included, as bytes."""
    return bytes(encode_parts((payload,)))


def cobs_encode(data):
    """COBS-encode bytes-like `data`; the result holds no zero byte."""
    n = len(data)
    out = bytearray(n + n // 254 + 1)
    code_at = 0
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
            if code == 0xFF:
                out[code_at] = code
                code_at = o
                o += 1
                code = 1
    out[code_at] = code
    return bytes(out[:o])


def cobs_decode_in_place(buf, n):
    """COBS-decode the first n bytes of the bytearray (or memoryview) `buf`
    into its own start (a decoded byte never lies after its encoded one).
    Returns the decoded length, or None if it is not valid COBS."""
    o = 0
    i = 0
    while i < n:
        code = buf[i]
        if code == 0 or i + code > n:
            return None
        i += 1
        end = i + code - 1
        while i < end:
            b = buf[i]
            if b == 0:
                return None
            buf[o] = b
            o += 1
            i += 1
        if code != 0xFF and i < n:
            buf[o] = 0
            o += 1
    return o


def cobs_decode(data):
    """Inverse of cobs_encode; None if `data` is not valid COBS."""
    buf = bytearray(data)
    n = cobs_decode_in_place(buf, len(buf))
    return None if n is None else bytes(buf[:n])


def decode_in_place(buf, n):
    """The payload length of the frame body in buf[:n] (delimiter excluded),
    decoded into buf's start; None when the COBS or the CRC is bad."""
    m = cobs_decode_in_place(buf, n)
    if m is None or m < 2:
        return None
    m -= 2
    if crc16(memoryview(buf)[:m]) != (buf[m] << 8) | buf[m + 1]:
        return None
    return m


def decode(body):
    """Payload of one frame body (the bytes between two 0x00, delimiter
    excluded), or None when the COBS or the CRC is bad."""
    buf = bytearray(body)
    m = decode_in_place(buf, len(buf))
    return None if m is None else bytes(buf[:m])


def max_overhead(payload_len):
    """Most bytes a frame adds to a payload of this length: CRC, COBS codes
    (one per 254 non-zero bytes, at least one), delimiter."""
    return 2 + (payload_len + 2) // 254 + 1 + 1


class Deframer:
    """Splits a byte stream into frames; keeps only those that check out.
    One buffer, allocated once, the size of the largest frame body: bytes
    are copied into it as they arrive and a frame is decoded where it lies.

        n = d.push(data, start, end)   take data[start:end] up to and
            including the first 0x00; returns the offset after what it took.
            d.payload is then a good frame's payload (a memoryview into the
            buffer, valid until the next push) or None.
        d.feed(data) -> [payload bytes, ...]  every frame in `data` (copies;
            for the host side and tests)
    """

    def __init__(self, max_payload=DEFAULT_MAX_PAYLOAD):
        # A COBS body of a max-size payload: payload + CRC + one code per 254.
        self.max_body = max_payload + 2 + (max_payload + 2) // 254 + 1
        self.buf = bytearray(self.max_body)
        self.view = memoryview(self.buf)
        self.n = 0              # bytes of the frame being received
        self.skipping = False   # dropping an over-long frame up to its 0x00
        self.payload = None
        self.frames = 0
        self.bad = 0
        self.overflow = 0

    def push(self, data, start=0, end=None):
        self.payload = None
        if end is None:
            end = len(data)
        zero = data.find(b"\x00", start, end)
        stop = end if zero < 0 else zero
        take = stop - start
        if take and not self.skipping:
            if self.n + take > self.max_body:
                self.overflow += 1
                self.skipping = True
                self.n = 0
            else:
                self.view[self.n:self.n + take] = memoryview(data)[start:stop]
                self.n += take
        if zero < 0:
            return end
        if self.skipping:
            self.skipping = False
        elif self.n:
            m = decode_in_place(self.buf, self.n)
            if m is None:
                self.bad += 1
            else:
                self.frames += 1
                self.payload = self.view[:m]
        self.n = 0
        return zero + 1

    def feed(self, data):
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        out = []
        i = 0
        n = len(data)
        while i < n:
            i = self.push(data, i, n)
            if self.payload is not None:
                out.append(bytes(self.payload))
        return out

    def reset(self):
        """Forget a half-received frame (e.g. after the port was reopened)."""
        self.n = 0
        self.skipping = False
        self.payload = None
