"""The satellite catalog: TLE parsing (with checksums), Keplerian elements,
the summary the planner needs, and the seed set in satellites.tle."""
import json
import math
import os
import re

import timeutil
import tle

from .db import now_iso

R_EARTH_KM = 6378.137
MU_KM3_S2 = 398600.4418
SEED_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "satellites.tle")
ELEMENT_FIELDS = ("altitude_km", "inclination_deg", "eccentricity", "raan_deg",
                  "arg_perigee_deg", "mean_anomaly_deg", "epoch")


def parse_tle(line1, line2):
    """Elements from a TLE, as the catalog stores them; ValueError with the
    reason if malformed. The lines are read by sim/tle.py, the one TLE reader
    (the world and the planner use it too)."""
    try:
        el = tle.parse_tle(line1, line2)
        norad = int(el["norad_id"])
    except (ValueError, IndexError) as exc:
        raise ValueError("malformed TLE: %s" % exc)
    epoch = el["epoch"]
    elements = {"norad_id": norad, "epoch": timeutil.iso_utc(epoch), "epoch_unix": round(epoch, 3)}
    for key in ("inclination_deg", "raan_deg", "eccentricity", "arg_perigee_deg",
                "mean_anomaly_deg", "mean_motion_rev_day"):
        elements[key] = el[key]
    if not 0 < elements["mean_motion_rev_day"] < 20 or not 0 <= elements["inclination_deg"] <= 180:
        raise ValueError("TLE elements out of range")
    return elements


def check_elements(el):
    """Keplerian elements dict; returns the reason it is invalid, or None."""
    if not isinstance(el, dict):
        return "elements must be an object"
    limits = {"altitude_km": (150, 40000), "inclination_deg": (0, 180), "eccentricity": (0, 0.9),
              "raan_deg": (0, 360), "arg_perigee_deg": (0, 360), "mean_anomaly_deg": (0, 360)}
    for name, (lo, hi) in limits.items():
        v = el.get(name, 0 if name not in ("altitude_km", "inclination_deg") else None)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            return "elements.%s must be a number in %s..%s" % (name, lo, hi)
    if "epoch" in el:
        try:
            timeutil.parse_iso(el["epoch"])
        except ValueError:
            return "elements.epoch must be an ISO 8601 UTC time"
    return None


def summary(sat):
    """{id, name, norad_id?, altitude_km, inclination_deg, period_min, tle_epoch?} of a
    catalog record (dict with satellite_id, name, tle or elements)."""
    out = {"id": sat["satellite_id"], "name": sat["name"]}
    if sat.get("tle"):
        el = parse_tle(sat["tle"][0], sat["tle"][1])
        n = el["mean_motion_rev_day"] * 2 * math.pi / 86400.0
        a = (MU_KM3_S2 / (n * n)) ** (1.0 / 3.0)
        out.update(norad_id=el["norad_id"], altitude_km=round(a - R_EARTH_KM, 1),
                   inclination_deg=el["inclination_deg"],
                   period_min=round(1440.0 / el["mean_motion_rev_day"], 3),
                   tle_epoch=el["epoch"], eccentricity=el["eccentricity"])
    else:
        el = sat["elements"]
        a = R_EARTH_KM + el["altitude_km"]
        period_min = 2 * math.pi * math.sqrt(a ** 3 / MU_KM3_S2) / 60.0
        out.update(altitude_km=el["altitude_km"], inclination_deg=el["inclination_deg"],
                   period_min=round(period_min, 3), eccentricity=el.get("eccentricity", 0))
        if sat.get("norad_id") is not None:
            out["norad_id"] = sat["norad_id"]
    return out


def read_seed(path=SEED_FILE):
    """[(name, line1, line2)] from a TLE file with name lines and # comments."""
    lines = [ln.rstrip("\n") for ln in open(path, encoding="utf-8")
             if ln.strip() and not ln.startswith("#")]
    out = []
    for i in range(0, len(lines) - 2, 3):
        out.append((lines[i].strip(), lines[i + 1], lines[i + 2]))
    return out


def add(db, satellite_id, name, tle=None, elements=None, bus=None, norad_id=None, replace=False):
    """Insert a satellite; returns its record. ValueError if invalid; KeyError if it
    exists and replace is False."""
    if tle is not None:
        el = parse_tle(tle[0], tle[1])
        norad_id = el["norad_id"]
        tle = [tle[0].rstrip(), tle[1].rstrip()]
    elif elements is not None:
        problem = check_elements(elements)
        if problem:
            raise ValueError(problem)
    else:
        raise ValueError("a satellite needs a tle or elements")
    with db.write() as c:
        exists = c.execute("SELECT 1 FROM satellites WHERE satellite_id = ?",
                           (satellite_id,)).fetchone()
        if exists and not replace:
            raise KeyError(satellite_id)
        c.execute("INSERT INTO satellites (satellite_id, name, norad_id, tle, elements, "
                  "bus, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(satellite_id) "
                  "DO UPDATE SET name = excluded.name, norad_id = excluded.norad_id, "
                  "tle = excluded.tle, elements = excluded.elements, bus = excluded.bus, "
                  "created_at = excluded.created_at",
                  (satellite_id, name, norad_id, json.dumps(tle) if tle else None,
                   json.dumps(elements) if elements else None,
                   json.dumps(bus) if bus else None, now_iso()))
    return get(db, satellite_id)


def seed(db):
    """Load the shipped satellites into an empty catalog."""
    if db.one("SELECT COUNT(*) FROM satellites")[0]:
        return
    for name, l1, l2 in read_seed():
        try:
            add(db, str(int(l1[2:7])), name, tle=(l1, l2))
        except KeyError:  # added meanwhile by another Console starting on the same database
            pass


def _record(row):
    rec = {"satellite_id": row["satellite_id"], "name": row["name"], "norad_id": row["norad_id"],
           "tle": json.loads(row["tle"]) if row["tle"] else None,
           "elements": json.loads(row["elements"]) if row["elements"] else None,
           "bus": json.loads(row["bus"]) if row["bus"] else None,
           "created_at": row["created_at"]}
    rec["orbit"] = summary(rec)
    return rec


AGENT_ID_NORAD = re.compile(r"^(?:sat-)?([0-9]{1,9})$")


def for_agent_id(db, agent_id):
    """The catalog satellite an agent id names -- `sat-25544` or `25544`:
    entry 25544, or the entry whose NORAD id is 25544 -- or None."""
    m = AGENT_ID_NORAD.match(agent_id or "")
    if not m:
        return None
    norad = int(m.group(1))
    if get(db, str(norad)) is not None:
        return str(norad)
    row = db.one("SELECT satellite_id FROM satellites WHERE norad_id = ? ORDER BY satellite_id "
                 "LIMIT 1", (norad,))
    return row["satellite_id"] if row else None


def get(db, satellite_id):
    row = db.one("SELECT * FROM satellites WHERE satellite_id = ?", (satellite_id,))
    return _record(row) if row else None


def all_satellites(db):
    return [_record(r) for r in db.query("SELECT * FROM satellites ORDER BY satellite_id")]
