"""lib/framing.py: COBS + CRC-16/CCITT-FALSE frames, under the MicroPython unix
port and CPython (`portable`), checked against CPython's own CRC-CCITT."""
import binascii
import json

import framing

ROUND_TRIPS = """
import json, random, framing
random.seed(%(seed)d)
def payload(n, kind):
    if kind == 0:
        return bytes(random.getrandbits(8) for _ in range(n))
    if kind == 1:
        return bytes(n)                                        # all zeros
    return bytes((0 if random.getrandbits(2) == 0 else 1 + random.getrandbits(7)) for _ in range(n))
checked = 0
for n in (0, 1, 2, 3, 252, 253, 254, 255, 256, 507, 508, 509, 510, 1000, 3000):
    for kind in (0, 1, 2):
        data = payload(n, kind)
        frame = framing.encode(data)
        assert frame[-1] == 0, n
        assert 0 not in frame[:-1], n
        assert len(frame) <= n + framing.max_overhead(n), n
        assert framing.decode(frame[:-1]) == data, (n, kind)
        d = framing.Deframer(4096)
        got = []
        for b in frame:                      # one byte at a time, as a UART gives them
            got += d.feed(bytes([b]))
        assert got == [data], (n, kind)
        checked += 1
print(json.dumps({"checked": checked, "crc": framing.crc16(b"123456789")}))
"""


def test_random_payloads_with_zero_bytes_round_trip(portable):
    res = portable(ROUND_TRIPS % {"seed": 5}, heap="512K")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.last_json == {"checked": 45, "crc": 0x29B1}


def test_crc_is_ccitt_false_with_check_value_0x29b1_big_endian_on_the_wire(portable):
    res = portable("""
import json, framing
frame = framing.encode(b"123456789")
raw = framing.cobs_decode(frame[:-1])
samples = [list(bytes([i * 7 % 256 for i in range(n)])) for n in (1, 5, 64, 300)]
print(json.dumps({"check": framing.crc16(b"123456789"), "tail": list(raw[-2:]),
                  "empty": framing.crc16(b""),
                  "chained": framing.crc16(b"6789", framing.crc16(b"12345")),
                  "samples": [[s, framing.crc16(bytes(s))] for s in samples]}))
""")
    assert res.returncode == 0, res.stdout
    out = res.last_json
    assert out["check"] == 0x29B1 and out["chained"] == 0x29B1
    assert out["tail"] == [0x29, 0xB1]
    assert out["empty"] == 0xFFFF
    for data, crc in out["samples"]:    # the same CRC as CPython's binascii.crc_hqx from 0xFFFF
        assert crc == binascii.crc_hqx(bytes(data), 0xFFFF)


STREAM = """
import json, framing
good = [b'{"i":1}', b"\\x00\\x00zero\\x00", b"x" * 300]
frames = [framing.encode(p) for p in good]
bad_crc = bytearray(frames[0]); bad_crc[2] ^= 0x10          # one flipped bit
bad_cobs = bytes([9, 1, 2, 0])                               # code 9 runs past the end
stream = (b"\\x13\\x37garbage" + b"\\x00" + frames[0] + bytes(bad_crc) + b"noise" + b"\\x00\\x00"
          + frames[1] + bad_cobs + frames[2] + b"\\x7f\\x7f")
d = framing.Deframer(1024)
got = d.feed(stream)
first = {"got": [list(p) for p in got], "frames": d.frames, "bad": d.bad, "overflow": d.overflow}
# an over-long frame is dropped up to its 0x00 and counted; the next one is fine
d2 = framing.Deframer(100)
got2 = d2.feed(b"\\x05" * 500 + b"\\x00" + frames[0])
got2 += d2.feed(framing.encode(b"y" * 100))
print(json.dumps({"first": first, "second": [list(p) for p in got2],
                  "overflow": d2.overflow, "bad2": d2.bad}))
"""


def test_bad_frames_are_dropped_and_counted_and_garbage_resyncs_at_next_zero(portable):
    res = portable(STREAM)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.last_json
    first = out["first"]
    assert [bytes(p) for p in first["got"]] == [b'{"i":1}', b"\x00\x00zero\x00", b"x" * 300]
    assert first["frames"] == 3
    # "\x13\x37garbage", the flipped-bit frame, "noise" and the bad COBS chunk are
    # one bad frame each; empty frames are idle fill; the trailing bytes wait for a 0x00
    assert first["bad"] == 4
    assert first["overflow"] == 0
    assert [bytes(p) for p in out["second"]] == [b'{"i":1}', b"y" * 100]
    assert out["overflow"] == 1 and out["bad2"] == 0


def test_decode_refuses_truncated_and_bit_flipped_frames():
    payload = json.dumps({"i": 3, "s": 200, "b": {"ok": True}}).encode()
    body = framing.encode(payload)[:-1]
    assert framing.decode(body) == payload
    for k in range(len(body)):
        for bit in range(8):
            flipped = bytearray(body)
            flipped[k] ^= 1 << bit
            assert framing.decode(bytes(flipped)) is None, (k, bit)
    for cut in range(len(body)):
        assert framing.decode(body[:cut]) is None, cut


def test_a_frame_is_built_from_its_pieces_and_decoded_where_it_lies(portable):
    """encode_parts gives the frame of the joined payload without joining it;
    the Deframer's push decodes each frame inside its one buffer (allocated
    once) and hands back a view of it, one frame per push."""
    res = portable("""
import json, framing
parts = (b'{"seq":1,', memoryview(b'xx"a":0}')[2:], "\\u00e9\\x00tail", bytes(600))
joined = b"".join(p.encode() if isinstance(p, str) else bytes(p) for p in parts)
frame = framing.encode_parts(parts)
same = bytes(frame) == framing.encode(joined)
stream = bytearray(bytes(frame) + framing.encode(b"second") + b"\\x01\\x02")
d = framing.Deframer(1024)
buf = d.buf
got = []
i = 0
while i < len(stream):
    i = d.push(stream, i, len(stream))
    if d.payload is not None:
        got.append([len(d.payload), bytes(d.payload[:9]), d.payload.obj is buf if hasattr(d.payload, "obj") else True])
print(json.dumps({"same": same, "got": [[n, list(h), own] for n, h, own in got],
                  "pending": d.n, "buffer": len(d.buf), "same_buffer": d.buf is buf}))
""")
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.last_json
    assert out["same"] is True
    assert out["got"][0][0] == len(b'{"seq":1,"a":0}') + len("\u00e9\x00tail".encode()) + 600
    assert bytes(out["got"][0][1]) == b'{"seq":1,'
    assert out["got"][1][:2] == [6, list(b"second")]
    assert out["pending"] == 2                     # the half frame waits for its 0x00
    assert out["buffer"] == 1024 + 2 + (1024 + 2) // 254 + 1 and out["same_buffer"]
