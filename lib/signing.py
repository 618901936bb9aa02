"""Signed workloads (PROTOCOL.md "Signed workloads"): canonical JSON and
HMAC-SHA256, byte-identical under MicroPython and CPython.

Canonical JSON (our definition, close to RFC 8785 "JCS"):
- objects: keys sorted by code point, no whitespace at all (`{"a":1,"b":[]}`);
  keys must be strings;
- strings: UTF-8, not \\u-escaped except `"` `\\` and control characters
  (`\\b \\f \\n \\r \\t`, others as `\\u00xx`, lower-case hex);
- true / false / null; integers in plain decimal, any size;
- floats: the shortest decimal that reads back as the same double, computed
  here with integer arithmetic (the two runtimes' own float printing
  differs, e.g. 5e-324), written the JCS / ECMAScript way: an integral value
  below 1e21 without fraction or exponent (12.0 -> `12`, -0.0 -> `0`),
  `0.1`, `12.5`, `1e-7`, `1e+21`. So an int and an equal float sign alike,
  and a spec survives a JSON round trip through either runtime. NaN and
  infinities are refused (ValueError): they are not JSON.

Signature: `sig` = hex HMAC-SHA256(key, canonical JSON of the spec in which
`auth` is replaced by `{alg, issued_at, nonce}` (i.e. everything but `sig`)).
Binding `issued_at` and `nonce` into the MAC is what makes the agent's replay
window and nonce memory mean something: a spec re-sent with a fresh nonce or
time no longer verifies. HMAC is built from hashlib.sha256 because
MicroPython has no hmac module.
"""
import hashlib
import struct

try:
    import binascii
except ImportError:  # pragma: no cover
    binascii = None

ALG = "HMAC-SHA256"
_BLOCK = 64
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
            "\t": "\\t"}


# ---------------------------------------------------------------- canonical JSON

def canonical_json(obj):
    """The canonical JSON text of obj, as UTF-8 bytes."""
    parts = []
    write_canonical(obj, parts.append)
    return "".join(parts).encode("utf-8")


def write_canonical(obj, write):
    """Feed the canonical JSON text of obj to write(str), piece by piece (so a
    MAC can be computed without holding the whole text: small heaps)."""
    if obj is None:
        write("null")
    elif obj is True:
        write("true")
    elif obj is False:
        write("false")
    elif isinstance(obj, int):
        write(str(obj))
    elif isinstance(obj, float):
        write(format_float(obj))
    elif isinstance(obj, str):
        write(_quote(obj))
    elif isinstance(obj, dict):
        keys = list(obj.keys())
        for k in keys:
            if not isinstance(k, str):
                raise ValueError("canonical JSON: object keys must be strings")
        keys.sort()
        write("{")
        first = True
        for k in keys:
            if not first:
                write(",")
            first = False
            write(_quote(k))
            write(":")
            write_canonical(obj[k], write)
        write("}")
    elif isinstance(obj, (list, tuple)):
        write("[")
        first = True
        for item in obj:
            if not first:
                write(",")
            first = False
            write_canonical(item, write)
        write("]")
    else:
        raise ValueError("canonical JSON: unsupported type %s" % type(obj))


def _quote(s):
    plain = True
    for ch in s:
        if ch < " " or ch == '"' or ch == "\\":
            plain = False
            break
    if plain:
        return '"' + s + '"'
    buf = ['"']
    for ch in s:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            buf.append(esc)
        elif ch < " ":
            buf.append("\\u%04x" % ord(ch))
        else:
            buf.append(ch)
    buf.append('"')
    return "".join(buf)


def format_float(x):
    """Canonical text of a float (see the module docstring)."""
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError("canonical JSON: NaN and infinity are not allowed")
    if x == 0.0:
        return "0"
    sign = ""
    if x < 0:
        sign = "-"
        x = -x
    digits, n = _shortest_digits(x)  # x == 0.<digits> * 10**n
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    mant = digits[0] + ("." + digits[1:] if k > 1 else "")
    return sign + mant + "e" + ("+" if e >= 0 else "-") + str(abs(e))


