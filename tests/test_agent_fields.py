"""The agent's state in one place (STYLE.md: declare an object's fields where
the class is): every field any firmware module sets on the Agent is listed,
with what it holds, in the fields block of `class Agent` (firmware/agent.py),
and every field listed there is set somewhere."""
import os
import re

from tools import ROOT

FIRMWARE = os.path.join(ROOT, "firmware")


def declared():
    text = open(os.path.join(FIRMWARE, "agent.py"), encoding="utf-8").read()
    block = text[text.index("    # --- fields\n"):text.index("    # --- end of fields\n")]
    return set(re.findall(r"^    #   (\w+) ", block, re.M))


def assigned():
    """Fields set on the agent: `ag.x = ...` in any firmware module, and
    `self.x = ...` inside class Agent."""
    found = {}
    for name in sorted(os.listdir(FIRMWARE)):
        if not name.endswith(".py"):
            continue
        text = open(os.path.join(FIRMWARE, name), encoding="utf-8").read()
        if name == "agent.py":
            agent_class = text[text.index("class Agent:"):]
            nxt = re.search(r"^class ", agent_class[1:], re.M)
            text_self = agent_class[:nxt.start() + 1] if nxt else agent_class
            for f in re.findall(r"\bself\.(\w+)\s*=(?!=)", text_self):
                found.setdefault(f, name)
        for f in re.findall(r"\bag\.(\w+)\s*=(?!=)", text):
            found.setdefault(f, name)
    return found


def test_every_field_set_on_the_agent_is_declared_in_agent_py():
    missing = dict((f, where) for f, where in assigned().items() if f not in declared())
    assert missing == {}, "set but not declared in class Agent's fields: %r" % missing


def test_every_declared_field_is_set_somewhere():
    assert sorted(declared() - set(assigned())) == []


def test_the_check_sees_an_undeclared_field(tmp_path, monkeypatch):
    fw = tmp_path / "firmware"
    fw.mkdir()
    agent = open(os.path.join(FIRMWARE, "agent.py"), encoding="utf-8").read()
    (fw / "agent.py").write_text(agent)
    (fw / "newthing.py").write_text("def go(ag):\n    ag.surprise = 1\n")
    monkeypatch.setattr("test_agent_fields.FIRMWARE", str(fw))
    assert "surprise" in assigned() and "surprise" not in declared()
