"""Compact events for slow radio links (docs/serial.md "Compact encoding"),
driven by the event catalog (firmware/events.py), shared by the agent and
the ground bridge (tools/bridge.py), MicroPython and CPython.

    data = encode_body(kind, body)   # kind: EVENTS (a batch), EVENT, TELEMETRY, VALUE
    kind, body = decode_body(data)   # what went in, value for value

An event is its type as a small integer (its line in events.SPEC), a byte
saying which envelope fields it has, seq and time as deltas from the event
before it in the batch, then its payload's catalog fields in catalog order
without their names (an enriched type's spacecraft state after them,
ENRICHMENT; a field left out is one byte); fields the catalog does
not name follow with their names. Telemetry does the same with
TELEMETRY_FIELDS. Every value carries a one-byte tag:

    integers   zigzag-free: a tag for >= 0 and one for < 0, then a varint
    floats     a catalog field with its decimals in the catalog (events.SPEC,
               'duration_s:1'): the scaled integer as a varint, when it gives
               the same float back (12.5 -> 2 bytes); any other float, or one
               finer than its catalog precision: the fewest decimals (0..6)
               that give it back, then the scaled integer (0.5 -> 3 bytes);
               else 8 bytes
    strings    the first time in a body: length and UTF-8 bytes; again: the
               index into the body's table (step ids, deployment ids, stations)
    lists, objects, true, false, null: as JSON has them

Nothing is lost: whatever the JSON could carry comes back equal (objects
with the same members, numbers with the same value, strings byte for byte).
Malformed data raises ValueError (the bridge answers 400).
"""
import struct

import events
import timeutil

VERSION = "c2"          # the encoding's name in the serial hello (c2: catalog precision, enrichment as fields)
MARK = 0xC1             # first byte of a compact request frame's payload (JSON starts with '{')
EVENTS, EVENT, TELEMETRY, VALUE = 1, 2, 3, 4

# value tags (_FIXP/_FIXN: a catalog field's number at its catalog precision)
_NONE, _FALSE, _TRUE, _POS, _NEG, _DEC, _F64, _STR, _REF, _LIST, _DICT, _SKIP, _FIXP, _FIXN = (
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)

# envelope fields (bit i of the event's flags byte: present)
ENVELOPE = ("seq", "timestamp", "job_id", "step_id", "agent_id", "deployment_id", "payload")
_EXACT = 1 << 53        # integers a double holds exactly
_EXTRA = 0x80           # flags bit 7: members the envelope does not name follow

# The spacecraft state an enriched event carries after its own fields
# (EVENTS.md "Enrichment", Agent._enrich): sent as catalog fields, the
# sensors' doubles whole (the agent does not round them). Here, not in
# events.py: only the link needs it, and events.py stays in the heap.
ENRICHMENT = "actual_battery_percent actual_temperature_c lat lon altitude_km in_eclipse"

# telemetry's members in order (PROTOCOL.md and Umbra's extras, agent.telemetry)
TELEMETRY_FIELDS = ("agent_id", "timestamp", "status", "battery_percent", "temperature_c",
             "compute_capacity", "boot_count", "reset_cause", "mode", "heap_free",
             "outbox_depth", "seq", "unexplained_resets", "seu_corrected", "seu_restored",
             "telemetry_thinned", "events_shed", "events_refused", "dead_letters", "position",
             "cpu_percent", "memory_mb")


def _type_number(etype):
    """The type's line in events.SPEC (1 = the first), 0 if not in the
    catalog; found in place, no table built (a list of the catalog's types
    would cost ~16 KB of heap on every request)."""
    if not isinstance(etype, str) or not etype or " " in etype or "\n" in etype:
        return 0
    spec = events.SPEC
    i = spec.find("\n" + etype + " ")
    if i < 0:
        return 0
    return spec.count("\n", 0, i + 1) - (0 if spec[0] == "\n" else -1)


def _type_name(k):
    """The catalog's type on line k of events.SPEC; ValueError past its end."""
    spec = events.SPEC
    i = -1 if spec[0] != "\n" else 0
    for _ in range(k - 1):
        i = spec.find("\n", i + 1)
        if i < 0:
            break
    j = spec.find(" ", i + 1) if i >= 0 else -1
    if j < 0 or spec.find("\n", i + 1, j) >= 0 or j == i + 1:
        raise ValueError("compact: unknown event type %d" % k)
    return spec[i + 1:j]


