"""The compact encoding (firmware/compact.py, docs/serial.md "Compact
encoding"): every catalog type with random payloads comes back field for
field, and so does telemetry and any other request body, through the
bridge's own expansion (tools/bridge.py) to the JSON the Console is sent;
what the agent encodes under the real MicroPython unix port arrives equal;
malformed bytes are a ValueError, never anything else."""
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compact
import events
import framing
import timeutil
from serial_helpers import FakeConsole
from tools import upy
from tools.bridge import Bridge
from tools.console import eventcheck

TYPES = eventcheck.types()

# JSON values as the agent's json.dumps can make them (finite floats)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 62, 2 ** 62),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
values = st.recursive(scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=6), kids, max_size=4)),
    max_leaves=12)
stamps = st.one_of(
    st.integers(0, 2 ** 33).map(timeutil.iso_utc),
    st.tuples(st.integers(0, 2 ** 33), st.integers(0, 999)).map(lambda t: timeutil.iso_utc(*t)),
    st.text(max_size=30))


@st.composite
def an_event(draw):
    etype = draw(st.sampled_from(TYPES + ["not.in.catalog"]))
    names = [f.rstrip("?") for f in (events.fields(etype) or ())]
    payload = {}
    for f in names:
        if draw(st.booleans()) or not draw(st.booleans()):  # most present, some left out
            payload[f] = draw(values)
    payload.update(draw(st.dictionaries(st.text(max_size=8), values, max_size=3)))
    ev = {"type": etype}
    if draw(st.booleans()):
        ev["seq"] = draw(st.one_of(st.integers(0, 2 ** 40), values))
    if draw(st.booleans()) or True:
        ev["timestamp"] = draw(stamps)
    for f in ("job_id", "step_id", "agent_id", "deployment_id"):
        if draw(st.booleans()):
            ev[f] = draw(st.one_of(st.none(), st.sampled_from(["job-1", "s1", "sat-25544"]),
                                   st.text(max_size=10)))
    ev["payload"] = payload if draw(st.integers(0, 9)) else draw(values)
    ev.update(draw(st.dictionaries(st.text(max_size=6).filter(lambda k: k not in ev), values,
                                   max_size=2)))
    return ev


def same(a, b):
    """Equal as JSON sees them (1 == 1.0 aside: a float stays a float)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.fixture(scope="module")
def ground():
    """The bridge (tools/bridge.py, its frame interface) in a compact session,
    relaying to a recording HTTP server: what the Console would be sent."""
    console = FakeConsole().start()
    bridge = Bridge(console.url, http_timeout=5.0)
    hello = {"i": 1, "m": "HELLO", "b": {"agent_id": "sat-7", "api_key": "um_k", "sid": 7,
                                          "enc": [compact.VERSION]}}
    reply = json.loads(framing.decode(bridge.feed(framing.encode(
        json.dumps(hello).encode()))[0][:-1]))
    assert reply["b"]["enc"] == compact.VERSION
    yield bridge, console
    bridge.close()
    console.stop()


_ids = itertools.count(1)


def through_the_bridge(ground, method, path, body):
    """The JSON body the bridge sends on for a compact request frame of
    `body`, built as the agent builds it (seriallink: compact.request), with
    a fresh request id (the same id and bytes again would be a retry, which
    the bridge answers from its cache)."""
    bridge, console = ground
    rid = next(_ids) % 65535 + 1
    before = len(console.requests)
    frame = framing.encode(bytes(compact.request(rid, method, path,
                                                 compact.body_kind(path, body), body)))
    out = bridge.feed(frame)
    assert len(out) == 1 and len(console.requests) == before + 1
    m, p, _, sent = console.requests[-1]
    assert (m, p) == (method, path)
    return sent


@settings(max_examples=300, deadline=None)
@given(st.lists(an_event(), min_size=1, max_size=8))
def test_every_catalog_type_with_random_payloads_round_trips_field_for_field(batch):
    kind, back = compact.decode_body(compact.encode_body(compact.EVENTS, batch))
    assert kind == compact.EVENTS and same(back, batch)
    kind, one = compact.decode_body(compact.encode_body(compact.EVENT, batch[0]))
    assert kind == compact.EVENT and same(one, batch[0])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(an_event(), min_size=1, max_size=8))
def test_compact_through_the_bridge_is_the_json_the_agent_made_field_for_field(ground, batch):
    """compact -> bridge (its own expansion, tools/bridge.py) -> the JSON the
    Console is sent: the batch, one event, any request body, equal field for
    field, under the catalog's type or not, unknown fields and all."""
    assert same(through_the_bridge(ground, "POST", "/api/agent/events", batch), batch)
    assert same(through_the_bridge(ground, "POST", "/api/agent/events", batch[0]), batch[0])
    other = {"agent_id": "sat-7", "satellite_id": batch[0].get("step_id"), "extra": batch[-1]}
    assert same(through_the_bridge(ground, "POST", "/api/agent/register", other), other)


@pytest.mark.parametrize("etype", TYPES)
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_each_catalog_type_through_the_bridge_field_for_field(ground, etype, data):
    """Every type of the catalog, not only those a random draw happens to
    pick: its catalog fields (some left out), members the catalog does not
    name, the envelope as the agent sends it."""
    payload = {}
    for f in (events.fields(etype) or ()):
        if not f.endswith("?") or data.draw(st.booleans()):
            payload[f.rstrip("?")] = data.draw(values)
    payload.update(data.draw(st.dictionaries(st.text(max_size=8), values, max_size=2)))
    batch = [{"type": etype, "seq": n, "timestamp": data.draw(stamps), "job_id": "job-1",
              "step_id": data.draw(st.sampled_from([None, "s1", "capture"])),
              "agent_id": "sat-7", "deployment_id": "dep-1", "payload": payload}
             for n in (5, 6)]
    assert same(through_the_bridge(ground, "POST", "/api/deployments/dep-1/events", batch), batch)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(compact.TELEMETRY_FIELDS) | st.text(max_size=8), values,
                       max_size=12))
