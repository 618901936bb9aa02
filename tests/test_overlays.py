"""Overlays (firmware/agent.py `_load` / `_unload`): a module loaded for a task
and dropped after takes with it whatever its import brought into RAM, so a
new transitive import cannot stay behind; what was in RAM before stays.
Under the real MicroPython unix port, where a module lives in the heap."""
import json


def test_an_overlay_and_what_its_import_brought_in_leave_ram_together(mpy, tmp_path):
    (tmp_path / "ovl_main.py").write_text("import ovl_helper\nimport timeutil\n\n"
                                          "def answer():\n    return ovl_helper.VALUE\n")
    (tmp_path / "ovl_helper.py").write_text("import ovl_deeper\nVALUE = ovl_deeper.VALUE + 1\n")
    (tmp_path / "ovl_deeper.py").write_text("VALUE = 41\n")
    res = mpy("""
import sys
sys.path.insert(0, %r)
import json, agent, timeutil
before = sorted(sys.modules)
got = agent._load("ovl_main").answer()
loaded = sorted(m for m in sys.modules if m.startswith("ovl_"))
agent._unload("ovl_main")
print(json.dumps([got, loaded, sorted(sys.modules) == before,
                  [m for m in sys.modules if m.startswith("ovl_")], "timeutil" in sys.modules]))
""" % str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    got, loaded, same, left, kept = res.last_json
    assert got == 42 and loaded == ["ovl_deeper", "ovl_helper", "ovl_main"]
    assert left == [] and same and kept  # timeutil was resident before: it stays


def test_every_overlay_the_agent_loads_leaves_nothing_behind(mpy):
    """Each of the agent's overlays, loaded and dropped as the agent does it."""
    names = ["bootup", "accept", "announce", "contact", "deadletter", "workload", "transfer", "prim_eclipse",
             "prim_window", "prim_pass", "handlers", "planner_rules"]
    res = mpy("""
import sys, json, agent
out = {}
for name in %s:
    before = sorted(sys.modules)
    agent._load(name)
    agent._unload(name)
    out[name] = [m for m in sys.modules if m not in before]
print(json.dumps(out))
""" % json.dumps(names))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.last_json == dict((n, []) for n in names)


def test_the_journals_open_leaves_its_boot_only_code_out_of_ram(mpy, tmp_path):
    """Journal.open runs the recovery of its two stores and the outbox
    (journalopen.py, lib/storeopen.py), loaded for the call: after it, a
    reopened journal holds what was committed and neither module is in RAM."""
    res = mpy("""
import sys, json
from journal import Journal
before = sorted(sys.modules)
j = Journal(%r).open()
j.emit(1, "dep-1", '{"type":"x"}', [["set", "mode", "normal"]])
j = Journal(%r).open()
print(json.dumps([j.state["seq"], [m for m in sys.modules if m not in before]]))
""" % (str(tmp_path), str(tmp_path)))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.last_json == [1, []]


def test_the_constellation_roles_overlays_leave_only_the_resident_part(mpy):
    """A satellite with an ISL port keeps only constellation.py (its ISL task);
    the role (cstrole, while a job is held) and its per-call parts (cstrare,
    cstlate, loaded while the role is in RAM) bring nothing else in, and
    dropping the role leaves RAM as it was before the job."""
    res = mpy("""
import sys, json, agent, constellation
base = sorted(sys.modules)
agent._load("cstrole")
role = sorted(sys.modules)
out = {"role": [m for m in role if m not in base]}
for name in ("cstrare", "cstlate"):
    agent._load(name)
    agent._unload(name)
    out[name] = [m for m in sys.modules if m not in role]
agent._unload("cstrole")
out["after"] = [m for m in sys.modules if m not in base]
print(json.dumps(out))
""")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.last_json == {"role": ["cstrole"], "cstrare": [], "cstlate": [], "after": []}


def test_the_closers_role_leaves_ram_for_the_downlink_once_nothing_is_left_to_tell(mpy):
    """The transfer phase (every step resolved) with every notice acknowledged
    and every step done here told: the ISL task drops the role (cstrole) for
    the pass; a notice still queued, or a step done here not yet told, keeps it."""
    res = mpy("""
import sys, json, agent, constellation
class Journal:
    pass
class Ag:
    pass
ag = Ag(); ag.journal = Journal()
steps = {"a": {"status": "done", "told": True}, "b": {"status": "done", "remote": "s2"}}
ag.journal.state = {"steps": steps}
job = {"phase": "transfer", "steps": [{"id": "a"}, {"id": "b"}],
       "cst": {"q": [], "me": "s1", "own": {"a": ["s1", 1], "b": ["s2", 1]}}}
out = [constellation._told_all(ag, job)]
job["cst"]["q"] = [["s2", "{}", 0, "done:a:1"]]
out.append(constellation._told_all(ag, job))
job["cst"]["q"] = []
steps["a"]["told"] = False
out.append(constellation._told_all(ag, job))
steps["a"]["told"] = True
job["phase"] = "run"
out.append(constellation._told_all(ag, job))
print(json.dumps(out))
""")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.last_json == [True, False, False, False]