def _names(out, etype):
    """The payload's catalog fields of etype (an enriched type's state
    after its own: ENRICHMENT) and their catalog decimals (None: not
    a number of fixed precision): ([names], [decimals]), built once a body."""
    names = out.names.get(etype)
    if names is None:
        spec = events.SPEC
        i = spec.find("\n" + etype + " ")
        line = spec[i + 1:spec.find("\n", i + 1)].split()[1:]
        names = ([], [])
        for f in line:   # 'name', 'name?', 'name:decimals'
            f, _, d = f.partition(":")
            names[0].append(f.rstrip("?"))
            names[1].append(int(d) if d else None)
        if events.is_enriched(etype):
            for f in ENRICHMENT.split():
                names[0].append(f)
                names[1].append(None)
        out.names[etype] = names
    return names


class _Out:
    def __init__(self):
        self.b = bytearray()
        self.strings = {}
        self.names = {}         # event type -> its payload's field names (this body)

    def uint(self, n):
        b = self.b
        while n > 0x7F:
            b.append((n & 0x7F) | 0x80)
            n >>= 7
        b.append(n)

    def value(self, v):
        b = self.b
        if v is None:
            b.append(_NONE)
        elif v is True:
            b.append(_TRUE)
        elif v is False:
            b.append(_FALSE)
        elif isinstance(v, int):
            if v >= 0:
                b.append(_POS)
                self.uint(v)
            else:
                b.append(_NEG)
                self.uint(-v)
        elif isinstance(v, float):
            self.real(v)
        elif isinstance(v, str):
            self.text(v)
        elif isinstance(v, (list, tuple)):
            b.append(_LIST)
            self.uint(len(v))
            for x in v:
                self.value(x)
        elif isinstance(v, dict):
            b.append(_DICT)
            self.uint(len(v))
            for k in v:
                self.text(k)
                self.value(v[k])
        else:
            raise ValueError("cannot encode %r" % (v,))

    def real(self, v):
        if v == v and abs(v) < 1e15:  # finite and small enough to scale
            for d in range(7):
                m = int(round(v * 10 ** d))
                if -_EXACT < m < _EXACT and m / 10 ** d == v:
                    # the sign apart (-0.0 keeps it)
                    neg = v < 0 or m == 0 and str(v)[0] == "-"
                    self.b.append(_DEC)
                    self.b.append(d * 2 + (1 if neg else 0))
                    self.uint(-m if m < 0 else m)
                    return
        self.b.append(_F64)
        self.b.extend(struct.pack("<d", v))

    def text(self, s):
        i = self.strings.get(s)
        if i is not None:
            self.b.append(_REF)
            self.uint(i)
            return
        self.strings[s] = len(self.strings)
        raw = s.encode()
        self.b.append(_STR)
        self.uint(len(raw))
        self.b.extend(raw)

    def fixed(self, v, d):
        """v at d decimals (tag and varint), if that gives v back exactly; else False."""
        if isinstance(v, float) and v == v and abs(v) < 1e15:
            m = int(round(v * 10 ** d))
            # |m| < 2**53: a float as it is, so m / 10**d is the same division on both ends
            if -_EXACT < m < _EXACT and m / 10 ** d == v and (m or str(v)[0] != "-"):
                self.b.append(_FIXN if m < 0 else _FIXP)
                self.uint(-m if m < 0 else m)
                return True
        return False

    def fields(self, names, doc, decs=None):
        """doc's members named in `names`, in that order (a missing one: one
        byte; a number at its catalog decimals `decs`: no decimals byte),
        then the others with their names."""
        for k, f in enumerate(names):
            if f in doc:
                v = doc[f]
                if decs is None or decs[k] is None or not self.fixed(v, decs[k]):
                    self.value(v)
            else:
                self.b.append(_SKIP)
        rest = [k for k in doc if k not in names]
        self.uint(len(rest))
        for k in rest:
            self.text(k)
            self.value(doc[k])


