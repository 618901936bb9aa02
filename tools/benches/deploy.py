"""Deploy to the virtual board: first deploy (everything copied), second
(idempotent: nothing copied), total .mpy bytes, and the manifest check on the
board."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

from tools import ROOT
from tools.deploy import deploy_to
from tools.vboard import VirtualBoard


def _snapshot(dest):
    for folder in ("firmware", "lib"):
        shutil.copytree(os.path.join(ROOT, folder), os.path.join(dest, folder),
                        ignore=shutil.ignore_patterns("__pycache__", "*.mpy"))
    shutil.copy(os.path.join(ROOT, "boot.py"), os.path.join(dest, "boot.py"))


def run():
    with tempfile.TemporaryDirectory(prefix="umbra-bench-deploy-") as tmp:
        src = os.path.join(tmp, "src")
        _snapshot(src)
        with VirtualBoard(os.path.join(tmp, "board")) as board:
            first = deploy_to(board.port, root=src, reset=False)
            second = deploy_to(board.port, root=src, reset=False)
            started = time.monotonic()
            proc = subprocess.run(
                [os.path.join(os.path.dirname(sys.executable), "mpremote"), "connect",
                 board.port, "resume", "exec", "import manifest; print(manifest.verify(''))"],
                capture_output=True, text=True, timeout=60)
            verify_s = time.monotonic() - started
            if proc.returncode != 0 or "[]" not in proc.stdout:
                raise RuntimeError("manifest.verify on the board: %s" % (proc.stdout + proc.stderr))
    return [
        {"name": "first deploy to virtual board", "value": first["seconds"], "unit": "s"},
        {"name": "files copied (first deploy)", "value": len(first["copied"]), "unit": "files"},
        {"name": "second deploy (idempotent)", "value": second["seconds"], "unit": "s"},
        {"name": "files copied (second deploy)", "value": len(second["copied"]), "unit": "files"},
        {"name": "deployed .mpy total", "value": first["mpy_bytes"], "unit": "bytes"},
        {"name": "manifest.verify on the board (incl. mpremote)",
         "value": round(verify_s, 3), "unit": "s"},
    ]
