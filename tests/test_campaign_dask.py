"""Fault campaigns' seeded runs as Dask tasks (tools/campaigndask.py, `umbra
faults --campaign NAME --dask | --workers K | --scheduler ADDR`): on a real
local cluster of two worker processes (one for the module: a cluster's start
costs seconds), the constellation campaign's figures are the serial run's,
progress follows the runs as they complete, and a worker killed mid-campaign
has its runs flown again with the figures unchanged; a node campaign's runs,
each in a Lab of its own, give the serial figures too."""
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from tools import campaigndask, fleetcampaign

RUNS, SEED = 10, 5
UMBRA = os.path.join(os.path.dirname(sys.executable), "umbra")


@pytest.fixture(scope="module")
def client():
    with campaigndask.client(workers=2) as c:
        c.wait_for_workers(2, timeout=60)
        yield c


@pytest.fixture(scope="module")
def serial():
    return fleetcampaign.run(runs=RUNS, seed=SEED)


def figures(s):
    """A summary but for where and how fast it ran."""
    return dict((k, v) for k, v in s.items() if k not in ("wall_s", "executed_on"))


def test_a_campaign_on_a_two_worker_cluster_has_the_serial_runs_figures(client, serial):
    s = fleetcampaign.run(runs=RUNS, seed=SEED, client=client)
    assert s["executed_on"] == "dask %s, 2 workers" % client.scheduler.address
    assert serial["executed_on"] == "serial, in process"
    assert figures(s) == figures(serial)
    # each run's faults in run order: those the seed draws in sequence
    assert [r[1] for r in s["per_run"]] == fleetcampaign.scripts(RUNS, SEED)
    assert len(set(str(r[1]) for r in s["per_run"])) == RUNS


def test_progress_follows_the_runs_as_each_one_completes(client, serial):
    seen = []

    def progress(items):
        assert len(items) == RUNS   # the bar knows the total before any run ends
        for i, future in items:
            assert future.done()
            seen.append(i)
            yield i, future

    s = fleetcampaign.run(runs=RUNS, seed=SEED, progress=progress, client=client)
    assert sorted(seen) == list(range(RUNS))
    assert figures(s) == figures(serial)


def test_a_worker_killed_mid_campaign_has_its_runs_flown_again_with_the_same_figures(
        client, serial):
    pids = client.run(os.getpid)
    killed = {}

    def progress(items):
        for n, item in enumerate(items):
            if n == 0:  # one run done: kill a worker that is flying one now
                held = client.processing()
                victim = [w for w, keys in held.items() if keys][0]
                killed.update(pid=pids[victim], runs=list(held[victim]))
                os.kill(pids[victim], signal.SIGKILL)
            yield item

    s = fleetcampaign.run(runs=RUNS, seed=SEED, progress=progress, client=client)
    assert killed["runs"], "the killed worker was flying no run"
    assert figures(s) == figures(serial)
    client.wait_for_workers(2, timeout=60)   # its nanny started a new one
    deadline = time.monotonic() + 30
    while killed["pid"] in client.run(os.getpid).values() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert killed["pid"] not in client.run(os.getpid).values()


