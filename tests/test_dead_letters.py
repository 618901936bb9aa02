"""A refused event never vanishes (docs/recovery.md "Refused events"): the
firmware under the real MicroPython unix port, in its simulated world,
against a real Console. When the Console refuses a batch for good, the agent
keeps it on flash as dead letters, emits fault.detected {kind:
"events_refused"}, counts it in telemetry, goes on with its outbox, and
hands the dead letters to the Console's dead-letter endpoint, where the
ground reads them as they were sent."""
import json

import pytest

from tools.scenario import Ground, Node, load_job, types


@pytest.fixture
def ground(tmp_path):
    g = Ground(tmp_path)
    yield g
    g.close()


def test_a_batch_the_console_refuses_for_good_is_kept_counted_and_handed_to_the_ground(
        ground, tmp_path):
    dep = ground.deploy(load_job("standard-pipeline.json"))
    node = Node(ground, tmp_path)
    # first part: the job is taken at the first pass and its first events land
    code, summary, out = node.run(until="2008-09-20T13:24:00Z", until_idle=False)
    assert code == 4, out[-3000:]  # the end time reached (sim/node.py)
    landed = ground.all_seqs(node.agent_id)
    assert len(landed) >= 2, "nothing reached the Console before the refusals: proves nothing"
    # the ground hands the deployment to another satellite's agent: from now on
    # the Console refuses (409) every event of it this agent sends
    with ground.db.write() as c:
        c.execute("UPDATE deployments SET agent_id = 'sat-99999' WHERE id = ?", (dep,))
    code, summary, out = node.run()
    assert code == 0, out[-3000:]
    assert summary["reboots"] == 0 and summary["mode"] == "normal", out[-3000:]

    r = ground.http.get("/api/agents/%s/dead-letters" % node.agent_id)
    assert r.status_code == 200, r.text
    letters = r.json()["dead_letters"]
    assert letters, "no dead letters: the refused events went nowhere"
    dead = [d["seq"] for d in letters]
    assert dead == sorted(dead)
    # each as the agent spooled it: an event of the refused deployment
    assert all(d["deployment_id"] == dep and d["parsed"]["deployment_id"] == dep
               for d in letters)
    assert "job.completed" in [d["parsed"]["type"] for d in letters]

    # nothing vanished: every seq the agent numbered is an event or a dead
    # letter at the Console, never both, and the Console counts them all
    stored = ground.all_seqs(node.agent_id)
    assert not set(stored) & set(dead)
    assert sorted(stored + dead) == list(range(1, summary["seq"] + 1))
    acked = ground.db.one("SELECT acked_seq FROM acked WHERE origin = ?", (node.agent_id,))
    assert acked["acked_seq"] == summary["seq"]

    # the agent said so, once per refused batch, and counted them in telemetry
    faults = [e for e in ground.agent_events(node.agent_id)
              if e["type"] == "fault.detected" and e["payload"]["kind"] == "events_refused"]
    assert faults and sum(f["payload"]["count"] for f in faults) == len(dead)
    # (the latest report may predate the last refusal: it shows a total the
    # fault events reached, and no more dead letters than refused events)
    totals = [sum(f["payload"]["count"] for f in faults[:i + 1]) for i in range(len(faults))]
    tel = ground.agent(node.agent_id)["telemetry"]
    assert tel["events_refused"] in totals and 0 <= tel["dead_letters"] <= tel["events_refused"]
    assert "agent.booted" in types(ground.agent_events(node.agent_id))


def test_the_dead_letter_endpoint_validates_and_keeps_each_letter_once(ground, tmp_path):
    node = Node(ground, tmp_path)
    with open(node.cfg_path) as f:
        key = json.load(f)["api_key"]
    h = {"X-API-Key": key, "X-Agent-ID": node.agent_id}
    post = lambda body: ground.http.post("/api/agent/dead-letters", json=body, headers=h)
    assert post([{"seq": 1, "deployment_id": "", "event": "{}"}]).status_code == 404  # unregistered
    r = ground.http.post("/api/agent/register", headers=h,
                         json={"agent_id": node.agent_id, "agent_version": "t"})
    assert r.status_code == 201, r.text
    for bad in ([], {"seq": 1}, [{"seq": 0, "event": "x"}], [{"seq": 1, "event": 5}],
                [{"seq": 1}], [{"seq": 1, "event": "x" * 4097}]):
        r = post(bad)
        assert r.status_code == 400, (bad, r.text)
    assert ground.db.one("SELECT COUNT(*) AS n FROM dead_letters")["n"] == 0
    letter = [{"seq": 1, "deployment_id": "", "event": "not json, kept as sent"}]
    r = post(letter)
    assert r.status_code == 201 and (r.json()["stored"], r.json()["acked_seq"]) == (1, 1)
    r = post(letter)  # a resend after a lost reply: kept once
    assert r.status_code == 201 and (r.json()["stored"], r.json()["acked_seq"]) == (0, 1)
    # a user key reads them; an agent key may not
    got = ground.http.get("/api/agents/%s/dead-letters" % node.agent_id).json()
    assert got["count"] == 1 and got["dead_letters"][0]["parsed"] is None
    assert got["dead_letters"][0]["event"] == "not json, kept as sent"
    r = ground.http.get("/api/agents/%s/dead-letters" % node.agent_id, headers=h)
    assert r.status_code == 403
