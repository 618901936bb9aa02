"""Emulated MCUs: boot a stock MicroPython firmware image the user supplies,
deploy Umbra to it with stock mpremote, and run the board-side smoke scenario
(emu/smoke.py: integrity check, every module imported, a scheduler run, an
agent boot on the simulated clock).

    python -m tools.emu --firmware build-MPS2_AN385/firmware.elf               # QEMU
    python -m tools.emu --emulator renode --firmware build-STM32F4DISC/firmware.elf
    python -m tools.emu --attach /dev/pts/N [--ramfs-kb 128]    # a board already running

QEMU: `qemu-system-arm -machine mps2-an385` (Cortex-M3) with the UART on a pty.
MicroPython's qemu port has no writable filesystem, so the RAM disk of
lib/ramfs.py is mounted first (the firmware must be built with littlefs:
`make -C ports/qemu MICROPY_VFS_LFS2=1`). Renode: emu/stm32f4.resc (STM32F4
Discovery, USART2 on a pty); its flash filesystem is used as is.
Exit status: 0 smoke passed, 1 smoke failed, 2 emulator or image missing.
"""
import argparse
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
# the .mpy bundle (84 KB in 32 files, measured) plus littlefs overhead: 112 KB is
# too small. It leaves little of the ~140 KB heap of mps2-an385: that tier is a
# smoke test of import and boot, not of a job.
QEMU_RAMFS_KB = 128
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


def main(argv=None):
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
