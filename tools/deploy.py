"""`umbra deploy` / `make deploy PORT=…`: compile the firmware to .mpy and copy
it to a board with stock `mpremote`, idempotently, then verify and reset.

What lands on the board (paths relative to its filesystem root, the working
directory at boot):

    boot.py          source (a board runs boot.py, not boot.mpy)
    lib/<name>.mpy   every module of firmware/ and lib/ but the ground-only ones
                     (HOST_ONLY), compiled by mpy-cross
    umbra.json       the agent config, when --config is given
    manifest.json    SHA-256 of boot.py and every .mpy, firmware version,
                     deploy time (lib/manifest.py; boot.py verifies it)

Steps, each one `mpremote connect PORT resume …` (resume: no soft reset on
connect, so a board whose boot.py runs the agent is simply interrupted):

    1. read the hashes of those files on the board (hashlib on the board);
    2. copy only what differs (the manifest last, so an interrupted deploy
       fails the boot-time check instead of booting a mix); remove modules
       the previous manifest listed and this one does not, and any
       lib/<name>.py that would shadow a deployed lib/<name>.mpy;
    3. read the hashes back and compare every file (verified);
    4. reset the board (machine.reset(), or soft reset where there is none).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import click

from tools import ROOT

import manifest  # lib/manifest.py: the one definition of the manifest format

SOURCE_DIRS = ("firmware", "lib")
# Portable modules a board never imports: the planner runs on the ground (the
# Console's planning service; the agent needs planner_rules only), hostticks
# stands in for MicroPython's ticks on CPython. Flash and RAM disks are small.
HOST_ONLY = ("hostticks",)
BOOT = "boot.py"
CONFIG_NAME = "umbra.json"
MARKER = "UMBRA-BOARD"

# Board families -> mpy-cross -march (native code only; bytecode runs anywhere).
BOARD_MARCH = {
    "rp2040": "armv6m",
    "stm32f4": "armv7emsp",
    "esp32": "xtensawin",
    "esp8266": "xtensa",
    "mps2-an385": "armv7m",
}
MARCHES = ("x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
           "xtensa", "xtensawin", "rv32imc", "rv64imc")

# Run on the board: hash the named files, list lib/, read the old manifest.
BOARD_QUERY = """import os,json,hashlib,binascii
def _h(p):
 try:
  f=open(p,'rb')
 except OSError:
  return None
 d=hashlib.sha256();b=bytearray(512);m=memoryview(b)
 try:
  while 1:
   n=f.readinto(b)
   if not n:break
   d.update(m[:n])
 except OSError:
  return None
 finally:
  f.close()
 return binascii.hexlify(d.digest()).decode()
try:
 _l=os.listdir('lib')
except OSError:
 _l=None
try:
 with open('manifest.json') as _f:_m=json.load(_f)
except Exception:
 _m=None
print('%s',json.dumps({'h':dict((p,_h(p)) for p in %r),'lib':_l,'m':_m}))
del _h,_l,_m
"""

# Run on the board before copying: make lib/, drop stale or shadowing files.
BOARD_PREPARE = """import os
try:
 os.mkdir('lib')
except OSError:
 pass
for p in %r:
 try:
  os.remove(p)
 except OSError:
  pass
