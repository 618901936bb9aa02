"""The Console under many agents (#13, area `console`): the Console in its own
process (`umbra console`), the agents in client processes of their own (so no
client shares an interpreter lock with another or with the Console), each on
a keep-alive HTTP/1.1 connection with pre-encoded bodies, as a board's link
would send them.

- `concurrent_ingest`: N agents post event batches at once; events/s, the
  latency of a batch (p50, p99), and -- counted from the database -- how
  many events were lost or stored twice.
- `many_pollers`: M agents poll at their cadence (every 10 s) and send
  telemetry (every 30 s), spread over the cadence; poll latency (p50, p99).
- `postgres_ingest`: as concurrent_ingest, the agents spread over 3 Console
  processes (`umbra console --db postgresql://...`) on one PostgreSQL
  database (tools/pgtemp.py: Debian's PostgreSQL 15 in a temporary folder,
  fsync and synchronous_commit on, as a real server would run).
"""
import http.client
import json
import multiprocessing
import random
import tempfile
import time

from tools.console import auth, catalog, deployments, planning
from tools import pgtemp
from tools.console.db import Database, connect
from tools.console.server import ConsoleProcess

HEADERS = {"User-Agent": "umbra-agent/bench", "Content-Type": "application/json"}


def _agent(db, i, prefix, with_deployment):
    sat = "%s-sat-%d" % (prefix, i)
    catalog.add(db, sat, sat, elements={"altitude_km": 500, "inclination_deg": 97.4})
    if with_deployment:
        plan = planning.make_plan(catalog.get(db, sat),
                                  {"name": "load", "steps": [{"id": "s0", "compute_s": 60}]},
                                  None, 1772884800)
        deployments.save_plan(db, plan)
        deployments.create(db, plan, "live", 1)
    agent_id = "%s-%d" % (prefix, i)
    key = auth.create_key(db, "agent", agent_id, rate_limited=False, satellite_id=sat)["key"]
    return agent_id, sat, key


def _headers(agent_id, key):
    return dict(HEADERS, **{"X-API-Key": key, "X-Agent-ID": agent_id})


def _exchange(conn, method, path, body, headers):
    t = time.perf_counter()
    conn.request(method, path, body, headers)
    r = conn.getresponse()
    data = r.read()
    return r.status, data, time.perf_counter() - t


def _register(conn, agent_id, sat, headers):
    body = json.dumps({"agent_id": agent_id, "satellite_id": sat, "agent_version": "bench"})
    status, _, _ = _exchange(conn, "POST", "/api/agent/register", body, headers)
    assert status == 201, status


def _ingester(port, agent_id, sat, key, batch, batches, gate, out):
    h = _headers(agent_id, key)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    _register(conn, agent_id, sat, h)
    status, data, _ = _exchange(conn, "GET", "/api/agent/workloads", None, h)
    dep = json.loads(data)["deployment_id"]
    path = "/api/deployments/%s/events" % dep
    bodies = [json.dumps([{"type": "step.progress", "timestamp": "2026-03-07T14:23:45Z",
                           "job_id": "load", "step_id": "s0", "payload": {"percent": 50},
                           "seq": 1 + b * batch + k} for k in range(batch)])
              for b in range(batches)]
    gate.wait()
    lat = []
    for body in bodies:
        status, _, dt = _exchange(conn, "POST", path, body, h)
        assert status == 201, status
        lat.append(dt)
    out.put(lat)


def _pct(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def _ingest_run(db, target, consoles, agents, batch, batches, title):
    catalog.seed(db)
    fleet = [_agent(db, i, "ingest", True) for i in range(agents)]
    servers = []
    try:
        for _ in range(consoles):
            servers.append(ConsoleProcess(target))
        gate = multiprocessing.Barrier(agents + 1)
        out = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=_ingester, args=(
            servers[i % consoles].port, a, s, k, batch, batches, gate, out))
            for i, (a, s, k) in enumerate(fleet)]
        for p in procs:
            p.start()
        gate.wait()
        t0 = time.perf_counter()
        lat = []
        for _ in procs:
            lat += out.get(timeout=600)
        wall = time.perf_counter() - t0
        for p in procs:
            p.join()
    finally:
        for server in servers:
            server.stop()
    sent = agents * batch * batches
    rows = db.query("SELECT origin, COUNT(*) AS n, COUNT(DISTINCT seq) AS d, MAX(seq) AS m "
                    "FROM events WHERE origin LIKE 'ingest-%' GROUP BY origin")
    stored = sum(r["n"] for r in rows)
    distinct = sum(r["d"] for r in rows)
    lat.sort()
    return [
        {"name": title, "value": round(sent / wall), "unit": "events/s"},
        {"name": "  batch latency, median", "value": round(_pct(lat, 0.5) * 1000, 1),
         "unit": "ms"},
        {"name": "  batch latency, p99", "value": round(_pct(lat, 0.99) * 1000, 1),
         "unit": "ms"},
        {"name": "  events lost (sent, not in the database)", "value": sent - distinct,
         "unit": "events"},
        {"name": "  events stored twice", "value": stored - distinct, "unit": "events"},
    ]


