"""Two-line elements -> an elements dict for orbit.Orbit (MODELS.md "Orbit").

A module of its own so that a node, which reads its TLE once at start-up,
does not keep the reader in its heap: orbit.parse_tle loads it for the call
(docs/sim.md "Memory"). TLE text with names and comments is
orbitio.read_tle_text.
"""
import timeutil
from orbit import DAY_S, check_elements


def tle_checksum(line):
    """TLE modulo-10 checksum of the first 68 characters (digits, '-' counts 1)."""
    total = 0
    for ch in line[:68]:
        if "0" <= ch <= "9":
            total += ord(ch) - 48
        elif ch == "-":
            total += 1
    return total % 10


def _tle_float(text, what):
    try:
        return float(text)
    except ValueError:
        raise ValueError("TLE: bad %s field %r" % (what, text))


def parse_tle(line1, line2, name=None):
    """Elements dict from the two lines of a TLE. ValueError when a line is
    malformed, a checksum is wrong or the two lines are not the same satellite."""
    line1 = line1.rstrip()
    line2 = line2.rstrip()
    for num, line in ((1, line1), (2, line2)):
        if len(line) < 69 or line[0] != str(num) or line[1] != " ":
            raise ValueError("TLE line %d: need 69 characters starting '%d '" % (num, num))
        if not line[68].isdigit() or tle_checksum(line) != int(line[68]):
            raise ValueError("TLE line %d: checksum mismatch (expected %d, line says %s)"
                             % (num, tle_checksum(line), line[68]))
    norad = line1[2:7].strip()
    if line2[2:7].strip() != norad:
        raise ValueError("TLE lines of two satellites (%s, %s)" % (norad, line2[2:7].strip()))
    yy = int(_tle_float(line1[18:20], "epoch year"))
    doy = _tle_float(line1[20:32], "epoch day")
    year = 1900 + yy if yy >= 57 else 2000 + yy
    epoch = timeutil.days_from_civil(year, 1, 1) * DAY_S + (doy - 1) * DAY_S
    ecc = _tle_float("0." + line2[26:33].strip(), "eccentricity")
    el = {
        "source": "tle", "name": (name or "").strip() or norad, "norad_id": norad,
        "epoch": epoch,
        "ndot_rev_day2": _tle_float(line1[33:43], "mean motion derivative"),
        "inclination_deg": _tle_float(line2[8:16], "inclination"),
        "raan_deg": _tle_float(line2[17:25], "RAAN"),
        "eccentricity": ecc,
        "arg_perigee_deg": _tle_float(line2[34:42], "argument of perigee"),
        "mean_anomaly_deg": _tle_float(line2[43:51], "mean anomaly"),
        "mean_motion_rev_day": _tle_float(line2[52:63], "mean motion"),
        "tle": (line1, line2),
    }
    return check_elements(el)
