"""Several Console processes (`umbra console --db postgresql://...`, real HTTP
on 127.0.0.1) on one real PostgreSQL database (tools/pgtemp.py): exactly-once
per (agent, seq) held by the database when an agent moves between Consoles
and when one is killed mid-load, rate limits that hold across Consoles, and
`?follow=1` on one Console streaming what another stored."""
import json
import random
import threading
import time

import httpx
import pytest

from tools.console import auth, catalog, deployments, planning
from tools.console.db import connect
from tools.console.server import ConsoleProcess


def progress(seq):
    return {"type": "step.progress", "timestamp": "2026-03-07T14:%02d:%02dZ" % (seq // 60 % 60,
                                                                              seq % 60),
            "job_id": "job", "step_id": "s0", "payload": {"percent": 50}, "seq": seq}


def completed(seq):
    return {"type": "job.completed", "timestamp": "2026-03-07T15:00:00Z", "job_id": "job",
            "step_id": None, "seq": seq, "payload": {"total_duration_s": 60,
                                                     "status": "completed"}}


def live_agent(db, name, rate_limited=False):
    """A satellite with a live deployment and its agent's key: (agent id, sat, headers, dep)."""
    catalog.add(db, name, name, elements={"altitude_km": 500, "inclination_deg": 53})
    plan = planning.make_plan(catalog.get(db, name), {
        "name": name, "steps": [{"id": "s0", "compute_s": 60}]}, None, 1772884800)
    deployments.save_plan(db, plan)
    dep = deployments.create(db, plan, "live", 1)
    agent_id = "agent-" + name
    key = auth.create_key(db, "agent", agent_id, rate_limited=rate_limited,
                          satellite_id=name)["key"]
    return agent_id, name, {"X-API-Key": key, "X-Agent-ID": agent_id}, dep


@pytest.fixture
def pg_db(pg_server):
    url = pg_server.new_database("multi")
    db = connect(url)
    catalog.seed(db)
    yield url, db
    db.close()


def consoles(url, n):
    return [ConsoleProcess(url) for _ in range(n)]


def stop_all(procs):
    for p in procs:
        p.stop()


def duplicates(db):
    return db.query("SELECT origin, seq, COUNT(*) AS n FROM events GROUP BY origin, seq "
                    "HAVING COUNT(*) > 1")


# ---------------------------------------------------------------- the kill test

AGENTS = 20
BATCHES = 30
BATCH = 5


