"""UTC calendar arithmetic without the port's epoch quirks (boards use 2000 or
1970 as their epoch; we always speak Unix seconds and ISO 8601 UTC)."""


def days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def iso_utc(epoch_s, ms=None):
    """Unix seconds (an int, or a float on the host) -> '2026-03-07T14:23:45Z'
    (whole seconds; with ms, '2026-03-07T14:23:45.120Z')."""
    s = epoch_s if isinstance(epoch_s, int) else int(epoch_s // 1)
    days, rem = divmod(s, 86400)
    y, m, d = civil_from_days(days)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    if ms is None:
        return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (y, m, d, hh, mm, ss)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (y, m, d, hh, mm, ss, ms)


def parse_iso(text):
    """'YYYY-MM-DDTHH:MM:SS[.fff][Z|+00:00]' -> Unix seconds, an int (the
    fraction dropped: an absolute time on board is never a float, FACTS.md).
    ValueError if malformed."""
    return parse_iso_ms(text)[0]


def parse_iso_ms(text):
    """The same -> (Unix seconds, milliseconds of the fraction), both ints."""
    if not isinstance(text, str) or len(text) < 19:
        raise ValueError("bad ISO 8601 time: %r" % (text,))
    try:
        y = int(text[0:4])
        mo = int(text[5:7])
        d = int(text[8:10])
        hh = int(text[11:13])
        mi = int(text[14:16])
        ss = int(text[17:19])
    except (ValueError, TypeError):
        raise ValueError("bad ISO 8601 time: %r" % (text,))
    if text[4] != "-" or text[7] != "-" or text[10] not in "T " or text[13] != ":" or text[16] != ":":
        raise ValueError("bad ISO 8601 time: %r" % (text,))
    if not (1 <= mo <= 12 and 1 <= d <= 31 and hh < 24 and mi < 60 and ss < 61):
        raise ValueError("bad ISO 8601 time: %r" % (text,))
    rest = text[19:]
    ms = 0
    if rest.startswith("."):
        i = 1
        while i < len(rest) and rest[i].isdigit():
            i += 1
        ms = int((rest[1:i] + "00")[:3]) if i > 1 else 0
        rest = rest[i:]
    offset = 0
    if rest in ("", "Z", "z"):
        pass
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        try:
            offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0] == "+" else -1)
        except ValueError:
            raise ValueError("bad ISO 8601 time: %r" % (text,))
    else:
        raise ValueError("bad ISO 8601 time: %r" % (text,))
    return days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - offset, ms
