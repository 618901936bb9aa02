"""The layout is the architecture (STYLE.md): `lib/` knows nothing of ours
outside `lib/`; `firmware/` imports only `lib/` and `firmware/`; `sim/` may
import `lib/` and `firmware/` (the world drives the agent); nothing portable
imports `tools/` (the host). Read from the source: every `import`, `from ...
import`, `__import__("name")` and overlay `_load("name")`, at any depth."""
import ast
import os

import pytest

from tools import PORTABLE_DIRS, ROOT

ALLOWED = {"lib": {"lib"}, "firmware": {"lib", "firmware"}, "sim": {"lib", "firmware", "sim"}}
LOADERS = ("__import__", "_load")  # overlays: a module imported by name at run time


def _ours():
    """module name -> the folder it lives in (the portable folders are flat)."""
    where = {}
    for d in PORTABLE_DIRS:
        for name in os.listdir(d):
            if name.endswith(".py"):
                where[name[:-3]] = os.path.basename(d)
    for name in os.listdir(os.path.join(ROOT, "tools")):
        base = name[:-3] if name.endswith(".py") else name
        if os.path.isdir(os.path.join(ROOT, "tools", name)) or name.endswith(".py"):
            where.setdefault(base, "tools")
    where["tools"] = "tools"
    return where


def _imports(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in LOADERS and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            yield node.lineno, node.args[0].value


def crossings(folders=PORTABLE_DIRS):
    """[(file:line, module, its folder)] for every import against the directions."""
    where = _ours()
    bad = []
    for d in folders:
        folder = os.path.basename(d)
        for name in sorted(os.listdir(d)):
            if not name.endswith(".py"):
                continue
            path = os.path.join(d, name)
            for line, module in _imports(path):
                home = where.get(module)
                if home is not None and home not in ALLOWED[folder]:
                    bad.append(("%s/%s:%d" % (folder, name, line), module, home))
    return bad


def test_imports_go_lib_then_firmware_then_sim_never_back_and_never_to_tools():
    assert crossings() == []


def test_the_check_sees_an_import_against_the_directions(tmp_path):
    """The planner as it was in firmware/ (it imported the world models) fails it."""
    fw = tmp_path / "firmware"
    fw.mkdir()
    (fw / "planner.py").write_text("import planner_rules\n\ndef plan():\n"
                                   "    import spacecraft\n    from tools import ROOT\n"
                                   "    return __import__(\"orbit\")\n")
    got = [(m, h) for _, m, h in crossings([str(fw)])]
    assert got == [("spacecraft", "sim"), ("tools", "tools"), ("orbit", "sim")]


@pytest.mark.parametrize("folder", ["lib", "firmware", "sim"])
def test_every_portable_folder_is_checked(folder):
    assert folder in {os.path.basename(d) for d in PORTABLE_DIRS}