def concurrent_ingest(agents=20, batch=20, batches=60):
    with tempfile.TemporaryDirectory() as tmp:
        return _ingest_run(Database(tmp + "/console.db"), tmp + "/console.db", 1, agents,
                           batch, batches, "console: %d agents posting batches of %d at once"
                           % (agents, batch))


def postgres_ingest(agents=20, batch=20, batches=60, consoles=3):
    why = pgtemp.available()
    if why:
        return [{"name": "PostgreSQL: not run", "value": why, "unit": ""}]
    with pgtemp.PgServer(durable=True) as pg:
        url = pg.new_database("bench")
        db = connect(url)
        try:
            return _ingest_run(db, url, consoles, agents, batch, batches,
                               "PostgreSQL: %d agents, batches of %d, %d Consoles"
                               % (agents, batch, consoles))
        finally:
            db.close()


def _poller(port, fleet, seconds, seed, out):
    """Plays `fleet` agents on one connection: each polls every 10 s and sends
    telemetry every 30 s from a random phase, for `seconds`."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    due = []
    for agent_id, sat, key in fleet:
        h = _headers(agent_id, key)
        _register(conn, agent_id, sat, h)
        due.append([rng.uniform(0, 10), "poll", agent_id, h])
        due.append([rng.uniform(0, 30), "telemetry", agent_id, h])
    due.sort(key=lambda d: d[0])
    polls, telemetry = [], 0
    t0 = time.perf_counter()
    i = 0
    while True:
        due.sort(key=lambda d: d[0])
        at, kind, agent_id, h = due[0]
        if at > seconds:
            break
        wait = at - (time.perf_counter() - t0)
        if wait > 0:
            time.sleep(wait)
        if kind == "poll":
            status, _, dt = _exchange(conn, "GET", "/api/agent/workloads", None, h)
            assert status == 204, status
            polls.append(dt)
            due[0][0] = at + 10
        else:
            body = json.dumps({"agent_id": agent_id, "status": "idle",
                               "timestamp": "2026-03-07T14:23:45Z", "battery_percent": 80.0,
                               "boot_count": 1, "mode": "normal"})
            status, _, _ = _exchange(conn, "POST", "/api/agent/telemetry", body, h)
            assert status == 200, status
            telemetry += 1
            due[0][0] = at + 30
        i += 1
    out.put((polls, telemetry))


def many_pollers(agents=1000, seconds=30, procs=4):
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(tmp + "/console.db")
        catalog.seed(db)
        fleet = [_agent(db, i, "poll", False) for i in range(agents)]
        with ConsoleProcess(tmp + "/console.db") as server:
            out = multiprocessing.Queue()
            workers = [multiprocessing.Process(target=_poller, args=(
                server.port, fleet[i::procs], seconds, i, out)) for i in range(procs)]
            for w in workers:
                w.start()
            polls, telemetry = [], 0
            for _ in workers:
                p, t = out.get(timeout=seconds + 600)
                polls += p
                telemetry += t
            for w in workers:
                w.join()
    polls.sort()
    return [
        {"name": "console: %d agents polling every 10 s, telemetry every 30 s" % agents,
         "value": len(polls), "unit": "polls"},
        {"name": "  telemetry reports in the run (%d s)" % seconds, "value": telemetry,
         "unit": "reports"},
        {"name": "  poll latency, median", "value": round(_pct(polls, 0.5) * 1000, 2),
         "unit": "ms"},
        {"name": "  poll latency, p99", "value": round(_pct(polls, 0.99) * 1000, 2),
         "unit": "ms"},
    ]


def run():
    return concurrent_ingest() + postgres_ingest() + many_pollers()


if __name__ == "__main__":
    for fig in run():
        print(fig)