def test_telemetry_through_the_bridge_is_the_json_the_agent_made(ground, doc):
    assert same(through_the_bridge(ground, "POST", "/api/agent/telemetry", doc), doc)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(compact.TELEMETRY_FIELDS) | st.text(max_size=8), values,
                       max_size=12), st.integers(1, 65535), st.sampled_from(compact.METHODS))
def test_telemetry_and_requests_round_trip(doc, rid, method):
    assert same(compact.decode_body(compact.encode_body(compact.TELEMETRY, doc))[1], doc)
    msg = compact.parse_request(compact.request(rid, method, "/api/agent/telemetry",
                                                compact.TELEMETRY, doc))
    assert msg["i"] == rid and msg["m"] == method and same(msg["b"], doc)
    assert "b" not in compact.parse_request(compact.request(rid, "GET", "/api/x", 0, None))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_malformed_bytes_are_a_value_error_and_nothing_else(data):
    for parse in (compact.decode_body, compact.parse_request):
        try:
            parse(data)
        except ValueError:
            pass


def test_what_the_agent_encodes_on_micropython_the_ground_decodes_equal(ground, tmp_path):
    """The demo mission's predicted stream, as the agent reports it (seq,
    agent and deployment ids), in batches of 50 as request frames built by
    the firmware under the unix port (compact.request); through the bridge
    it is the stream the Console is sent, value for value, in fewer bytes
    than its JSON."""
    from tools import planner
    from tools.benches.planner import SAT
    from tools.scenario import START, load_job
    plan = planner.make_plan(SAT, load_job("demo-mission.json"), timeutil.parse_iso(START), 12)
    evs = [dict(e, seq=i + 2, agent_id="sat-25544", deployment_id="dep-0123456789abcdef")
           for i, e in enumerate(plan["events"])]
    path = tmp_path / "evs.json"
    path.write_text(json.dumps(evs))
    res = upy.run_code("""
import binascii, json, compact
evs = json.load(open(%r))
for i in range(0, len(evs), 50):
    print(binascii.hexlify(compact.request(i + 1, "POST", "/api/deployments/dep-0123456789abcdef/events",
                                           compact.EVENTS, evs[i:i + 50])).decode())
""" % str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    bridge, console = ground
    back, size = [], 0
    for line in res.stdout.split():
        data = bytes.fromhex(line)
        size += len(data)
        before = len(console.requests)
        assert len(bridge.feed(framing.encode(data))) == 1
        assert len(console.requests) == before + 1
        back += console.requests[-1][3]
    assert same(back, evs)
    assert size < len(json.dumps(evs, separators=(",", ":"))) / 4


def catalog_precisions():
    """(type, field, decimals) for every field the catalog gives a precision,
    an enriched type's spacecraft state included (firmware/events.py)."""
    out = []
    for etype in TYPES:
        line = events.SPEC.split("\n" + etype + " ")[1].split("\n")[0].split()
        out += [(etype, f.split(":")[0].rstrip("?"), int(f.split(":")[1]))
                for f in line if ":" in f]

    return out


@pytest.mark.parametrize("etype,field,d", catalog_precisions())
def test_a_number_at_its_catalog_precision_takes_no_decimals_byte_and_a_finer_one_comes_back_whole(
        etype, field, d):
    """A catalog field's float at the decimals the catalog gives it goes as
    a scaled integer (one byte fewer than the same number elsewhere); one
    finer than that, or -0.0, or a huge one, comes back exactly as it was."""
    def size(v, name=field):
        ev = {"type": etype, "payload": {name: v}}
        data = compact.encode_body(compact.EVENT, ev)
        assert same(compact.decode_body(data)[1], ev), (v, name)
        return len(data)
    at = round(1234.5678912, d)   # needs all d decimals
    other = "not_in_the_catalog"   # elsewhere: one byte for the field left out, its name, the value
    assert size(at) <= size(at, other) - (1 + 2 + len(other)) - 1
    for v in (at + 10 ** -(d + 2), -at, -0.0, 0.0, 1e300, -2.5e-9, float(10 ** 15)):
        size(v)


def test_an_enriched_events_spacecraft_state_goes_as_catalog_fields_and_comes_back_whole():
    """The spacecraft state in an enriched event (EVENTS.md "Enrichment",
    compact.ENRICHMENT) goes without its names, the sensors' doubles whole,
    and comes back equal; in a batch that saves each name's reference."""
    raw = {"actual_battery_percent": 96.0924641927097, "actual_temperature_c": 36.47700208592191,
           "lat": 50.807760736529055, "lon": None, "altitude_km": 363.25883841934046,
           "in_eclipse": True}
    batch = [events.make("window_step.started", "2026-01-01T00:00:0%dZ" % k, "job-1", "s1",
                         dict(raw, tier="high")) for k in range(3)]
    data = compact.encode_body(compact.EVENTS, batch)
    assert same(compact.decode_body(data)[1], batch)
    for ev in batch:   # the same members under names the catalog does not know
        ev["payload"] = {k.upper(): v for k, v in ev["payload"].items()}
    named = compact.encode_body(compact.EVENTS, batch)
    assert same(compact.decode_body(named)[1], batch)
    assert len(data) <= len(named) - sum(len(k) + 2 for k in raw) - 2 * 2 * len(raw)
