"""A full outbox never crashes the agent: the firmware under the real
MicroPython unix port, in its simulated world, against a real Console. With
the link down for a week the agent pauses its work before the outbox fills
(step.paused {reason: "outbox_full"}), keeps room for boot and health
events, and carries on when the link drains it (docs/recovery.md "A full
outbox")."""
import json

import pytest

from tools.scenario import Ground, Node, types
from tools.timefmt import parse

LINK_DOWN_AT_S = 900            # after the first pass has delivered the job
WEEK_S = 7 * 86400
# ~28 h of sunlit compute with a checkpoint every 5 min: some 600 events
# while the link is down, far more than the 96 KiB outbox holds
LONG_JOB = {"name": "a week without a link",
            "steps": [{"id": "a", "compute_s": 100000, "output_mb": 0.5, "checkpoint_interval_s": 300}],
            "policy": {"deadline_orbits": 30}}


@pytest.fixture
def ground(tmp_path):
    g = Ground(tmp_path)
    yield g
    g.close()


def test_a_job_whose_link_is_down_for_a_week_completes_after_it_returns_every_event_once(
        ground, tmp_path):
    dep = ground.deploy(LONG_JOB)
    node = Node(ground, tmp_path)
    script = [{"kind": "sensor", "sensor": "link", "mode": "stuck", "value": False,
               "at_s": LINK_DOWN_AT_S, "for_s": WEEK_S}]
    path = tmp_path / "link-down.json"
    path.write_text(json.dumps(script))
    argv, env = node.argv(until="2008-09-30T13:15:00Z", until_idle=True)
    argv[argv.index("--hours") + 1] = "300"
    argv += ["--faults", str(path)]
    import subprocess
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
    out = "\n".join(ln for ln in proc.stdout.splitlines() if ln != "WDT")
    assert proc.returncode == 0, out[-3000:]  # --until-idle reached: no crash
    summary = json.loads(out.splitlines()[-1])
    assert summary["reboots"] == 0 and summary["mode"] == "normal", out[-3000:]
    assert ground.status(dep) == "completed"
    # every event once: the Console holds seq 1..N, N what the agent numbered
    seqs = ground.all_seqs(node.agent_id)
    assert seqs == list(range(1, summary["seq"] + 1))
    evs = ground.events(dep)
    kinds = types(evs)
    assert kinds.count("job.accepted") == 1 and kinds.count("job.completed") == 1
    assert kinds.count("step.completed") == 1
    # the work paused for the outbox, and went on once the link had drained it
    full = [e for e in evs if e["type"] == "step.paused" and e["payload"]["reason"] == "outbox_full"]
    assert full, "the outbox never filled: the test proves nothing"
    back = parse("2008-09-20T13:15:00Z") + LINK_DOWN_AT_S + WEEK_S
    assert parse(full[0]["timestamp"]) < back
    resumed = [e for e in evs if e["type"] == "step.resumed" and parse(e["timestamp"]) >= back]
    assert resumed, "the step did not resume after the link returned"
    done = [e for e in evs if e["type"] == "job.completed"][0]
    assert parse(done["timestamp"]) > back
    # no crash, no safe mode: the agent booted once and said nothing else
    assert [e["type"] for e in ground.agent_events(node.agent_id)] == ["agent.booted"]
    assert summary["stats"]["telemetry_thinned"] > 0  # a week of reports, the newest kept
