"""`umbra sim fleet` and `umbra plot --fleet` (docs/fleet.md "Commands"): the
link windows and routes of a fleet, the links picture, and bad fleet files
refused with one line naming the satellite, exit 2, nothing computed."""
import json
import os
import subprocess
import sys

import pytest

from tools import ROOT
import fleetfile
import orbitio

UMBRA = os.path.join(os.path.dirname(sys.executable), "umbra")
TRAIN = os.path.join(ROOT, "examples", "fleets", "train-4.json")
SHELL = os.path.join(ROOT, "examples", "fleets", "shell-20.json")


def _umbra(*args):
    return subprocess.run([UMBRA] + list(args), capture_output=True, text=True, timeout=120)


def _train():
    with open(TRAIN) as f:
        return json.load(f)


def test_sim_fleet_prints_the_windows_and_the_route_through_the_train():
    r = _umbra("sim", "fleet", "--fleet", TRAIN, "--hours", "3", "--data-mb", "400", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [s["satellite_id"] for s in doc["fleet"]] == ["99901", "99902", "99903", "99904"]
    assert [(w["a"], w["b"]) for w in doc["windows"]] == [("99901", "99902"), ("99902", "99903"), ("99903", "99904")]
    route = doc["routes"][0]
    assert (route["from"], route["to"]) == ("99901", "99904")
    assert route["earliest"]["path"] == ["99901", "99902", "99903", "99904"]
    assert route["snapshot"]["path"] == route["earliest"]["path"]
    text = _umbra("sim", "fleet", "--fleet", TRAIN, "--hours", "3")
    assert text.returncode == 0
    assert "99901 > 99902 > 99903 > 99904" in text.stdout


def test_sim_fleet_shows_the_gain_of_waiting_at_a_chosen_time():
    r = _umbra("sim", "fleet", "--fleet", SHELL, "--hours", "6", "--at", "+2h26m",
               "--route", "99807:99815", "--data-mb", "4000", "--json")
    assert r.returncode == 0, r.stderr
    route = json.loads(r.stdout)["routes"][0]
    assert route["at"] == "2026-03-08T02:26:00Z"
    assert route["earliest"]["path"] == ["99807", "99815"]
    assert route["snapshot"]["path"] == ["99807", "99816", "99815"]
    assert route["gain_s"] > 300


def test_plot_fleet_draws_the_links(tmp_path):
    out = tmp_path / "links.png"
    r = _umbra("plot", "--fleet", TRAIN, "--hours", "2", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _bad(tmp_path, mutate):
    doc = _train()
    mutate(doc)
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.mark.parametrize("mutate,says", [
    (lambda d: d["fleet"][2].update(satellite_id="99901"), "satellite 99901 appears twice"),
    (lambda d: d["fleet"][1].update(role="relay"), "satellite 99902: unknown role 'relay'"),
    (lambda d: d["fleet"][3]["orbit"].update(altitude_km=-100), "satellite 99904: orbit does not parse"),
    (lambda d: d["fleet"][0]["orbit"].update(eccentricity=1.5), "satellite 99901: orbit does not parse"),
    (lambda d: d["fleet"][1].update(orbit={"tle": ["1 25544U", "2 25544"]}), "satellite 99902: orbit does not parse"),
    (lambda d: d["fleet"][2]["orbit"].pop("altitude_km"), "satellite 99903: orbit does not parse"),
    (lambda d: d["fleet"][0].update(bus={"battery_wh": -5}), "satellite 99901: bad bus"),
    (lambda d: d.update(fleet=[]), "the fleet is empty"),
    (lambda d: d["fleet"][1].update(satellite_id="train two"), "satellite 'train two': an id is"),
    (lambda d: d["fleet"][1].pop("satellite_id"), "fleet entry 2 has no satellite_id"),
])
def test_a_bad_fleet_is_one_line_naming_the_satellite_exit_2_and_nothing_run(tmp_path, mutate, says):
    path = _bad(tmp_path, mutate)
    out = tmp_path / "links.png"
    for args in (["sim", "fleet", "--fleet", path, "--json"], ["plot", "--fleet", path, "-o", str(out)]):
        r = _umbra(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert says in r.stderr
        assert r.stdout == "" and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_keplerian_orbits_are_carried_as_tles_that_fly_the_same_orbit():
    from sgp4.api import Satrec
    doc = _train()
    sats = fleetfile.load(doc)
    for entry, sat in zip(doc["fleet"], sats):
        el = orbitio.keplerian_elements(entry["orbit"], default_epoch=doc["epoch"])
        import orbit
        direct = orbit.Orbit(el)
        for dt in (0, 3600, 86400):
            p = direct.position(el["epoch"] + dt)
            q = sat["orbit"].position(el["epoch"] + dt)
            assert sum((a - b) ** 2 for a, b in zip(p, q)) ** 0.5 < 0.01   # km, over a day
        # and the lines are a TLE that SGP4 reads: same inclination and mean motion
        rec = Satrec.twoline2rv(*sat["tle"])
        assert abs(rec.inclo * 57.29577951308232 - entry["orbit"]["inclination_deg"]) < 1e-4
        assert rec.satnum_str == entry["satellite_id"]


def test_sim_fleet_agents_runs_every_satellites_firmware_against_a_console(tmp_path):
    r = _umbra("sim", "fleet", "--fleet", TRAIN, "--hours", "1", "--agents", "--dir", str(tmp_path / "run"), "--json")
    assert r.returncode == 0, r.stderr
    agents = json.loads(r.stdout)["agents"]["satellites"]
    assert [a["agent_id"] for a in agents] == ["sat-99901", "sat-99902", "sat-99903", "sat-99904"]
    for a in agents:
        assert a["outcome"] == "done" and a["boots"] == 1 and a["polls"] > 0
        assert a["sim_time"] == "2026-03-08T01:00:00Z"
    assert (tmp_path / "run" / "console.db").exists()
