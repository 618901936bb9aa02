"""lib/tmr.py: majority vote and scrubbing, under MicroPython and CPython."""


def test_one_upset_copy_is_outvoted_and_repaired_and_three_way_is_lost(portable):
    res = portable("""
        import json, tmr
        out = []
        for value in (412, "dep-1f2e", None, 0):
            for i in range(3):
                for bit in (0, 5, 13):
                    c = tmr.Cell(value)
                    c.flip(i, bit)
                    v, status = c.vote()
                    fixed = c.scrub()
                    out.append([v == value, status, fixed, c.copies == [value] * 3])
        c = tmr.Cell(7)
        c.flip(0, 1); c.flip(1, 2)
        lost = c.scrub()
        cells = {"seq": tmr.Cell(5), "mode": tmr.Cell("normal")}
        cells["seq"].flip(2, 3)
        print(json.dumps({"out": out, "lost": lost, "all": tmr.scrub_all(cells),
                          "after": cells["seq"].copies}))
        """).check()
    r = res.last_json
    assert all(row == [True, 1, 1, True] for row in r["out"]), r["out"]
    assert r["lost"] == 2
    assert r["all"] == [["seq"], []] and r["after"] == [5, 5, 5]
