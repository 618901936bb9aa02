"""`umbra deploy`: compile with mpy-cross, copy with stock mpremote to a
(virtual) board, idempotently; the SHA-256 manifest catches tampered modules;
the portable sources avoid port-specific features."""
import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tools import ROOT
from tools.deploy import HOST_ONLY, deploy_to, march_for, DeployError
from tools.vboard import VirtualBoard

MPREMOTE = os.path.join(os.path.dirname(sys.executable), "mpremote")
SOURCE_DIRS = ("firmware", "lib")


@pytest.fixture
def snapshot(tmp_path):
    """A frozen copy of the sources: others may edit the checkout meanwhile."""
    root = tmp_path / "src"
    for folder in SOURCE_DIRS:
        shutil.copytree(os.path.join(ROOT, folder), root / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.mpy"))
    shutil.copy(os.path.join(ROOT, "boot.py"), root / "boot.py")
    return root


@pytest.fixture
def board(tmp_path):
    with VirtualBoard(tmp_path / "board") as vb:
        yield vb


def board_dir(board):
    return board.directory


def modules(root):
    return sorted(name[:-3] for folder in SOURCE_DIRS
                  for name in os.listdir(os.path.join(root, folder))
                  if name.endswith(".py") and name[:-3] not in HOST_ONLY)


def on_board(board, code):
    proc = subprocess.run([MPREMOTE, "connect", board.port, "resume", "exec", code],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def wait_for(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def umbra_deploy(*args):
    return subprocess.run([sys.executable, "-m", "tools.cli", "deploy"] + list(args),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_first_deploy_copies_boot_modules_config_and_manifest_then_resets(board, snapshot,
                                                                          tmp_path):
    cfg = tmp_path / "sat.json"
    cfg.write_text(json.dumps({"agent_id": "sat-7"}))
    s = deploy_to(board.port, config=str(cfg), root=str(snapshot))
    expected = (["boot.py"] + ["lib/%s.mpy" % m for m in modules(snapshot)]
                + ["umbra.json", "manifest.json"])
    assert sorted(s["copied"]) == sorted(expected)
    assert s["copied"][-1] == "manifest.json"  # written last
    assert s["verified"] == len(expected) and s["unchanged"] == []
    assert s["reset"] and wait_for(lambda: board.restarts == 1)
    root = board_dir(board)
    man = json.load(open(os.path.join(root, "manifest.json")))
    assert set(man["files"]) == set(expected) - {"umbra.json", "manifest.json"}
    for path, digest in man["files"].items():
        with open(os.path.join(root, path), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, path
    assert man["version"] and man["deployed_at"].endswith("Z")
    assert json.load(open(os.path.join(root, "umbra.json"))) == {"agent_id": "sat-7"}


def test_second_deploy_copies_nothing_and_still_verifies(board):
    first = umbra_deploy("--port", board.port, "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    manifest_before = open(os.path.join(board_dir(board), "manifest.json")).read()
    second = umbra_deploy("--port", board.port)
    assert second.returncode == 0, second.stdout + second.stderr
    assert " 0 copied, " in second.stdout
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert "%d unchanged" % summary["files"] in second.stdout
    assert "%d verified" % summary["files"] in second.stdout
    assert open(os.path.join(board_dir(board), "manifest.json")).read() == manifest_before


def test_tampered_module_is_named_by_manifest_verify_on_the_board(board, snapshot, mpy):
    deploy_to(board.port, root=str(snapshot), reset=False)
    assert on_board(board, "import manifest; print(manifest.verify(''))").strip() == "[]"
    victim = os.path.join(board_dir(board), "lib", "scheduler.mpy")
    data = bytearray(open(victim, "rb").read())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    open(victim, "wb").write(bytes(data))
    out = on_board(board, "import manifest; print(manifest.verify(''))")
    assert "('lib/scheduler.mpy', 'mismatch')" in out
    # The same check from the repository's source, with the board folder as root.
    res = mpy("import manifest, json\nprint(json.dumps(manifest.verify(%r)))" % board_dir(board))
    assert res.last_json == [["lib/scheduler.mpy", "mismatch"]]


def test_redeploy_repairs_only_the_damaged_module(board, snapshot):
    deploy_to(board.port, root=str(snapshot), reset=False)
    victim = os.path.join(board_dir(board), "lib", "clock.mpy")
    open(victim, "ab").write(b"\x00")
    s = deploy_to(board.port, root=str(snapshot), reset=False)
    assert s["copied"] == ["lib/clock.mpy"]
    assert "manifest.json" in s["unchanged"]
    assert on_board(board, "import manifest; print(manifest.verify(''))").strip() == "[]"


def test_modules_dropped_from_the_firmware_and_shadowing_sources_are_removed(board, snapshot):
    (snapshot / "lib" / "zz_retired.py").write_text("X = 1\n")
    deploy_to(board.port, root=str(snapshot), reset=False)
    assert os.path.exists(os.path.join(board_dir(board), "lib", "zz_retired.mpy"))
    (snapshot / "lib" / "zz_retired.py").unlink()
    # A stray source copy would be imported instead of the deployed .mpy.
    shutil.copy(snapshot / "lib" / "clock.py", os.path.join(board_dir(board), "lib", "clock.py"))
    s = deploy_to(board.port, root=str(snapshot), reset=False)
    assert sorted(s["removed"]) == ["lib/clock.py", "lib/zz_retired.mpy"]
    assert s["copied"] == ["manifest.json"]
    left = os.listdir(os.path.join(board_dir(board), "lib"))
    assert "zz_retired.mpy" not in left and "clock.py" not in left
    assert "clock.mpy" in left


def test_dry_run_compares_but_writes_nothing(board, snapshot):
    s = deploy_to(board.port, root=str(snapshot), dry_run=True)
    assert "manifest.json" in s["copied"] and s["verified"] == 0
    assert os.listdir(board_dir(board)) == ["lib"]
    assert os.listdir(os.path.join(board_dir(board), "lib")) == []
    assert board.restarts == 0


def test_march_compiles_native_code_for_the_board_and_bytecode_stays_portable(board, snapshot):
    (snapshot / "lib" / "zz_native.py").write_text(
        "import micropython\n@micropython.native\ndef f():\n    return 1\n")
    s = deploy_to(board.port, march="rp2040", root=str(snapshot), reset=False)
    assert s["march"] == "armv6m" and s["verified"] == s["files"]
    man = json.load(open(os.path.join(board_dir(board), "manifest.json")))
    assert man["march"] == "armv6m"
    # Native code was compiled for a Cortex-M0+: the x64 unix port refuses it...
    out = on_board(board, "try:\n import zz_native\nexcept ValueError as e:\n print('refused', e)")
    assert "refused incompatible .mpy arch" in out
    # ...while plain bytecode modules import anywhere.
    assert "ok" in on_board(board, "import timeutil, scheduler; print('ok')")


def test_unknown_march_and_bad_config_are_refused_before_touching_the_board(board, tmp_path):
    res = umbra_deploy("--port", board.port, "--march", "z80")
    assert res.returncode == 1 and "unknown --march 'z80'" in res.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = umbra_deploy("--port", board.port, "--config", str(bad))
    assert res.returncode == 1 and "bad --config" in res.stderr
    assert os.listdir(os.path.join(board_dir(board), "lib")) == []
    with pytest.raises(DeployError):
        march_for("armv99")
    assert march_for("stm32f4") == "armv7emsp" and march_for("esp32") == "xtensawin"
    assert march_for(None) is None


def test_missing_port_is_a_clear_error(tmp_path):
    res = umbra_deploy("--port", str(tmp_path / "ttyNOPE"))
    assert res.returncode == 1
    assert "mpremote failed on %s" % (tmp_path / "ttyNOPE") in res.stderr
    res = umbra_deploy()
    assert res.returncode == 2 and "--port is required" in res.stderr


def test_manifest_verify_names_missing_files_and_bad_manifests(portable, tmp_path):
    res = portable("""
        import json, os, manifest
        root = %r
        os.mkdir(root + '/lib')
        with open(root + '/lib/a.mpy', 'wb') as f:
            f.write(b'abc')
        files = {'lib/a.mpy': manifest.sha256_hex(b'abc'), 'lib/gone.mpy': '0' * 64}
        print(json.dumps(manifest.verify(root)))
        with open(root + '/manifest.json', 'w') as f:
            f.write(json.dumps(manifest.make(files, '1.0', 'now')))
        print(json.dumps(manifest.verify(root)))
        with open(root + '/manifest.json', 'w') as f:
            f.write('{"files": 3}')
        print(json.dumps(manifest.verify(root)))
    """ % str(tmp_path))
    assert res.returncode == 0, res.stdout
    assert res.json_lines == [[["manifest.json", "no_manifest"]],
                              [["lib/gone.mpy", "missing"]],
                              [["manifest.json", "bad_manifest"]]]


# --- portability scan ----------------------------------------------------------------

# Never on a board (or not in MicroPython at all).
FORBIDDEN = {"asyncio", "uasyncio", "_thread", "threading", "dataclasses", "typing",
             "multiprocessing", "concurrent", "subprocess"}
# Port-specific or CPython-only: a module-level import must sit in a try
# that catches ImportError (imports inside functions are lazy, board-only paths).
GUARDED = {"machine", "micropython", "pyb", "esp", "esp32", "rp2", "network", "bluetooth",
           "functools", "logging", "abc", "zlib", "base64", "enum", "pathlib", "termios", "tty"}
CATCHES_IMPORT_ERROR = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _catches_import_error(handler):
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(t, ast.Name) and t.id in CATCHES_IMPORT_ERROR for t in types)


def _type_checking_only(node):
    test = node.test
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Constant) and test.value is False))


def portability_problems(path):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    problems = []

    def visit(node, guarded, in_function, type_checking):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""])
            for name in names:
                top = name.split(".")[0]
                if top in FORBIDDEN and not (top == "typing" and type_checking):
                    problems.append("%s:%d imports %s" % (path, node.lineno, name))
                elif top in GUARDED and not guarded and not in_function:
                    problems.append("%s:%d imports %s without try/except ImportError"
                                    % (path, node.lineno, name))
        if sys.version_info >= (3, 10) and isinstance(node, ast.Match):
            problems.append("%s:%d uses match (not in MicroPython)" % (path, node.lineno))
        for field, value in ast.iter_fields(node):
            children = value if isinstance(value, list) else [value]
            for child in children:
                if not isinstance(child, ast.AST):
                    continue
                g = guarded or (isinstance(node, ast.Try) and field == "body"
                                and any(_catches_import_error(h) for h in node.handlers))
                f = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                t = type_checking or (isinstance(node, ast.If) and field == "body"
                                      and _type_checking_only(node))
                visit(child, g, f, t)

    visit(tree, False, False, False)
    return problems


def test_portable_sources_avoid_port_specific_imports():
    paths = [os.path.join(ROOT, "boot.py")] + [
        os.path.join(ROOT, folder, name) for folder in SOURCE_DIRS
        for name in sorted(os.listdir(os.path.join(ROOT, folder))) if name.endswith(".py")]
    problems = [p for path in paths for p in portability_problems(path)]
    assert problems == []


def test_portability_scan_catches_what_it_forbids(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nimport machine\nfrom dataclasses import dataclass\n"
                   "try:\n    import micropython\nexcept ImportError:\n    pass\n"
                   "def f():\n    import machine\n"
                   "if TYPE_CHECKING:\n    import typing\n"
                   "import typing\n")
    found = portability_problems(str(bad))
    assert [p.split(":")[1].split()[0] for p in found] == ["1", "2", "3", "12"]
