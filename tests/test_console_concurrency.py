"""50 simulated agents at once (threads, real HTTP, the Console in its own
process): registering, polling, posting batches with resends and telemetry.
No event is lost or duplicated, no deployment is handed out twice, no 5xx."""
import random
import threading
import time

import httpx

from tools.console import auth, catalog, deployments, planning
from tools.console.db import connect
from tools.console.server import ConsoleProcess

AGENTS = 50
SECONDS = 3.0


def progress(seq):
    return {"type": "step.progress", "timestamp": "2026-03-07T14:%02d:%02dZ" % (seq // 60 % 60,
                                                                              seq % 60),
            "job_id": "job", "step_id": "s0", "payload": {"percent": 50}, "seq": seq}


def test_fifty_concurrent_agents_lose_and_duplicate_nothing(db_target):
    db_path = db_target("conc")
    db = connect(db_path)
    catalog.seed(db)
    agents = []
    for i in range(AGENTS):
        sat = "conc-%d" % (i // 2)  # two agents per satellite compete for its deployments
        if i % 2 == 0:
            catalog.add(db, sat, sat, elements={"altitude_km": 500 + i, "inclination_deg": 53})
            for _ in range(2):
                plan = planning.make_plan(catalog.get(db, sat), {
                    "name": sat, "steps": [{"id": "s0", "compute_s": 60}]}, None, 1772884800)
                deployments.save_plan(db, plan)
                deployments.create(db, plan, "live", 1)
        agent_id = "conc-agent-%d" % i
        key = auth.create_key(db, "agent", agent_id, rate_limited=False, satellite_id=sat)["key"]
        agents.append((agent_id, sat, {"X-API-Key": key, "X-Agent-ID": agent_id}))

    results = {}
    failures = []
    start_gate = threading.Barrier(AGENTS)

    def run_agent(agent_id, sat, headers):
        rnd = random.Random(agent_id)
        seq = 0
        statuses = []
        try:
            with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
                start_gate.wait()
                r = http.post("/api/agent/register", json={
                    "agent_id": agent_id, "satellite_id": sat, "agent_version": "0.1.0"})
                statuses.append(r.status_code)
                r = http.get("/api/agent/workloads")
                statuses.append(r.status_code)
                dep = r.json()["deployment_id"]
                end = time.monotonic() + SECONDS
                last_batch = []
                while time.monotonic() < end:
                    batch = [progress(seq + k + 1) for k in range(rnd.randint(1, 20))]
                    seq += len(batch)
                    if last_batch and rnd.random() < 0.3:  # a reply was lost: resend
                        batch = last_batch + batch
                        rnd.shuffle(batch)
                    r = http.post("/api/deployments/%s/events" % dep, json=batch)
                    statuses.append(r.status_code)
                    assert r.json()["acked_seq"] == seq, r.text
                    last_batch = batch
                    if rnd.random() < 0.3:
                        statuses.append(http.post("/api/agent/telemetry", json={
                            "agent_id": agent_id, "status": "executing",
                            "timestamp": "2026-03-07T14:23:45Z", "outbox_depth": 0,
                            "seq": seq}).status_code)
                    if rnd.random() < 0.3:
                        r = http.get("/api/agent/workloads")
                        statuses.append(r.status_code)
                        assert r.json()["deployment_id"] == dep
                seq += 1
                done = {"type": "job.completed", "timestamp": "2026-03-07T15:00:00Z",
                        "job_id": "job", "step_id": None, "seq": seq,
                        "payload": {"total_duration_s": 60, "status": "completed"}}
                r = http.post("/api/deployments/%s/events" % dep, json=[done])
                statuses.append(r.status_code)
            results[agent_id] = (dep, seq, statuses)
        except Exception as exc:  # reported below, with the agent's id
            failures.append("%s: %r" % (agent_id, exc))

    with ConsoleProcess(db_path) as server:
        threads = [threading.Thread(target=run_agent, args=a) for a in agents]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)

    assert failures == []
    assert len(results) == AGENTS
    all_statuses = [s for _, _, st in results.values() for s in st]
    assert [s for s in all_statuses if s >= 500] == []
    assert set(all_statuses) <= {200, 201}
    handed_out = [dep for dep, _, _ in results.values()]
    assert len(set(handed_out)) == AGENTS  # never the same deployment to two agents
    total = 0
    for agent_id, (dep, last_seq, _) in results.items():
        seqs = [e["seq"] for _, e in deployments.list_events(db, dep)]
        assert seqs == list(range(1, last_seq + 1)), agent_id
        assert deployments.acked_seq(db, agent_id) == last_seq
        assert deployments.get(db, dep)["status"] == "completed"
        total += last_seq
    assert db.counts()["events"] == total
    assert total > AGENTS * 10  # the agents really did post for a while
