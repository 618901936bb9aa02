"""Console speed over real HTTP on loopback (the Console in its own process,
`umbra console`, SQLite in WAL mode): events ingested per second in batches of
100, median and 95th-percentile poll latency; then many agents at once
(consoleload.py: 20 agents posting batches, 1,000 agents polling at their
cadence)."""
import statistics
import tempfile
import time

import httpx

from tools.console import auth, catalog, deployments, planning
from tools.console.db import Database
from tools.console.server import ConsoleProcess

from . import consoleload

BATCH = 100
BATCHES = 60
POLLS = 300


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
    return {"X-API-Key": key, "X-Agent-ID": agent_id, "User-Agent": "umbra-agent/bench"}


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

        stored = db.counts()["events"]
    latencies.sort()
    return [
        {"name": "console events ingested (batches of %d, one agent, HTTP)" % BATCH,
         "value": round(BATCHES * BATCH / ingest_s), "unit": "events/s"},
        {"name": "console poll latency, median", "value": round(statistics.median(latencies), 2),
         "unit": "ms"},
        {"name": "console poll latency, p95",
         "value": round(latencies[int(len(latencies) * 0.95)], 2), "unit": "ms"},
        {"name": "console events stored in the run", "value": stored, "unit": "events"},
    ] + consoleload.run()


if __name__ == "__main__":
    for fig in run():
        print(fig)