class _In:
    def __init__(self, data):
        self.d = memoryview(data)
        self.i = 0
        self.strings = []
        self.names = {}

    def byte(self):
        if self.i >= len(self.d):
            raise ValueError("compact: truncated")
        self.i += 1
        return self.d[self.i - 1]

    def uint(self):
        n = shift = 0
        while True:
            c = self.byte()
            n |= (c & 0x7F) << shift
            if c < 0x80:
                return n
            shift += 7
            if shift > 70:
                raise ValueError("compact: varint too long")

    def count(self):
        n = self.uint()
        if n > len(self.d):  # every member takes a byte at least
            raise ValueError("compact: bad count")
        return n

    def value(self, tag=None):
        t = self.byte() if tag is None else tag
        if t == _NONE:
            return None
        if t == _TRUE:
            return True
        if t == _FALSE:
            return False
        if t == _POS:
            return self.uint()
        if t == _NEG:
            return -self.uint()
        if t == _DEC:
            d = self.byte()
            m = self.uint()
            if d // 2 > 6:
                raise ValueError("compact: bad decimals")
            v = m / 10 ** (d // 2)
            return -v if d & 1 else v
        if t == _F64:
            if self.i + 8 > len(self.d):
                raise ValueError("compact: truncated")
            self.i += 8
            return struct.unpack("<d", self.d[self.i - 8:self.i])[0]
        if t in (_STR, _REF):
            return self.text(t)
        if t == _LIST:
            return [self.value() for _ in range(self.count())]
        if t == _DICT:
            out = {}
            for _ in range(self.count()):
                k = self.text()
                out[k] = self.value()
            return out
        raise ValueError("compact: bad tag %d" % t)

    def text(self, tag=None):
        t = self.byte() if tag is None else tag
        if t == _REF:
            i = self.uint()
            if i >= len(self.strings):
                raise ValueError("compact: bad string reference")
            return self.strings[i]
        if t != _STR:
            raise ValueError("compact: a string expected")
        n = self.uint()
        if self.i + n > len(self.d):
            raise ValueError("compact: truncated")
        try:
            s = str(bytes(self.d[self.i:self.i + n]), "utf-8")
        except UnicodeError:
            raise ValueError("compact: bad UTF-8")
        self.i += n
        self.strings.append(s)
        return s

    def fields(self, names, decs=None):
        doc = {}
        for k, f in enumerate(names):
            t = self.byte()
            if t == _FIXP or t == _FIXN:
                d = decs[k] if decs is not None else None
                if d is None:
                    raise ValueError("compact: no catalog precision for %s" % f)
                v = self.uint() / 10 ** d
                doc[f] = -v if t == _FIXN else v
            elif t != _SKIP:
                doc[f] = self.value(t)
        for _ in range(self.count()):
            k = self.text()
            doc[k] = self.value()
        return doc


def _time_ms(stamp):
    """ms since 1970 and whether the stamp shows them, if `stamp` is exactly
    as timeutil.iso_utc writes it (20 characters, or 24 with ms); else None
    (it travels as a string)."""
    n = len(stamp)
    if n != 20 and n != 24:
        return None
    try:
        s, ms = timeutil.parse_iso_ms(stamp)
    except ValueError:
        return None
    if n == 20 and stamp == timeutil.iso_utc(s):
        return s * 1000, 0
    if n == 24 and stamp == timeutil.iso_utc(s, ms):
        return s * 1000 + ms, 1
    return None


def _event(out, ev, last):
    """One event; last = [seq, time ms] of the event before it (updated)."""
    etype = ev.get("type")
    k = _type_number(etype)
    out.uint(k)
    if k == 0:
        out.value(etype)
    flags = 0
    for i, f in enumerate(ENVELOPE):
        if f in ev:
            flags |= 1 << i
    extra = [f for f in ev if f != "type" and f not in ENVELOPE]
    if extra:
        flags |= _EXTRA
    out.b.append(flags)
    seq = ev.get("seq")
    if "seq" in ev:
        if isinstance(seq, int) and not isinstance(seq, bool) and seq >= last[0]:
            out.b.append(1)
            out.uint(seq - last[0])
            last[0] = seq
        else:
            out.b.append(0)
            out.value(seq)
    if "timestamp" in ev:
        t = _time_ms(ev["timestamp"]) if isinstance(ev["timestamp"], str) else None
        if t is not None and t[0] >= last[1]:
            out.b.append(1 + t[1])
            out.uint(t[0] - last[1])
            last[1] = t[0]
        else:
            out.b.append(0)
            out.value(ev["timestamp"])
    for f in ("job_id", "step_id", "agent_id", "deployment_id"):
        if f in ev:
            out.value(ev[f])
    if "payload" in ev:
        p = ev["payload"]
        if k and isinstance(p, dict):
            out.b.append(1)
            names, decs = _names(out, etype)
            out.fields(names, p, decs)
        else:
            out.b.append(0)
            out.value(p)
    if extra:
        out.uint(len(extra))
        for f in extra:
            out.text(f)
            out.value(ev[f])


def _read_event(inp, last):
    k = inp.uint()
    etype = _type_name(k) if k else inp.value()
    ev = {"type": etype}
    flags = inp.byte()
    if flags & 1:
        if inp.byte():
            last[0] += inp.uint()
            ev["seq"] = last[0]
        else:
            ev["seq"] = inp.value()
    if flags & 2:
        how = inp.byte()
        if how:
            last[1] += inp.uint()
            s, ms = divmod(last[1], 1000)
            ev["timestamp"] = timeutil.iso_utc(s, ms) if how == 2 else timeutil.iso_utc(s)
        else:
            ev["timestamp"] = inp.value()
    for i, f in ((2, "job_id"), (3, "step_id"), (4, "agent_id"), (5, "deployment_id")):
        if flags & (1 << i):
            ev[f] = inp.value()
    if flags & 64:
        if inp.byte():
            if not k:
                raise ValueError("compact: catalog payload of an unknown type")
            names, decs = _names(inp, etype)
            ev["payload"] = inp.fields(names, decs)
        else:
            ev["payload"] = inp.value()
    if flags & _EXTRA:
        for _ in range(inp.count()):
            f = inp.text()
            ev[f] = inp.value()
    return ev


def encode_body(kind, body):
    """A request body as compact bytes: kind EVENTS (a list of events), EVENT
    (one), TELEMETRY (a telemetry object) or VALUE (any JSON value)."""
    out = _Out()
    out.b.append(kind)
    if kind in (EVENTS, EVENT):
        evs = body if kind == EVENTS else [body]
        if kind == EVENTS:
            out.uint(len(evs))
        last = [0, 0]
        for ev in evs:
            if not isinstance(ev, dict):
                raise ValueError("an event must be an object")
            _event(out, ev, last)
    elif kind == TELEMETRY:
        if not isinstance(body, dict):
            raise ValueError("telemetry must be an object")
        out.fields(TELEMETRY_FIELDS, body)
    else:
        out.value(body)
    return out.b


def decode_body(data):
    """(kind, body) from encode_body's bytes; ValueError if malformed."""
    inp = _In(data)
    kind = inp.byte()
    if kind in (EVENTS, EVENT):
        n = inp.count() if kind == EVENTS else 1
        last = [0, 0]
        body = [_read_event(inp, last) for _ in range(n)]
        if kind == EVENT:
            body = body[0]
    elif kind == TELEMETRY:
        body = inp.fields(TELEMETRY_FIELDS)
    elif kind == VALUE:
        body = inp.value()
    else:
        raise ValueError("compact: unknown body kind %d" % kind)
    if inp.i != len(inp.d):
        raise ValueError("compact: %d bytes left over" % (len(inp.d) - inp.i))
    return kind, body


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def request(rid, method, path, kind, body):
    """A request frame's payload: MARK, the id, the method, the path, the
    body (kind and body as for encode_body; kind 0: no body)."""
    out = _Out()
    out.b.append(MARK)
    out.uint(rid)
    out.b.append(METHODS.index(method))
    out.text(path)
    if kind:
        out.b.extend(encode_body(kind, body))
    return out.b


def parse_request(payload):
    """The request a compact frame carries, as the JSON frame has it:
    {"i", "m", "p"[, "b"]}. ValueError if malformed."""
    inp = _In(payload)
    if inp.byte() != MARK:
        raise ValueError("compact: not a compact request")
    msg = {"i": inp.uint()}
    m = inp.byte()
    if m >= len(METHODS):
        raise ValueError("compact: bad method")
    msg["m"] = METHODS[m]
    msg["p"] = inp.text()
    if inp.i < len(inp.d):
        msg["b"] = decode_body(inp.d[inp.i:])[1]
    return msg


def body_kind(path, body):
    """How a request's body goes compact: an event batch or one event, the
    telemetry, any other value."""
    if path.endswith("/events"):
        return EVENTS if isinstance(body, list) else EVENT
    if path.endswith("/telemetry"):
        return TELEMETRY
    return VALUE
