"""At-least-once on the link, exactly-once in the Console: events are unique on
(agent_id, seq); resends are acknowledged, not stored twice; acked_seq is the
highest seq such that every seq from 1 up to it is stored."""
import random

import httpx
import pytest

from tools.console import auth, catalog, deployments, planning
from tools.console.server import serve_in_thread


@pytest.fixture(scope="module")
def console(db_target):
    srv = serve_in_thread(db_target("once"))
    yield srv
    srv.stop()


def live_deployment(db, name, steps=6):
    """An agent with a dispatched deployment; returns (headers, deployment id, events)."""
    catalog.add(db, name, name, elements={"altitude_km": 500, "inclination_deg": 97.4})
    job = {"name": name, "steps": [{"id": "s%d" % i, "compute_s": 60 * (i + 1), "output_mb": 1}
                                   for i in range(steps)]}
    plan = planning.make_plan(catalog.get(db, name), job, None, 1772884800)
    deployments.save_plan(db, plan)
    dep = deployments.create(db, plan, "live", 1)
    key = auth.create_key(db, "agent", "agent-" + name, rate_limited=False,
                          satellite_id=name)["key"]
    headers = {"X-API-Key": key, "X-Agent-ID": "agent-" + name}
    return headers, dep, plan["events"]


def register_and_poll(http, headers, satellite_id, dep):
    r = http.post("/api/agent/register", headers=headers,
                  json={"agent_id": headers["X-Agent-ID"], "satellite_id": satellite_id,
                        "agent_version": "0.1.0"})
    assert r.status_code == 201
    assert http.get("/api/agent/workloads", headers=headers).json()["deployment_id"] == dep


def stored_seqs(db, dep):
    return [e["seq"] for _, e in deployments.list_events(db, dep)]


def test_same_batch_five_times_shuffled_with_gaps_is_stored_once(console):
    db = console.db
    headers, dep, predicted = live_deployment(db, "once-a")
    with httpx.Client(base_url=console.url) as http:
        register_and_poll(http, headers, "once-a", dep)
        numbered = [dict(e, seq=i + 1) for i, e in enumerate(predicted)]
        n = len(numbered)
        gaps = {4, 11}  # lost on the link for now
        batch = [e for e in numbered if e["seq"] not in gaps]
        rnd = random.Random(3)
        first_ids = None
        for attempt in range(5):
            shuffled = list(batch)
            rnd.shuffle(shuffled)
            r = http.post("/api/deployments/%s/events" % dep, headers=headers, json=shuffled)
            assert r.status_code == 201, r.text
            body = r.json()
            assert body["acked_seq"] == 3
            ids = dict(zip([e["seq"] for e in shuffled], body["ids"]))
            if first_ids is None:
                first_ids = ids
            assert ids == first_ids  # a resend is acknowledged with its stored id
            assert stored_seqs(db, dep) == sorted(e["seq"] for e in batch)
        # the first gap arrives: acked_seq moves up to the next gap
        r = http.post("/api/deployments/%s/events" % dep, headers=headers, json=[numbered[3]])
        assert r.json()["acked_seq"] == 10
        # the last one, as a single event (reply {id, acked_seq})
        r = http.post("/api/deployments/%s/events" % dep, headers=headers, json=numbered[10])
        assert r.status_code == 201 and r.json()["acked_seq"] == n
        assert stored_seqs(db, dep) == list(range(1, n + 1))
        # every event type is there once, and the job completed exactly once
        assert http.get("/api/deployments/%s" % dep, headers=headers).json()["status"] == "completed"
        r = http.post("/api/deployments/%s/events" % dep, headers=headers, json=numbered)
        assert r.json()["acked_seq"] == n and stored_seqs(db, dep) == list(range(1, n + 1))


def test_acked_seq_follows_the_contiguous_prefix_for_random_delivery_orders(console):
    db = console.db
    headers, dep, predicted = live_deployment(db, "once-b", steps=10)
    numbered = [dict(e, seq=i + 1) for i, e in enumerate(predicted)]
    rnd = random.Random(11)
    delivered = set()
    with httpx.Client(base_url=console.url) as http:
        register_and_poll(http, headers, "once-b", dep)
        while len(delivered) < len(numbered):
            # a random window of events, some already delivered, in random order
            chunk = rnd.sample(numbered, rnd.randint(1, 12))
            r = http.post("/api/deployments/%s/events" % dep, headers=headers, json=chunk)
            assert r.status_code == 201, r.text
            delivered.update(e["seq"] for e in chunk)
            expected = 0
            while expected + 1 in delivered:
                expected += 1
            assert r.json()["acked_seq"] == expected
    assert stored_seqs(db, dep) == list(range(1, len(numbered) + 1))
