"""A campaign's seeded runs as Dask tasks (dask.distributed): `umbra faults
--campaign NAME [--workers K | --scheduler tcp://HOST:8786]`, a local cluster
by default (`--serial`: in process, not here) (NAME:
constellation, tools/fleetcampaign.py; bitflip, crash, link, mixed,
tools/faults_cli.py PLANS).

The campaign draws every run's inputs first, in order, exactly as its serial
run does (one seeded generator); each run is then a task that depends on its
inputs alone, so where and in which order the tasks run changes nothing: the
results are put back in run order, never completion order, and the figures
are those of the serial run of the same seed. A worker that dies mid-task has
its tasks run again on another (the scheduler does that by itself; a task
that takes down `distributed.scheduler.allowed-failures` + 1 workers, 3 + 1
by default, fails the campaign with KilledWorker). A run has no side effect
a second execution could trip on: a constellation run flies the fleet in the
worker's memory and returns its figures; a node campaign's run makes its own
Console and folder and removes them (faults_cli.lab_run), so a run started
again after its worker died starts in a new folder.

Where the tasks run:
  a local cluster  this machine's cores (the default; `--workers K` for K
                   of them): K worker processes, one thread each, each under a
                   nanny that restarts it if it dies, no dashboard
  a scheduler      `--scheduler tcp://HOST:8786`: one started with
                   `dask scheduler`, its workers with `dask worker
                   tcp://HOST:8786` from a checkout of the same commit (its
                   `.venv/bin/dask`: the workers import tools/ from there)
"""
import contextlib
import os
import uuid

CONNECT_TIMEOUT_S = 10   # a scheduler that does not answer in this long: exit 3


@contextlib.contextmanager
def client(scheduler=None, workers=None):
    """A distributed.Client on `scheduler` (an address), or on a local cluster of
    `workers` processes (default: this machine's cores) that ends with the block."""
    from distributed import Client, LocalCluster
    if scheduler:
        with Client(scheduler, timeout=CONNECT_TIMEOUT_S) as c:
            yield c
        return
    n = workers or os.cpu_count() or 1
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


class _AsCompleted:
    """The campaign's runs in the order they complete, as (run index, future);
    it has a length, so a progress bar knows the total without waiting."""

    def __init__(self, futures):
        self.futures = futures

    def __len__(self):
        return len(self.futures)

    def __iter__(self):
        from distributed import as_completed
        index = dict((f.key, i) for i, f in enumerate(self.futures))
        for f in as_completed(self.futures):
            yield index[f.key], f


def map_runs(c, fn, inputs, progress=None, name="run"):
    """[fn(*args) for args in inputs], each call a task on client `c`; the results
    in the order of `inputs`. `progress` wraps the iteration over runs as they
    complete (as the serial campaign's wraps its range of runs)."""
    progress = progress or (lambda it: it)
    tag = uuid.uuid4().hex[:8]   # a scheduler may hold another campaign's tasks
    futures = [c.submit(fn, *args, key="%s-%s-%d" % (name, tag, i), pure=False)
               for i, args in enumerate(inputs)]
    results = [None] * len(futures)
    try:
        for i, f in progress(_AsCompleted(futures)):
            results[i] = f.result()
    finally:
        c.cancel(futures)   # an interrupted campaign leaves nothing queued on a shared scheduler
    return results


def where(c):
    """Where the campaign ran, for its summary: the scheduler and its workers."""
    return "dask %s, %d workers" % (c.scheduler.address, len(c.nthreads()))