def test_the_cli_runs_a_campaign_on_a_given_scheduler_with_the_serial_figures(client, serial):
    proc = subprocess.run([UMBRA, "faults", "--campaign", "constellation", "--runs", str(RUNS),
                           "--seed", str(SEED), "--scheduler", client.scheduler.address, "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json
    s = json.loads(proc.stdout)
    assert s["executed_on"] == "dask %s, 2 workers" % client.scheduler.address
    assert figures(s) == figures(serial)
    # not a terminal: a line as each run completes (a tenth of 10 runs: every one)
    done = [ln for ln in proc.stderr.splitlines() if ln.startswith("constellation: ")]
    assert done == ["constellation: %d/%d runs done" % (n, RUNS) for n in range(1, RUNS + 1)]


LINK = {"kind": "link", "at_s": 0, "drop": 0.2, "dup": 0.1, "corrupt": 0.1, "delay": 0.05,
        "delay_ms": 500}
WALL = ("wall_s", "executed_on", "mean_recovery_wall_ms")


@pytest.fixture(scope="module")
def link_serial():
    from tools import faults_cli as fc
    return fc.run_campaign("link", runs=3, seed=3, link=LINK)


def node_figures(s):
    return dict((k, v) for k, v in s.items() if k not in WALL)


def test_a_node_campaign_on_the_cluster_has_the_serial_runs_figures(client, link_serial):
    # each run a Lab of its own on a worker (a Console, a MicroPython node), against
    # the serial run's one Lab; wall-clock figures apart
    from tools import faults_cli as fc
    s = fc.run_campaign("link", runs=3, seed=3, link=LINK, client=client)
    assert s["executed_on"] == "dask %s, 2 workers" % client.scheduler.address
    assert node_figures(s) == node_figures(link_serial)
    assert s["injected"] > 0 and s["jobs_completed"] == 3


def test_a_worker_killed_during_a_node_run_has_it_run_again_in_a_new_folder(client, link_serial):
    import glob
    import shutil
    import tempfile

    from tools import faults_cli as fc
    client.wait_for_workers(2, timeout=60)
    pids = client.run(os.getpid)
    runs_dir = os.path.join(tempfile.gettempdir(), "umbra-faults-run-*")
    before = set(glob.glob(runs_dir))
    killed = []

    def folder_runs():
        return set(int(os.path.basename(p).split("-")[3]) for p in set(glob.glob(runs_dir)) - before)

    def progress(items):
        for n, item in enumerate(items):
            if n == 0:  # one run done: kill a worker in the middle of another, once
                # that run has made its folder (on a busy machine a worker may be
                # just starting one: wait for it, a few seconds at most)
                deadline = time.monotonic() + 20
                while True:
                    held = dict((w, [int(k.rsplit("-", 1)[1]) for k in keys])
                                for w, keys in client.processing().items() if keys)
                    started = folder_runs()
                    victims = [w for w in held if set(held[w]) & started]
                    if victims or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                victim = (victims or list(held))[0]
                killed.extend(held[victim])
                os.kill(pids[victim], signal.SIGKILL)
            yield item

    s = fc.run_campaign("link", runs=3, seed=3, link=LINK, client=client, progress=progress)
    left = set(glob.glob(runs_dir)) - before
    made = set(left)
    try:
        assert node_figures(s) == node_figures(link_serial)
        # the killed run's folder is left as it was; its second run, in a folder of
        # its own, removed its own like every other run
        assert len(left) == 1 and int(os.path.basename(left.pop()).split("-")[3]) in killed
    finally:
        for p in made:
            shutil.rmtree(p, ignore_errors=True)
    client.wait_for_workers(2, timeout=60)


def test_the_cli_runs_on_a_local_cluster_by_default_and_in_process_with_serial(serial):
    import json
    out = {}
    for extra in ((), ("--serial",)):
        proc = subprocess.run([UMBRA, "faults", "--campaign", "constellation", "--runs", str(RUNS),
                               "--seed", str(SEED), "--json"] + list(extra),
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr
        out[extra] = json.loads(proc.stdout)
    assert out[()]["executed_on"].startswith("dask tcp://127.0.0.1:")   # this machine's cores
    assert out[()]["executed_on"].endswith(", %d workers" % (os.cpu_count() or 1))
    assert out[("--serial",)]["executed_on"] == "serial, in process"
    assert figures(out[()]) == figures(out[("--serial",)]) == figures(serial)


def test_a_scheduler_that_does_not_answer_is_one_error_line_and_exit_3(monkeypatch):
    from tools import faults_cli
    from tools.console.server import free_port
    monkeypatch.setattr(campaigndask, "CONNECT_TIMEOUT_S", 1)
    addr = "tcp://127.0.0.1:%d" % free_port()
    r = CliRunner().invoke(faults_cli.faults, ["--campaign", "constellation", "--runs", "2",
                                               "--scheduler", addr])
    assert r.exit_code == 3, r.output
    assert "the Dask scheduler %s cannot be reached" % addr in r.output


@pytest.mark.parametrize("args", [("--campaign", "power-cut", "--dask"),
                                  ("--campaign", "link", "--serial", "--workers", "2"),
                                  ("--campaign", "hang", "--workers", "2"),
                                  ("--campaign", "link", "--dask", "--keep", "somewhere"),
                                  ("--campaign", "constellation", "--nodes", "--workers", "2"),
                                  ("--campaign", "constellation", "--workers", "2",
                                   "--scheduler", "tcp://127.0.0.1:8786")])
def test_dask_is_refused_where_it_does_not_apply(args):
    from tools import faults_cli
    r = CliRunner().invoke(faults_cli.faults, list(args))
    assert r.exit_code == 2, r.output