def _shortest_digits(x):
    """Shortest decimal digits D, exponent n with 0.D * 10**n reading back as x > 0.

    Exact: x = m * 2**e; its rounding interval in units of 2**(e-2) is
    (4m - lo, 4m + 2) (lo = 1 just above a power of two, else 2), closed when m
    is even (round-half-even reads the boundary back as x).
    """
    bits = struct.unpack(">Q", struct.pack(">d", x))[0]
    exp_bits = (bits >> 52) & 0x7FF
    frac = bits & ((1 << 52) - 1)
    if exp_bits == 0:
        m, e = frac, -1074
    else:
        m, e = frac | (1 << 52), exp_bits - 1075
    lo = 1 if (frac == 0 and exp_bits > 1) else 2
    inclusive = (m % 2 == 0)
    # x = num / den exactly
    num = m << e if e > 0 else m
    den = 1 << (-e) if e < 0 else 1
    # decimal exponent k: 10**(k-1) <= x < 10**k
    k = len(str(num)) - len(str(den))
    while _cmp_pow10(num, den, k) >= 0:
        k += 1
    while _cmp_pow10(num, den, k - 1) < 0:
        k -= 1
    for p in range(1, 18):
        q = k - p  # candidate = D * 10**q, D with about p digits
        if q >= 0:
            scaled_num, scaled_den = num, den * 10 ** q
        else:
            scaled_num, scaled_den = num * 10 ** (-q), den
        d_floor = scaled_num // scaled_den
        best = None
        for d in (d_floor, d_floor + 1):
            if d <= 0:
                continue
            dist = abs(d * scaled_den - scaled_num)  # |candidate - x| * scaled_den
            if _inside(d, q, m, e, lo, inclusive):
                if best is None or dist < best[1] or (dist == best[1] and d % 2 == 0):
                    best = (d, dist)
        if best is not None:
            d = best[0]
            while d % 10 == 0:
                d //= 10
                q += 1
            s = str(d)
            return s, len(s) + q
    raise ValueError("canonical JSON: no shortest form for %r" % x)  # unreachable


def _cmp_pow10(num, den, k):
    """Sign of num/den - 10**k."""
    if k >= 0:
        a, b = num, den * 10 ** k
    else:
        a, b = num * 10 ** (-k), den
    return (a > b) - (a < b)


def _inside(d, q, m, e, lo, inclusive):
    """Is d * 10**q inside x's rounding interval? All in units of 2**(e-2)."""
    a = d
    b = 1
    if q >= 0:
        a *= 10 ** q
    else:
        b *= 10 ** (-q)
    if e - 2 < 0:
        a <<= (2 - e)
    else:
        b <<= (e - 2)
    # candidate in units = a / b; compare with 4m - lo and 4m + 2
    low = (4 * m - lo) * b
    high = (4 * m + 2) * b
    if inclusive:
        return low <= a <= high
    return low < a < high


# ---------------------------------------------------------------- HMAC

def _hexlify(raw):
    if binascii is not None:
        return binascii.hexlify(raw).decode()
    return "".join("%02x" % b for b in raw)


def _hmac_pads(key):
    if isinstance(key, str):
        key = key.encode("utf-8")
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + b"\x00" * (_BLOCK - len(key))
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def _hmac_finish(outer_pad, inner):
    outer = hashlib.sha256(outer_pad)
    outer.update(inner.digest())
    return _hexlify(outer.digest())


def hmac_sha256(key, msg):
    """Hex HMAC-SHA256 (RFC 2104) of bytes msg under bytes key."""
    if isinstance(msg, str):
        msg = msg.encode("utf-8")
    inner_pad, outer_pad = _hmac_pads(key)
    inner = hashlib.sha256(inner_pad)
    inner.update(msg)
    return _hmac_finish(outer_pad, inner)


def hmac_canonical(key, obj):
    """hmac_sha256(key, canonical_json(obj)) without building the whole text."""
    inner_pad, outer_pad = _hmac_pads(key)
    inner = hashlib.sha256(inner_pad)
    write_canonical(obj, lambda text: inner.update(text.encode("utf-8")))
    return _hmac_finish(outer_pad, inner)


def _equal(a, b):
    """Constant-time comparison of two strings."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= ord(a[i]) ^ ord(b[i])
    return diff == 0


# ---------------------------------------------------------------- sign / verify

def _signed_body(spec, auth):
    """The spec with auth reduced to alg, issued_at, nonce (a shallow copy)."""
    body = {}
    for k in spec:
        if k != "auth":
            body[k] = spec[k]
    body["auth"] = {"alg": auth.get("alg"), "issued_at": auth.get("issued_at"),
                    "nonce": auth.get("nonce")}
    return body


def signed_message(spec, auth):
    """The bytes the MAC covers (canonical JSON of the spec, auth without sig)."""
    return canonical_json(_signed_body(spec, auth))


def sign(spec, key, issued_at, nonce):
    """A copy of spec carrying auth {alg, issued_at, nonce, sig}."""
    auth = {"alg": ALG, "issued_at": issued_at, "nonce": nonce}
    out = _signed_body(spec, auth)
    auth["sig"] = hmac_canonical(key, out)
    out["auth"] = auth
    return out


def verify(spec, key):
    """(True, None) when spec's auth signature is right, else (False, reason).
    Checks the signature only; staleness and replay are the receiver's."""
    if not isinstance(spec, dict):
        return False, "spec is not an object"
    auth = spec.get("auth")
    if not isinstance(auth, dict):
        return False, "missing auth"
    if auth.get("alg") != ALG:
        return False, "unsupported alg"
    sig = auth.get("sig")
    if not isinstance(sig, str) or not isinstance(auth.get("nonce"), str) \
            or not isinstance(auth.get("issued_at"), str):
        return False, "malformed auth"
    try:
        expected = hmac_canonical(key, _signed_body(spec, auth))
    except ValueError as exc:
        return False, "cannot canonicalise: %s" % exc
    if not _equal(expected, sig.lower()):
        return False, "bad signature"
    return True, None
