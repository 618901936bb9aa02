"""Console speed over real HTTP on loopback (the Console in its own process,
`umbra console`, SQLite in WAL mode): events ingested per second in batches of
100, median and 95th-percentile poll latency, and a 10-agent concurrent
ingest figure."""
import statistics
import tempfile
import threading
import time

import httpx

from tools.console import auth, catalog, deployments, planning
from tools.console.db import Database
from tools.console.server import ConsoleProcess

BATCH = 100
BATCHES = 60
POLLS = 300
PARALLEL_AGENTS = 10


def _event(seq):
    return {"type": "step.progress", "timestamp": "2026-03-07T14:23:45Z", "job_id": "bench",
            "step_id": "s0", "payload": {"percent": 50}, "seq": seq}


def _prepare(db, agent_id, satellite_id):
    if catalog.get(db, satellite_id) is None:
        catalog.add(db, satellite_id, satellite_id,
                    elements={"altitude_km": 500, "inclination_deg": 97.4})
    plan = planning.make_plan(catalog.get(db, satellite_id),
                              {"name": "bench", "steps": [{"id": "s0", "compute_s": 60}]},
                              None, 1772884800)
    deployments.save_plan(db, plan)
    deployments.create(db, plan, "live", 1)
    key = auth.create_key(db, "agent", agent_id, rate_limited=False,
                          satellite_id=satellite_id)["key"]
    return {"X-API-Key": key, "X-Agent-ID": agent_id}


def _ingest(http, dep, first_seq, batches):
    for b in range(batches):
        start = first_seq + b * BATCH
        r = http.post("/api/deployments/%s/events" % dep,
                      json=[_event(start + k) for k in range(BATCH)])
        r.raise_for_status()


def _start_agent(http, agent_id, satellite_id):
    http.post("/api/agent/register", json={"agent_id": agent_id, "satellite_id": satellite_id,
                                           "agent_version": "bench"}).raise_for_status()
    return http.get("/api/agent/workloads").json()["deployment_id"]


def run():
    with tempfile.TemporaryDirectory() as tmp:
        db_path = tmp + "/console.db"
        db = Database(db_path)
        catalog.seed(db)
        main = _prepare(db, "bench-agent", "bench-sat")
        parallel = [("bench-par-%d" % i, "bench-psat-%d" % i) for i in range(PARALLEL_AGENTS)]
        parallel_headers = [_prepare(db, a, s) for a, s in parallel]
        with ConsoleProcess(db_path) as server:
            with httpx.Client(base_url=server.url, headers=main, timeout=30) as http:
                dep = _start_agent(http, "bench-agent", "bench-sat")
                _ingest(http, dep, 1, 5)  # warm-up
                t0 = time.perf_counter()
                _ingest(http, dep, 1 + 5 * BATCH, BATCHES)
                ingest_s = time.perf_counter() - t0
                latencies = []
                for _ in range(POLLS):
                    t = time.perf_counter()
                    http.get("/api/agent/workloads").raise_for_status()
                    latencies.append((time.perf_counter() - t) * 1000)

            # several agents at once
            def agent(i):
                with httpx.Client(base_url=server.url, headers=parallel_headers[i],
                                  timeout=30) as c:
                    d = _start_agent(c, *parallel[i])
                    gate.wait()
                    _ingest(c, d, 1, BATCHES // 3)

            gate = threading.Barrier(PARALLEL_AGENTS + 1)
            threads = [threading.Thread(target=agent, args=(i,)) for i in range(PARALLEL_AGENTS)]
            for t in threads:
                t.start()
            gate.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            parallel_s = time.perf_counter() - t0
        stored = db.counts()["events"]
    latencies.sort()
    return [
        {"name": "console events ingested (batches of %d, one agent, HTTP)" % BATCH,
         "value": round(BATCHES * BATCH / ingest_s), "unit": "events/s"},
        {"name": "console events ingested (%d agents at once)" % PARALLEL_AGENTS,
         "value": round(PARALLEL_AGENTS * (BATCHES // 3) * BATCH / parallel_s),
         "unit": "events/s"},
        {"name": "console poll latency, median", "value": round(statistics.median(latencies), 2),
         "unit": "ms"},
        {"name": "console poll latency, p95",
         "value": round(latencies[int(len(latencies) * 0.95)], 2), "unit": "ms"},
        {"name": "console events stored in the run", "value": stored, "unit": "events"},
    ]


if __name__ == "__main__":
    for fig in run():
        print(fig)
