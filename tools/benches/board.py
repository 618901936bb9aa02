"""The emulated MCUs (tools/emu.py): per target (an500: Cortex-M7 with
doubles, an385: Cortex-M3 with single floats) and per way of carrying the code
(frozen into the image; .mpy on the board's flash, deployed over the REPL),
the lowest GC heap at which the standard pipeline (compute cut 1/200, on the
real clock: boot.py -> agent -> UART1 -> umbra bridge -> Console) completes,
the image's bytes, and the job's wall time; on the targets with doubles, the
same for the demo mission (its world on the board, on the simulated clock:
docs/boards.md "The demo mission"), which completes only when the Console's
events match the plan event for event. Skipped (no figures) where the
tier's tools are missing.

Each run starts from the same flash: the board's disk file right after the
deploy, copied back before every run (the host file is the board's flash)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from tools import ROOT, deploy, emu
from tools.console import auth
from tools.scenario import START, Ground, load_job

# candidates, searched by bisection (4 KiB steps where the .mpy runs end: 96 ... 128)
HEAPS_K = (32, 40, 48, 56, 64, 80, 96, 100, 104, 108, 112, 116, 120, 124, 128, 160, 192)
JOB_TIMEOUT_S = 90
AGENT = "sat-bench"


def quick_standard_pipeline():
    job = load_job("standard-pipeline.json")
    for step in job["steps"]:
        step["compute_s"] = max(2, step["compute_s"] // 200)
        if "checkpoint_interval_s" in step:
            step["checkpoint_interval_s"] = 3
    return job


class _Bridge:
    def __init__(self, port, url):
        self.proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "bridge", "--port", port,
                                      "--console", url, "--stats-interval", "0"], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any("open" in ln for ln in self.lines):
            time.sleep(0.05)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Drain:
    """Reads the REPL so the board's prints never stall."""

    def __init__(self, port):
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.data = b""
        self.stopping = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        import select
        while not self.stopping:
            if select.select([self.fd], [], [], 0.1)[0]:
                try:
                    self.data += os.read(self.fd, 4096)
                except OSError:
                    return

    def close(self):
        self.stopping = True
        self.thread.join(2)
        os.close(self.fd)


def _prepare(target, frozen, ground, key, folder):
    """Deploy once (at the default heap) and keep the flash as it is then."""
    elf = emu.build(target, frozen)
    cfg = os.path.join(folder, "sat.json")
    with open(cfg, "w") as f:
        json.dump({"agent_id": AGENT, "api_key": key, "satellite_id": "25544",
                   "transport": "serial", "serial_port": 1, "storage_root": "/"}, f)
    with emu.QemuBoard(target, elf, os.path.join(folder, "board")) as board:
        time.sleep(0.5)
        started = time.monotonic()
        try:
            deploy.deploy_to(board.port, config=cfg, frozen=frozen, reset=False, timeout=300)
        except deploy.DeployError:   # a copy garbled on the emulated REPL: the next copies only that
            deploy.deploy_to(board.port, config=cfg, frozen=frozen, reset=False, timeout=300)
        deploy_s = time.monotonic() - started
    disk = os.path.join(folder, "board", emu.DISK_NAME)
    shutil.copyfile(disk, disk + ".deployed")
    return elf, disk, deploy_s


def _run(target, elf, disk, ground, heap_k):
    """One job at this heap from the deployed flash: (completed, seconds, boots)."""
    shutil.copyfile(disk + ".deployed", disk)
    dep = ground.deploy(quick_standard_pipeline())
    before = len([e for e in _agent_events(ground) if e["type"] == "agent.booted"])
    board = emu.QemuBoard(target, elf, os.path.dirname(disk), heap="%dK" % heap_k).start()
    bridge = _Bridge(board.uart_port, ground.url)
    drain = _Drain(board.port)
    started = time.monotonic()
    status = None
    try:
        while time.monotonic() - started < JOB_TIMEOUT_S:
            status = ground.status(dep)
            if status in ("completed", "failed"):
                break
            time.sleep(0.5)
    finally:
        seconds = time.monotonic() - started
        drain.close()
        bridge.stop()
        board.power_cut()
        if status != "completed":   # not handed to the next run's agent
            ground.http.post("/api/deployments/%s/cancel" % dep)
    boots = len([e for e in _agent_events(ground) if e["type"] == "agent.booted"]) - before
    return status == "completed", seconds, boots