"""

# machine.reset() on boards; the unix port (virtual board) has only soft_reset.
BOARD_RESET = ("import time,machine\ntime.sleep_ms(100)\n"
               "getattr(machine,'reset',None) and machine.reset()\nmachine.soft_reset()\n")


class DeployError(Exception):
    pass


def march_for(name):
    """mpy-cross -march for a board family or an architecture name; None = bytecode."""
    if not name:
        return None
    name = name.lower()
    if name in BOARD_MARCH:
        return BOARD_MARCH[name]
    if name in MARCHES:
        return name
    raise DeployError("unknown --march %r: use one of %s, or a board: %s"
                      % (name, ", ".join(MARCHES), ", ".join(sorted(BOARD_MARCH))))


def tool_exe(name):
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return beside if os.path.exists(beside) else name


def firmware_version():
    try:
        import agentconfig
        return agentconfig.FIRMWARE_VERSION
    except Exception:  # a half-written agentconfig must not stop a deploy
        return "unknown"


# --- build -------------------------------------------------------------------

class Bundle:
    """The files of one deploy, compiled into `workdir`.

    files: [(remote path, local path, sha256 hex)] in copy order, manifest last."""

    def __init__(self, workdir, files, manifest_dict, mpy_bytes):
        self.workdir = workdir
        self.files = files
        self.manifest = manifest_dict
        self.mpy_bytes = mpy_bytes

    def digests(self):
        return dict((remote, digest) for remote, _, digest in self.files)


def module_sources(root=ROOT):
    out = []
    for folder in SOURCE_DIRS:
        src_dir = os.path.join(root, folder)
        for name in sorted(os.listdir(src_dir)):
            if name.endswith(".py") and not name.startswith(".") and name[:-3] not in HOST_ONLY:
                out.append((name[:-3], os.path.join(src_dir, name)))
    names = [n for n, _ in out]
    dupes = sorted(set(n for n in names if names.count(n) > 1))
    if dupes:
        raise DeployError("module names clash between firmware/ and lib/: %s" % ", ".join(dupes))
    return out


def compile_module(src, out, march=None):
    # -s: embed the bare file name, so tracebacks read "agent.py" and the
    # bytes (and their hash) do not depend on where the checkout lives.
    argv = [tool_exe("mpy-cross"), "-s", os.path.basename(src), "-o", out]
    if march:
        argv.append("-march=" + march)
    proc = subprocess.run(argv + [src], capture_output=True, text=True)
    if proc.returncode != 0:
        raise DeployError("mpy-cross failed on %s:\n%s" % (os.path.relpath(src, ROOT),
                                                          proc.stderr.strip()))


def _sha256_file(path):
    with open(path, "rb") as f:
        return manifest.sha256_hex(f.read())


def build(workdir, march=None, config=None, root=ROOT, deployed_at=None, frozen=False):
    """Compile and hash everything to deploy into workdir; return a Bundle.
    frozen: the board's firmware has Umbra's modules frozen in (flash):
    boot.py and the config only."""
    os.makedirs(os.path.join(workdir, "lib"), exist_ok=True)
    files = []
    mpy_bytes = 0
    jobs = [] if frozen else [(name, src, os.path.join(workdir, "lib", name + ".mpy"))
                              for name, src in module_sources(root)]
    with ThreadPoolExecutor(max_workers=4) as pool:  # one mpy-cross process per module
        for _ in pool.map(lambda job: compile_module(job[1], job[2], march), jobs):
            pass
    for name, _, out in jobs:
        mpy_bytes += os.path.getsize(out)
        files.append(("lib/%s.mpy" % name, out, _sha256_file(out)))
    boot = os.path.join(workdir, BOOT)
    shutil.copyfile(os.path.join(root, BOOT), boot)
    files.insert(0, (BOOT, boot, _sha256_file(boot)))
    checked = dict((remote, digest) for remote, _, digest in files)
    if config:
        cfg_local = os.path.join(workdir, CONFIG_NAME)
        try:
            with open(config) as f:
                json.load(f)
        except (OSError, ValueError) as exc:
            raise DeployError("bad --config %s: %s" % (config, exc))
        shutil.copyfile(config, cfg_local)
        # The config is data the agent may be told to change: hashed for the
        # idempotence check, not listed in the integrity manifest.
        files.append((CONFIG_NAME, cfg_local, _sha256_file(cfg_local)))
    if deployed_at is None:
        from tools.timefmt import now_iso
        deployed_at = now_iso()
    man = manifest.make(checked, firmware_version(), deployed_at, march or "")
    man_local = os.path.join(workdir, manifest.NAME)
    with open(man_local, "w") as f:
        f.write(manifest.dumps(man))
    files.append((manifest.NAME, man_local, _sha256_file(man_local)))
    return Bundle(workdir, files, man, mpy_bytes)


# --- the board, through stock mpremote -------------------------------------------

class Board:
    """A board reached with `mpremote connect PORT resume …` (one process per step)."""

    def __init__(self, port, timeout=120, echo=None):
        self.port = port
        self.timeout = timeout
        self.echo = echo
        self.calls = 0

    def mpremote(self, *args):
        argv = [tool_exe("mpremote"), "connect", self.port, "resume"] + list(args)
        self.calls += 1
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise DeployError("mpremote timed out after %ss on %s" % (self.timeout, self.port))
        except FileNotFoundError:
            raise DeployError("mpremote not found (run `make setup`)")
        if self.echo and proc.stdout.strip():
            self.echo(proc.stdout.rstrip())
        if proc.returncode != 0:
            raise DeployError("mpremote failed on %s (exit %s):\n%s"
                              % (self.port, proc.returncode,
                                 (proc.stdout + proc.stderr).strip()[-2000:]))
        return proc.stdout

    def query(self, paths):
        """{'h': {path: sha256 hex or None}, 'lib': [names] or None, 'm': old manifest}"""
        out = self.mpremote("exec", BOARD_QUERY % (MARKER, list(paths)))
        for line in reversed(out.splitlines()):
            if line.startswith(MARKER + " "):
                return json.loads(line[len(MARKER) + 1:])
        raise DeployError("the board did not answer the hash query (has it hashlib?):\n%s"
                          % out.strip()[-2000:])

    def write(self, bundle, copy, remove):
        args = ["exec", BOARD_PREPARE % (list(remove),)]
        lib_files = [local for remote, local, _ in copy if remote.startswith("lib/")]
        if lib_files:
            args += ["+", "fs", "cp", "-f"] + lib_files + [":lib/"]
        for remote, local, _ in copy:
            if not remote.startswith("lib/"):
                args += ["+", "fs", "cp", "-f", local, ":" + remote]
        self.mpremote(*args)

    def reset(self):
        self.mpremote("exec", "--no-follow", BOARD_RESET)


def plan(bundle, answer):
    """(copy, unchanged, remove) from what the board reported."""
    on_board = answer["h"]
    copy, unchanged = [], []
    for item in bundle.files:
        remote, _, digest = item
        if remote == manifest.NAME:
            continue
        (unchanged if on_board.get(remote) == digest else copy).append(item)
    man_item = bundle.files[-1]
    old = answer.get("m") or {}
    same_manifest = (isinstance(old, dict) and old.get("files") == bundle.manifest["files"]
                     and old.get("version") == bundle.manifest["version"]
                     and (old.get("march") or "") == bundle.manifest["march"]
                     and on_board.get(manifest.NAME) is not None)
    if not same_manifest:
        copy.append(man_item)  # written last
    else:
        unchanged.append(man_item)
    new_paths = set(remote for remote, _, _ in bundle.files)
    remove = []
    old_files = old.get("files") if isinstance(old, dict) else None
    if isinstance(old_files, dict):
        remove += sorted(p for p in old_files if p.startswith("lib/") and p not in new_paths)
    for name in answer.get("lib") or ():
        if name.endswith(".py") and "lib/%s.mpy" % name[:-3] in new_paths:
            remove.append("lib/" + name)  # a source file would shadow our .mpy
    return copy, unchanged, remove


def verify(bundle, answer, board_manifest_kept):
    """Paths whose hash on the board differs from what we deployed."""
    on_board = answer["h"]
    bad = []
    for remote, _, digest in bundle.files:
        if remote == manifest.NAME and board_manifest_kept:
            # The board keeps its manifest (same files; earlier deploy time).
            if on_board.get(remote) is None:
                bad.append(remote)
            continue
        if on_board.get(remote) != digest:
            bad.append(remote)
    return bad


def deploy_to(port=None, march=None, config=None, dry_run=False, reset=True, echo=None,
              root=ROOT, timeout=120, frozen=False):
    """Deploy to the board on `port`; return a summary dict.

    Raises DeployError on any failure (compile, mpremote, verification)."""
    started = time.monotonic()
    arch = march_for(march)
    say = echo or (lambda text: None)
    with tempfile.TemporaryDirectory(prefix="umbra-deploy-") as workdir:
        bundle = build(workdir, arch, config, root, frozen=frozen)
        summary = {"port": port, "version": bundle.manifest["version"], "march": arch or "",
                   "files": len(bundle.files), "mpy_bytes": bundle.mpy_bytes,
                   "copied": [], "unchanged": [], "removed": [], "verified": 0,
                   "dry_run": dry_run, "reset": False}
        if port is None:  # dry run without a board: everything would be copied
            summary["copied"] = [remote for remote, _, _ in bundle.files]
            summary["seconds"] = round(time.monotonic() - started, 3)
            return summary
        board = Board(port, timeout=timeout)
        paths = [remote for remote, _, _ in bundle.files]
        answer = board.query(paths)
        copy, unchanged, remove = plan(bundle, answer)
        summary["copied"] = [remote for remote, _, _ in copy]
        summary["unchanged"] = [remote for remote, _, _ in unchanged]
        summary["removed"] = remove
        if dry_run:
            summary["seconds"] = round(time.monotonic() - started, 3)
            return summary
        if copy or remove:
            say("copying %d file(s) to %s" % (len(copy), port))
            board.write(bundle, copy, remove)
        answer = board.query(paths + remove)
        kept = manifest.NAME in summary["unchanged"]
        bad = verify(bundle, answer, kept)
        leftovers = [p for p in remove if answer["h"].get(p) is not None]
        if bad or leftovers:
            raise DeployError("verification failed on %s: %s"
                              % (port, ", ".join(bad + ["%s (not removed)" % p
                                                        for p in leftovers])))
        summary["verified"] = len(bundle.files)
        if reset:
            board.reset()
            summary["reset"] = True
        summary["mpremote_calls"] = board.calls
        summary["seconds"] = round(time.monotonic() - started, 3)
        return summary


def format_summary(s):
    lines = []
    if s["dry_run"]:
        lines.append("dry run: nothing written")
        for path in s["copied"]:
            lines.append("  would copy  %s" % path)
        for path in s["removed"]:
            lines.append("  would remove %s" % path)
    else:
        for path in s["copied"]:
            lines.append("  copied    %s" % path)
        for path in s["removed"]:
            lines.append("  removed   %s" % path)
    lines.append("umbra %s (%s) -> %s: %d copied, %d unchanged, %d removed, %d verified, "
                 "%s .mpy bytes%s in %.2f s"
                 % (s["version"], s["march"] or "bytecode", s["port"] or "(no board)",
                    len(s["copied"]), len(s["unchanged"]), len(s["removed"]), s["verified"],
                    "{:,}".format(s["mpy_bytes"]), ", reset" if s["reset"] else "",
                    s["seconds"]))
    return "\n".join(lines)


@click.command()
@click.option("--port", default=None, help="serial device or pty of the board (mpremote connect)")
@click.option("--march", default=None,
              help="mpy-cross -march (armv6m, armv7emsp, xtensawin, …) or a board "
                   "(rp2040, stm32f4, esp32); default: portable bytecode")
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="agent config JSON, copied as umbra.json")
@click.option("--dry-run", is_flag=True, help="compile and compare; copy nothing")
@click.option("--no-reset", is_flag=True, help="do not reset the board after deploying")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.option("--frozen", is_flag=True,
              help="the board's firmware has Umbra frozen in: copy boot.py and the config only")
def deploy(port, march, config, dry_run, no_reset, as_json, frozen):
    """Compile firmware/ and lib/ to .mpy and copy them to a board with mpremote."""
    if not port and not dry_run:
        raise click.UsageError("--port is required (e.g. make deploy PORT=/dev/ttyACM0)")
    try:
        summary = deploy_to(port, march, config, dry_run=dry_run, reset=not no_reset,
                            echo=None if as_json else click.echo, frozen=frozen)
    except DeployError as exc:
        raise click.ClickException(str(exc))
    click.echo(json.dumps(summary) if as_json else format_summary(summary))
