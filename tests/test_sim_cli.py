"""`umbra sim windows` and `umbra sim run` as a user runs them: a subprocess."""
import json
import os
import subprocess

import pytest

import tools

UMBRA = os.path.join(tools.ROOT, ".venv", "bin", "umbra")
ISS = os.path.join(tools.ROOT, "tests", "data", "iss-2018-07-03.tle")
ELEMENTS = '{"altitude_km": 550, "inclination_deg": 97.6, "epoch": "2026-03-08T00:00:00Z"}'


def umbra(*args):
    return subprocess.run([UMBRA, "sim"] + list(args), capture_output=True, text=True, timeout=60)


def test_windows_prints_a_table_of_eclipses_and_passes():
    p = umbra("windows", "--satellite", "ISS", "--tle", ISS, "--hours", "6")
    assert p.returncode == 0, p.stderr
    assert "eclipse-1" in p.stdout and "contact-1" in p.stdout and "sunlit-1" in p.stdout
    assert "2018-07-03T20:06:25Z" in p.stdout          # first eclipse entry
    assert "santiago" in p.stdout


def test_windows_json_has_the_plan_window_shape():
    p = umbra("windows", "--satellite", "sat-1", "--elements", ELEMENTS, "--start", "2026-03-08T00:00:00Z",
              "--hours", "12", "--min-elevation", "10", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["satellite"]["id"] == "sat-1" and out["min_elevation_deg"] == 10
    kinds = {w["kind"] for w in out["windows"]}
    assert kinds == {"sunlit", "eclipse", "contact"}
    for w in out["windows"]:
        assert {"id", "kind", "start", "end", "duration_s"} <= set(w)
        if w["kind"] == "contact":
            assert w["elevation_peak_deg"] >= 10 and w["station"]
    assert out["hazards"]["hazards_count"] > 0


def test_run_prints_the_state_timeline_at_each_boundary():
    p = umbra("run", "--satellite", "ISS", "--tle", ISS, "--hours", "3", "--load-w", "25", "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)["timeline"]
    events = [r["event"] for r in rows]
    assert events[0] == "start" and "eclipse entry" in events and "eclipse exit" in events
    assert any(e.startswith("AOS ") for e in events)
    assert max(r["temperature_c"] for r in rows) > 75.0      # a 25 W step in sun passes the limit
    assert rows[-1]["time"] == "2018-07-03T22:25:57Z"
    table = umbra("run", "--satellite", "ISS", "--tle", ISS, "--hours", "3")
    assert table.returncode == 0 and "eclipse entry" in table.stdout and "%" in table.stdout


@pytest.mark.parametrize("args,message", [
    (("windows", "--satellite", "X", "--tle", "BAD_TLE"), "checksum mismatch"),
    (("windows", "--satellite", "X", "--elements", '{"altitude_km": -100, "epoch": 0}'), "below the Earth's surface"),
    (("windows", "--satellite", "X", "--elements", ELEMENTS, "--station", "atlantis"), "unknown station 'atlantis'"),
    (("windows", "--satellite", "X", "--elements", ELEMENTS, "--start", "2026-02-30X10:00:00Z"), "bad ISO 8601 time"),
    (("windows", "--satellite", "X", "--tle", "/no/such/file.tle"), "cannot read TLE file"),
    (("run", "--satellite", "X", "--elements", "{not json"), "not valid JSON"),
    (("run", "--satellite", "X", "--elements", ELEMENTS, "--bus", '{"battery": 1}'), "unknown bus parameter"),
    (("windows", "--satellite", "X"), "exactly one of --tle"),
    (("windows", "--satellite", "X", "--elements", ELEMENTS, "--hours", "0"), "--hours"),
])
def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path, args, message):
    if "BAD_TLE" in args:
        with open(ISS) as f:
            text = f.read().replace("0  9993", "0  9994")
        bad = tmp_path / "bad.tle"
        bad.write_text(text)
        args = tuple(str(bad) if a == "BAD_TLE" else a for a in args)
    p = umbra(*args)
    assert p.returncode in (1, 2)
    assert message in p.stderr
    assert "Traceback" not in p.stderr + p.stdout