def _run_demo(target, elf, disk, folder, heap_k, tle, as_planned=False):
    """The demo mission at this heap from the deployed flash: (completed, and
    with as_planned identical to its plan too, seconds, boots). A Console of its own each run:
    the flash starts afresh, so the agent's seq does too, and no deployment
    of an earlier run is left for it."""
    shutil.copyfile(disk + ".deployed", disk)
    _run_demo.n = getattr(_run_demo, "n", 0) + 1
    ground = Ground(_Path(os.path.join(folder, "console-%d" % _run_demo.n)))
    board = bridge = drain = None
    summary = None
    identical = False
    started = time.monotonic()
    try:
        key = auth.create_key(ground.db, "agent", AGENT, rate_limited=False,
                              satellite_id="25544")["key"]
        dep = ground.deploy(load_job("demo-mission.json"))
        board = emu.QemuBoard(target, elf, os.path.dirname(disk), heap="%dK" % heap_k).start()
        bridge = _Bridge(board.uart_port, ground.url)
        try:
            emu.start_world(board.port, emu.world_config(AGENT, key), tle, START)
        except deploy.DeployError:
            return False, 0.0, 0   # the board could not start the node
        started = time.monotonic()
        drain = _Drain(board.port)
        while time.monotonic() - started < JOB_TIMEOUT_S:
            text = drain.data.decode(errors="replace")
            summary = emu.node_summary(text)
            if summary is not None or "Traceback" in text or '{"error":' in text:
                break
            time.sleep(0.5)
        seconds = time.monotonic() - started
        done = summary is not None and summary.get("exit") == 0 \
            and ground.status(dep) == "completed"
        identical = done and not as_planned
        if done and as_planned:
            proc = subprocess.run([sys.executable, "-m", "tools.cli", "events", dep, "--compare",
                                   "--json", "--console", ground.url, "--key", ground.user],
                                  cwd=ROOT, capture_output=True, text=True, timeout=60)
            _run_demo.compared = proc.stdout
            identical = proc.returncode == 0 and json.loads(proc.stdout)["summary"]["identical"]
    finally:
        if drain is not None:
            drain.close()
            _run_demo.text = drain.data.decode(errors="replace")   # for a look after
        if bridge is not None:
            bridge.stop()
        if board is not None:
            board.power_cut()
        ground.close()
    return identical, seconds, (summary or {}).get("reboots", 0) + 1


def _agent_events(ground):
    try:
        return ground.agent_events(AGENT)
    except Exception:
        return []


def lowest_heap(target, elf, disk, ground, clean=True, heaps=HEAPS_K, run_at=None):
    """Bisect HEAPS_K for the lowest heap at which the job completes (clean:
    with no reset on the way; None if even the largest fails); also the wall
    time and boots at that heap. run_at(heap_k): one run (the standard
    pipeline's by default)."""
    run_at = run_at or (lambda heap_k: _run(target, elf, disk, ground, heap_k))
    lo, hi = 0, len(heaps) - 1
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        ok, seconds, boots = run_at(heaps[mid])
        if ok and (boots == 1 or not clean):
            best = (heaps[mid], seconds, boots)
            hi = mid - 1
        else:
            lo = mid + 1
    return best


def _figures(target, how, best, what, job="standard pipeline"):
    out = [{"name": "%s %s: lowest heap, %s completes%s" % (target, how, job, what),
            "value": best[0] if best else "none <= %dK" % HEAPS_K[-1], "unit": "KiB"}]
    if best:
        out.append({"name": "%s %s: %s wall time at that heap%s" % (target, how, job, what),
                    "value": round(best[1], 1), "unit": "s"})
    return out


def run(targets=None, ways=(True, False), demo_only=False):
    if emu.setup_tier():
        return []
    figures = []
    with tempfile.TemporaryDirectory(prefix="umbra-bench-board-") as tmp:
        ground = Ground(_Path(tmp))
        try:
            key = auth.create_key(ground.db, "agent", AGENT, rate_limited=False,
                                  satellite_id="25544")["key"]
            with open(ground.tle_path) as f:
                tle = f.read()
            for target in targets or sorted(emu.TARGETS):
                for frozen in ways:
                    how = "frozen" if frozen else ".mpy on flash"
                    folder = os.path.join(tmp, "%s-%s" % (target, "frozen" if frozen else "mpy"))
                    os.makedirs(folder)
                    elf, disk, deploy_s = _prepare(target, frozen, ground, key, folder)
                    figures.append({"name": "%s %s: image bytes (text+data)" % (target, how),
                                    "value": emu.image_bytes(elf), "unit": "B"})
                    figures.append({"name": "%s %s: umbra deploy over the REPL" % (target, how),
                                    "value": round(deploy_s, 1), "unit": "s"})
                    if not demo_only:
                        best = lowest_heap(target, elf, disk, ground)
                        figures += _figures(target, how, best, " (no reset)")
                        below = tuple(h for h in HEAPS_K if best and h < best[0])
                        low = lowest_heap(target, elf, disk, ground, False, below) if below \
                            else None
                        if low and (not best or low[0] < best[0]):
                            figures += _figures(target, how, low, " (resets on the way: %d boots)"
                                                % low[2])
                    if emu.TARGETS[target]["doubles"]:   # the world needs doubles (docs/boards.md)
                        demo = lowest_heap(target, elf, disk, ground, run_at=lambda heap_k: _run_demo(
                            target, elf, disk, folder, heap_k, tle))
                        figures += _figures(target, how, demo, " (no reset)", job="demo mission")
                        above = tuple(h for h in HEAPS_K if not demo or h >= demo[0])
                        exact = lowest_heap(target, elf, disk, ground, heaps=above,
                                            run_at=lambda heap_k: _run_demo(
                                                target, elf, disk, folder, heap_k, tle, True))
                        figures += _figures(target, how, exact, " (no reset, events as planned)",
                                            job="demo mission")
        finally:
            ground.close()
    return figures


class _Path(str):
    """Ground wants a path it can join with '/'."""

    def __truediv__(self, other):
        return _Path(os.path.join(self, other))


if __name__ == "__main__":   # python -m tools.benches.board [an500|an385] [frozen|mpy] [demo]
    args = sys.argv[1:]
    targets = [a for a in args if a in emu.TARGETS] or None
    ways = tuple(w == "frozen" for w in ("frozen", "mpy") if w in args) or (True, False)
    for fig in run(targets, ways, demo_only="demo" in args):
        print("%-70s %10s %s" % (fig["name"], fig["value"], fig["unit"]), flush=True)