def test_three_consoles_one_killed_mid_load_lose_and_duplicate_nothing(pg_db):
    url, db = pg_db
    fleet = [live_agent(db, "kill-%d" % i) for i in range(AGENTS)]
    procs = consoles(url, 3)
    sent = {"batches": 0}
    failovers, failures, results = [], [], {}
    lock = threading.Lock()

    def run_agent(i, agent_id, sat, headers, dep):
        # an agent as a board's link would: seq contiguous; a send refused or failed
        # is sent again, to the next ground station's Console (a failover)
        at = i % len(procs)
        clients = [httpx.Client(base_url=p.url, headers=headers, timeout=10) for p in procs]

        def send(method, path, **kw):
            nonlocal at
            for _attempt in range(60):
                try:
                    r = clients[at].request(method, path, **kw)
                    if r.status_code < 500:
                        return r
                except httpx.HTTPError:
                    pass
                at = (at + 1) % len(procs)
                with lock:
                    failovers.append(agent_id)
                time.sleep(0.02)
            raise RuntimeError("no Console answered")

        try:
            r = send("POST", "/api/agent/register", json={
                "agent_id": agent_id, "satellite_id": sat, "agent_version": "0.1.0"})
            assert r.status_code == 201, r.text
            assert send("GET", "/api/agent/workloads").json()["deployment_id"] == dep
            seq = 0
            for b in range(BATCHES):
                batch = [progress(seq + k + 1) for k in range(BATCH)]
                if b == BATCHES - 1:
                    batch[-1] = completed(seq + BATCH)
                r = send("POST", "/api/deployments/%s/events" % dep, json=batch)
                assert r.status_code == 201, r.text
                seq += BATCH
                assert r.json()["acked_seq"] == seq, r.text
                with lock:
                    sent["batches"] += 1
            results[agent_id] = (dep, seq)
        except Exception as exc:  # reported below, with the agent's id
            failures.append("%s: %r" % (agent_id, exc))
        finally:
            for c in clients:
                c.close()

    try:
        threads = [threading.Thread(target=run_agent, args=(i,) + a) for i, a in enumerate(fleet)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while sent["batches"] < AGENTS * BATCHES // 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        killed_at = sent["batches"]
        procs[0].kill()  # SIGKILL mid-load: its transactions in flight die with it
        for t in threads:
            t.join(60)
    finally:
        stop_all(procs)

    assert failures == []
    assert 0 < killed_at < AGENTS * BATCHES  # it died while batches were still coming
    assert failovers  # agents of the killed Console moved to another one
    assert duplicates(db) == []
    for agent_id, (dep, last) in results.items():
        seqs = [e["seq"] for _, e in deployments.list_events(db, dep)]
        assert seqs == list(range(1, last + 1)), agent_id  # 0 lost, 0 twice
        assert deployments.acked_seq(db, agent_id) == last
        assert deployments.get(db, dep)["status"] == "completed"
    assert len(results) == AGENTS
    assert db.one("SELECT COUNT(*) FROM events")[0] == AGENTS * BATCHES * BATCH


# ---------------------------------------------------------------- one agent, two Consoles

def test_an_agent_alternating_between_consoles_with_resends_is_stored_once(pg_db):
    url, db = pg_db
    agent_id, sat, headers, dep = live_agent(db, "alt")
    procs = consoles(url, 2)
    try:
        http = [httpx.Client(base_url=p.url, headers=headers, timeout=30) for p in procs]
        assert http[0].post("/api/agent/register", json={
            "agent_id": agent_id, "satellite_id": sat, "agent_version": "0.1.0"}).status_code == 201
        assert http[1].get("/api/agent/workloads").json()["deployment_id"] == dep
        rnd = random.Random(5)
        numbered = [progress(s) for s in range(1, 61)]
        # the same batches sent to both Consoles at once (a reply lost, the agent
        # failed over while the first send was still in flight), shuffled
        for lo in range(0, 60, 10):
            batch = numbered[lo:lo + 10]
            replies = [None, None]

            def post(k, body):
                replies[k] = http[k].post("/api/deployments/%s/events" % dep, json=body)

            bodies = [rnd.sample(batch, len(batch)) for _ in range(2)]
            ts = [threading.Thread(target=post, args=(k, bodies[k])) for k in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert [r.status_code for r in replies] == [201, 201]
            assert [r.json()["acked_seq"] for r in replies] == [lo + 10, lo + 10]
            ids = [dict(zip([e["seq"] for e in b], r.json()["ids"]))
                   for b, r in zip(bodies, replies)]
            assert ids[0] == ids[1]  # one stored row per seq, whichever Console won
        assert [e["seq"] for _, e in deployments.list_events(db, dep)] == list(range(1, 61))
        assert duplicates(db) == []
        for h in http:
            h.close()
    finally:
        stop_all(procs)


# ---------------------------------------------------------------- rate limits

def test_rate_limits_hold_across_consoles(pg_db):
    url, db = pg_db
    agent_id, sat, headers, dep = live_agent(db, "rate", rate_limited=True)
    procs = consoles(url, 2)
    try:
        a, b = (httpx.Client(base_url=p.url, headers=headers, timeout=30) for p in procs)
        assert a.post("/api/agent/register", json={
            "agent_id": agent_id, "satellite_id": sat, "agent_version": "0.1.0"}).status_code == 201
        assert a.get("/api/agent/workloads").status_code == 200  # 1 poll per 10 s
        r = b.get("/api/agent/workloads")  # the same agent, another Console: counted together
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["Retry-After"]) <= 10
        r = a.get("/api/agent/workloads")
        assert r.status_code == 429
        a.close()
        b.close()
    finally:
        stop_all(procs)


# ---------------------------------------------------------------- ?follow=1

def test_follow_on_one_console_streams_what_another_stored(pg_db):
    url, db = pg_db
    agent_id, sat, headers, dep = live_agent(db, "follow")
    user = {"X-API-Key": auth.create_key(db, "user")["key"]}
    procs = consoles(url, 2)
    seen, end = [], {}
    try:
        agent = httpx.Client(base_url=procs[0].url, headers=headers, timeout=30)
        assert agent.post("/api/agent/register", json={
            "agent_id": agent_id, "satellite_id": sat, "agent_version": "0.1.0"}).status_code == 201
        assert agent.get("/api/agent/workloads").json()["deployment_id"] == dep
        opened = threading.Event()

        def follow():
            with httpx.Client(base_url=procs[1].url, headers=user, timeout=30) as h:
                with h.stream("GET", "/api/deployments/%s/events" % dep,
                              params={"follow": 1}) as r:
                    assert r.status_code == 200
                    opened.set()
                    name = None
                    for line in r.iter_lines():
                        if line.startswith("event:"):
                            name = line[6:].strip()
                        elif line.startswith("data:"):
                            (end.update if name == "end" else seen.append)(json.loads(line[5:]))

        t = threading.Thread(target=follow)
        t.start()
        assert opened.wait(10)
        for lo in range(1, 20, 5):  # stored through Console 0 while Console 1 streams
            batch = [progress(s) for s in range(lo, lo + 5)]
            if lo == 16:
                batch[-1] = completed(20)
            assert agent.post("/api/deployments/%s/events" % dep, json=batch).status_code == 201
            time.sleep(0.1)
        t.join(20)
        assert not t.is_alive()
        agent.close()
    finally:
        stop_all(procs)
    assert [e["seq"] for e in seen] == list(range(1, 21))
    assert end["status"] == "completed"
