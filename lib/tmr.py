"""Triple modular redundancy for the few RAM values that must never be wrong
(RELIABILITY.md "SEU detection and recovery"): each is held three times and
read by majority vote; a scrub repairs a single upset copy and reports a
three-way disagreement, which only a reload from the store can heal.

Values are ints, strings or None (floats go in as integers of a fine unit).
"""

OK = 0
CORRECTED = 1   # one copy differed: outvoted and rewritten
LOST = 2        # all three differ: the owner must restore from its store


class Cell:
    def __init__(self, value=None):
        self.copies = [value, value, value]

    def set(self, value):
        c = self.copies
        c[0] = value
        c[1] = value
        c[2] = value

    def vote(self):
        """(value, status): the majority value (None when there is none)."""
        a, b, c = self.copies
        if a == b:
            return a, (OK if a == c else CORRECTED)
        if a == c or b == c:
            return c, CORRECTED
        return None, LOST

    def scrub(self):
        """Repair a single upset copy; returns OK, CORRECTED or LOST."""
        value, status = self.vote()
        if status == CORRECTED:
            self.set(value)
        return status

    def flip(self, index, bit):
        """An SEU: flip one bit of one copy (the fault injector's door)."""
        v = self.copies[index]
        if v is None:
            v = 1 << bit
        elif isinstance(v, int):
            v ^= 1 << bit
        elif isinstance(v, str):
            # text cells hold ASCII ids: flip one of a character's 7 bits, so
            # the upset copy stays a string (MicroPython decodes UTF-8 only)
            raw = bytearray(v.encode())
            if raw:
                raw[(bit // 7) % len(raw)] ^= 1 << (bit % 7)
                v = bytes(raw).decode()
            else:
                v = chr(1 << (bit % 7))
        else:
            raw = bytearray(v)
            if raw:
                raw[(bit // 8) % len(raw)] ^= 1 << (bit % 8)
            v = bytes(raw)
        self.copies[index] = v


def scrub_all(cells):
    """Scrub every cell of a dict; returns (corrected names, lost names)."""
    corrected = []
    lost = []
    for name in cells:
        status = cells[name].scrub()
        if status == CORRECTED:
            corrected.append(name)
        elif status == LOST:
            lost.append(name)
    return corrected, lost
