"""Constellation deployments on a real Console (tools/console/constellations.py,
CONSTELLATION.md "Fleet and plan"): `umbra submit --fleet` makes a parent and
one child per satellite used, each agent polls its own child and gets the
whole DAG; the parent's events merge its children's; its status follows
theirs; a step's completion counts from its highest ownership epoch only;
fleets and jobs that cannot be planned are refused with the step named and
nothing stored. Child events are posted as agents post them: HTTP, agent
keys bound to the satellites."""
import json
import os
import subprocess
import sys

import httpx
import pytest

import timeutil
import uplink
from tools import ROOT
from tools.console import auth, catalog
from tools.console.server import serve_in_thread

TRAIN = os.path.join(ROOT, "examples", "fleets", "train-4.json")


def train():
    with open(TRAIN) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def console(db_target):
    srv = serve_in_thread(db_target("fleet"))
    srv.user_key = auth.create_key(srv.db, "user")["key"]
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def train_plan(console):
    """The train's constellation plan, planned once on this Console (stored)."""
    doc = train()
    r = httpx.post(console.url + "/v1/constellation/plan", timeout=120,
                   headers={"X-API-Key": console.user_key},
                   json={"fleet": doc["fleet"], "epoch": doc["epoch"], "job": doc["job"]})
    assert r.status_code == 200, r.text
    return r.json()


def deploy(console, plan):
    r = httpx.post(console.url + "/api/deployments", headers={"X-API-Key": console.user_key},
                   json={"plan_id": plan["id"], "mode": "live"})
    assert r.status_code == 201, r.text
    return r.json()


_agents = {}


def agent(console, satellite_id, tag):
    """A registered agent for the satellite (its key bound to it): its headers."""
    name = "agent-%s-%s" % (tag, satellite_id)
    known = (console.url, name)  # per Console: the module runs on each backend
    if known not in _agents:
        key = auth.create_key(console.db, "agent", name, rate_limited=False,
                              satellite_id=satellite_id)["key"]
        h = {"X-API-Key": key, "X-Agent-ID": name, "X-Umbra-Compact": "1"}
        r = httpx.post(console.url + "/api/agent/register", headers=h,
                       json={"agent_id": name, "agent_version": "0.2.0"})
        assert r.status_code == 201, r.text
        _agents[known] = [h, 0]
    return _agents[known]


def poll(console, a):
    return httpx.get(console.url + "/api/agent/workloads", headers=a[0])


def ev(a, etype, t, step=None, **payload):
    """An event as the agent sends it, numbered with the agent's next seq."""
    a[1] += 1
    return {"type": etype, "timestamp": timeutil.iso_utc(t), "job_id": "j", "step_id": step,
            "seq": a[1], "payload": payload}


def send(console, a, dep_id, evs):
    r = httpx.post(console.url + "/api/deployments/%s/events" % dep_id, headers=a[0], json=evs)
    assert r.status_code == 201, r.text


def status(console, dep_id):
    r = httpx.get(console.url + "/api/deployments/%s" % dep_id,
                  headers={"X-API-Key": console.user_key})
    assert r.status_code == 200, r.text
    return r.json()


def launch(console, plan, tag):
    """Deploy the plan and have each child's agent poll it: {satellite: (agent, child id)}."""
    dep = deploy(console, plan)
    out = {}
    for ch in dep["children"]:
        a = agent(console, ch["satellite_id"], tag)
        r = poll(console, a)
        assert r.status_code == 200 and r.json()["deployment_id"] == ch["deployment_id"]
        out[ch["satellite_id"]] = (a, ch["deployment_id"])
    return dep["id"], out


def done(sat):
    return {"satellite_id": sat, "steps_completed": 1, "steps_failed_over": 0}


def test_submit_fleet_makes_a_parent_and_a_child_per_satellite_and_each_agent_gets_its_own(
        console, mpy, tmp_path):
    doc = train()
    out = subprocess.run(
        [sys.executable, "-m", "tools.cli", "submit", "--fleet", TRAIN,
         "--console", console.url, "--key", console.user_key],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    parent = out.stdout.strip()
    assert "critical path" in out.stderr and parent in out.stderr
    view = status(console, parent)
    assert view["kind"] == "parent" and view["status"] == "pending"
    assert view["steps_total"] == len(doc["job"]["steps"])
    plan = httpx.get(console.url + "/v1/plan/%s/events" % view["plan_id"],
                     headers={"X-API-Key": console.user_key})
    assert plan.status_code == 200
    planned = dict((s["step_id"], s["satellite"]) for s in view["steps"])
    # a child for every satellite that may run a step: its owner, or an
    # alternate (which takes it over in orbit, so it needs the job too)
    used = sorted(set(planned.values()) | set(a for s in view["steps"] for a in s["alternates"]))
    assert sorted(c["satellite_id"] for c in view["children"]) == used
    for ch in view["children"]:
        a = agent(console, ch["satellite_id"], "submit")
        r = poll(console, a)
        assert r.status_code == 200, r.text
        spec = r.json()
        assert spec["deployment_id"] == ch["deployment_id"]
        assert spec["satellite_id"] == ch["satellite_id"]
        # the board's own parser takes it; it carries the whole DAG and who runs what
        workload, reason = uplink.load_workload(r.content.decode())
        assert reason is None, reason
        body = tmp_path / ("%s.json" % ch["satellite_id"])
        body.write_bytes(r.content)
        res = mpy("""
            import uplink
            w, reason = uplink.load_workload(open(%r).read())
            c = w["plan_data"]["constellation"]
            print(reason, len(w["job"]["steps"]), c["satellite_id"], c["fleet"][c["steps"][0][1]])
        """ % str(body))
        assert res.returncode == 0, res.stderr
        assert res.stdout.split() == ["None", str(len(doc["job"]["steps"])), ch["satellite_id"],
                                      planned[doc["job"]["steps"][0]["id"]]]
        assert [s["id"] for s in workload["job"]["steps"]] == \
            [s["id"] for s in doc["job"]["steps"]]
        cons = spec["plan_data"]["constellation"]
        assert cons["parent_id"] == parent and cons["satellite_id"] == ch["satellite_id"]
        fleet = cons["fleet"]  # owners, alternates and route hops index it
        assert fleet == [s["satellite_id"] for s in doc["fleet"]]
        assert dict((e[0], fleet[e[1]]) for e in cons["steps"]) == planned
        routed = 0
        for e in cons["steps"]:
            sid, owner, alternates = e[0], fleet[e[1]], [fleet[i] for i in e[2]]
            assert owner not in alternates and alternates == \
                next(s["alternates"] for s in view["steps"] if s["step_id"] == sid)
            for inp, route in (e[3] if len(e) > 3 else {}).items():
                assert fleet[route[0]] == planned[inp] and fleet[route[-1]] == owner
                routed += 1
        assert routed == sum(1 for s in doc["job"]["steps"] for d in s.get("depends_on", ())
                             if planned[d] != planned[s["id"]])
        assert len(r.content) < uplink.MAX_SPEC_BYTES
        assert status(console, ch["deployment_id"])["status"] == "dispatched"
    # a satellite of the fleet the plan does not use has nothing to do
    for s in doc["fleet"]:
        if s["satellite_id"] not in used:  # (the operator adds it to the catalog)
            catalog.add(console.db, s["satellite_id"], s["name"],
                        elements=dict(s["orbit"], epoch=doc["epoch"]))
            assert poll(console, agent(console, s["satellite_id"], "submit")).status_code == 204
    assert status(console, parent)["status"] == "dispatched"


def test_the_parent_stream_holds_every_child_event_once_in_time_order(console, train_plan):
    parent, kids = launch(console, train_plan, "merge")
    t0 = timeutil.parse_iso(train_plan["epoch"])
    sent = []
    # each satellite reports in two batches, the later batch first for one of them,
    # timestamps interleaved across satellites and one tie broken by satellite id
    for i, (sat, (a, dep)) in enumerate(sorted(kids.items())):
        first = [ev(a, "job.accepted", t0 + i, name="x", steps=5),
                 ev(a, "step.started", t0 + 30, "s", location="onboard", window=None,
                    window_label="")]
        second = [ev(a, "step.completed", t0 + 100 - i, "s", duration_s=1, location="onboard",
                     data_output_mb=1)]
        for batch in ((second, first) if i == 0 else (first, second)):
            send(console, a, dep, batch)
        send(console, a, dep, batch)  # a resend: stored once
        sent += [(sat, e) for e in first + second]
    r = httpx.get(console.url + "/api/deployments/%s/events" % parent,
                  headers={"X-API-Key": console.user_key})
    assert r.status_code == 200, r.text
    got = r.json()["events"]
    assert r.json()["count"] == len(sent) == len(got)
    assert sorted((e["satellite_id"], e["seq"]) for e in got) == \
        sorted((sat, e["seq"]) for sat, e in sent)
    keys = [(timeutil.parse_iso(e["timestamp"]), e["satellite_id"], e["seq"]) for e in got]
    assert keys == sorted(keys)
    for e in got:  # each event under its child, with its own satellite
        assert e["deployment_id"] == kids[e["satellite_id"]][1]
    # the live stream: every event once, then the end once the parent finished
    finals = []
    for sat, (a, dep) in sorted(kids.items()):
        finals.append((sat, ev(a, "constellation.satellite_complete", t0 + 500, **done(sat))))
    streamed, end = [], None
    with httpx.Client(base_url=console.url, headers={"X-API-Key": console.user_key},
                      timeout=httpx.Timeout(10.0, read=30.0)) as c:
        with c.stream("GET", "/api/deployments/%s/events" % parent,
                      params={"follow": 1}) as s:
            lines = s.iter_lines()
            name = None
            pending = list(finals)
            for line in lines:
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data = json.loads(line[5:])
                    if name == "end":
                        end = data
                        break
                    streamed.append(data)
                    if len(streamed) == len(sent) and pending:
                        # the stream has caught up: the satellites finish now
                        for sat, e in pending:
                            send(console, kids[sat][0], kids[sat][1], [e])
                        pending = []
    assert end is not None and end["status"] == "completed"
    assert sorted((e["satellite_id"], e["seq"]) for e in streamed) == \
        sorted([(sat, e["seq"]) for sat, e in sent] + [(sat, e["seq"]) for sat, e in finals])


def test_one_failed_child_and_the_rest_done_reads_partial(console, train_plan):
    parent, kids = launch(console, train_plan, "partial")
    t0 = timeutil.parse_iso(train_plan["epoch"])
    sats = sorted(kids)
    assert status(console, parent)["status"] == "dispatched"
    a, dep = kids[sats[0]]
    send(console, a, dep, [ev(a, "job.failed", t0 + 10, total_duration_s=10, status="partial",
                              reason="no eligible alternate")])
    assert status(console, dep)["status"] == "failed"
    assert status(console, parent)["status"] == "running"  # the others are not done yet
    for sat in sats[1:-1]:
        a, dep = kids[sat]
        send(console, a, dep, [ev(a, "constellation.satellite_complete", t0 + 20, **done(sat))])
    assert status(console, parent)["status"] == "running"
    a, dep = kids[sats[-1]]
    send(console, a, dep, [ev(a, "job.completed", t0 + 30, total_duration_s=30,
                              status="completed")])
    view = status(console, parent)
    assert view["status"] == "partial" and view["finished_at"]
    assert sorted(c["status"] for c in view["children"]) == \
        sorted(["failed"] + ["completed"] * (len(sats) - 1))
    # the CLI: every child's event, each line led by its satellite; --follow ends
    # at once on the finished parent, exit 1 (not completed)
    for args in ([], ["--follow"]):
        out = subprocess.run([sys.executable, "-m", "tools.cli", "events", parent] + args +
                             ["--console", console.url, "--key", console.user_key],
                             cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, NO_COLOR="1"))
        lines = out.stdout.strip().splitlines()
        assert out.returncode == (1 if args else 0), out.stderr
        assert sorted(l.split()[0] for l in lines) == sorted(sats)
        if args:
            assert "partial" in out.stderr


def test_all_children_completed_reads_completed_and_all_failed_reads_failed(console, train_plan):
    t0 = timeutil.parse_iso(train_plan["epoch"])
    for tag, end in (("allok", "ok"), ("allbad", "bad")):
        parent, kids = launch(console, train_plan, tag)
        for sat, (a, dep) in kids.items():
            e = ev(a, "constellation.satellite_complete", t0, **done(sat)) if end == "ok" else \
                ev(a, "job.failed", t0, total_duration_s=1, status="failed", reason="x")
            send(console, a, dep, [e])
        assert status(console, parent)["status"] == ("completed" if end == "ok" else "failed")


def test_a_steps_completion_counts_only_from_its_highest_epoch(console, train_plan):
    """infer_a's owner falls silent; an alternate takes it over (epoch 2) and
    completes it; the old owner comes back and reports its own completion
    (epoch 1) later: stored, shown, not counted."""
    parent, kids = launch(console, train_plan, "epoch")
    t0 = timeutil.parse_iso(train_plan["epoch"])
    step = dict((s["step_id"], s) for s in train_plan["steps"])["infer_a"]
    old = step["satellite"]
    new = next(s for s in step["alternates"] if s in kids and s != old) if \
        any(s in kids and s != old for s in step["alternates"]) else \
        next(s for s in kids if s != old)
    a_old, d_old = kids[old]
    a_new, d_new = kids[new]
    send(console, a_old, d_old, [ev(a_old, "constellation.step_started", t0 + 10, "infer_a",
                                    step_id="infer_a", satellite_id=old, epoch=1)])
    send(console, a_new, d_new, [
        ev(a_new, "constellation.failover_acknowledged", t0 + 400, "infer_a", step_id="infer_a",
           to_satellite=new, epoch=2),
        ev(a_new, "constellation.step_started", t0 + 401, "infer_a", step_id="infer_a",
           satellite_id=new, epoch=2),
        ev(a_new, "constellation.step_completed", t0 + 1300, "infer_a", step_id="infer_a",
           duration_s=899, data_output_mb=20, epoch=2)])
    # the old owner, cut off, went on computing and finished first by its own clock
    # (t0 + 1200); back after the partition, it reports that completion of epoch 1
    late = ev(a_old, "constellation.step_completed", t0 + 1200, "infer_a", step_id="infer_a",
              duration_s=900, data_output_mb=20, epoch=1)
    send(console, a_old, d_old, [late])
    view = dict((s["step_id"], s) for s in status(console, parent)["steps"])["infer_a"]
    assert view["status"] == "completed" and view["epoch"] == 2 and view["owner"] == new
    assert (view["completed_by"]["satellite_id"], view["completed_by"]["epoch"]) == (new, 2)
    assert [(c["satellite_id"], c["epoch"]) for c in view["ignored_completions"]] == [(old, 1)]
    assert status(console, parent)["steps_completed"] == 1
    evs = httpx.get(console.url + "/api/deployments/%s/events" % parent,
                    headers={"X-API-Key": console.user_key}).json()["events"]
    completions = [(e["satellite_id"], e["payload"]["epoch"], e["counted"]) for e in evs
                   if e["type"] == "constellation.step_completed"]
    assert completions == [(old, 1, False), (new, 2, True)]  # both kept, one counted
    # an epoch that is not an integer >= 1 is refused, nothing stored
    for bad in (0, "2", True, 1.5):
        r = httpx.post(console.url + "/api/deployments/%s/events" % d_old, headers=a_old[0],
                       json=[dict(ev(a_old, "constellation.step_started", t0 + 2000, "infer_b",
                                     step_id="infer_b", satellite_id=old), payload={
                           "step_id": "infer_b", "satellite_id": old, "epoch": bad})])
        assert r.status_code == 400 and "epoch" in r.json()["error"], r.text
        a_old[1] -= 1


def test_a_completion_from_the_lower_epoch_first_stops_counting_once_a_higher_epoch_is_seen(
        console, train_plan):
    parent, kids = launch(console, train_plan, "epoch2")
    t0 = timeutil.parse_iso(train_plan["epoch"])
    planned = dict((s["step_id"], s) for s in train_plan["steps"])["capture_a"]["satellite"]
    sats = [planned] + [s for s in sorted(kids) if s != planned]
    a1, d1 = kids[sats[0]]
    a2, d2 = kids[sats[1]]
    send(console, a1, d1, [ev(a1, "constellation.step_completed", t0 + 100, "capture_a",
                              step_id="capture_a", duration_s=1, data_output_mb=1, epoch=1)])
    view = dict((s["step_id"], s) for s in status(console, parent)["steps"])["capture_a"]
    assert view["completed_by"]["satellite_id"] == sats[0]
    # a takeover with epoch 2 is seen: epoch 1's completion no longer counts; the
    # step waits for epoch 2's
    send(console, a2, d2, [ev(a2, "constellation.failover_acknowledged", t0 + 50, "capture_a",
                              step_id="capture_a", to_satellite=sats[1], epoch=2)])
    view = dict((s["step_id"], s) for s in status(console, parent)["steps"])["capture_a"]
    assert view["completed_by"] is None and view["status"] == "failed_over"
    send(console, a2, d2, [ev(a2, "constellation.step_completed", t0 + 200, "capture_a",
                              step_id="capture_a", duration_s=1, data_output_mb=1, epoch=2)])
    view = dict((s["step_id"], s) for s in status(console, parent)["steps"])["capture_a"]
    assert (view["completed_by"]["satellite_id"], view["completed_by"]["epoch"]) == (sats[1], 2)


def far_pair():
    """Two satellites half an orbit apart (never in ISL range) and a deadline."""
    doc = train()
    a = dict(doc["fleet"][0])
    b = dict(doc["fleet"][3], orbit=dict(doc["fleet"][3]["orbit"], mean_anomaly_deg=180))
    return doc, [a, b]


@pytest.mark.parametrize("case", ["cycle", "role", "no_route"])
def test_jobs_that_cannot_be_planned_are_422_naming_the_step_and_store_nothing(console, case,
                                                                               tmp_path):
    doc = train()
    fleet, job = doc["fleet"], doc["job"]
    if case == "cycle":
        job = {"name": "loop", "steps": [
            {"id": "a", "compute_s": 60, "depends_on": ["c"]},
            {"id": "b", "compute_s": 60, "depends_on": ["a"]},
            {"id": "c", "compute_s": 60, "depends_on": ["b"]}]}
        named = ("a", "b", "c")
    elif case == "role":
        fleet = [s for s in fleet if s["role"] != "aggregator"]
        job = dict(job, steps=[dict(s, role="aggregator") if s["id"] == "aggregate" else s
                               for s in job["steps"]])
        named = ("'aggregate'", "aggregator")
    else:
        # capture on the compute satellite, the sink only on the aggregator half an
        # orbit away: no ISL route ever, the pair is named
        _, fleet = far_pair()
        job = {"name": "far", "steps": [
            {"id": "capture", "compute_s": 60, "output_mb": 10, "role": "compute"},
            {"id": "sink", "compute_s": 60, "depends_on": ["capture"], "role": "aggregator"}],
            "policy": {"deadline_orbits": 2}}
        named = ("'sink'", "'capture'", fleet[0]["satellite_id"], fleet[1]["satellite_id"])
    before = console.db.counts()
    r = httpx.post(console.url + "/v1/constellation/plan", timeout=120,
                   headers={"X-API-Key": console.user_key},
                   json={"fleet": fleet, "epoch": doc["epoch"], "job": job})
    assert r.status_code == 422, r.text
    for word in named:
        assert word in r.json()["error"], r.json()
    assert console.db.counts() == before
    if case == "cycle":  # the CLI says the same and exits 1 (the Console refused)
        bad = tmp_path / "loop.json"
        bad.write_text(json.dumps({"epoch": doc["epoch"], "fleet": fleet, "job": job}))
        out = subprocess.run([sys.executable, "-m", "tools.cli", "submit", "--fleet", str(bad),
                              "--console", console.url, "--key", console.user_key],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 1 and "422" in out.stderr and "a, b, c" in out.stderr
        assert console.db.counts() == before


def wait_finished(console, dep_id, timeout_s=30):
    import time
    deadline = time.monotonic() + timeout_s
    while True:
        view = status(console, dep_id)
        if view["status"] in ("completed", "partial", "failed", "cancelled") or \
                time.monotonic() > deadline:
            return view
        time.sleep(0.1)


def test_a_simulated_constellation_writes_the_predicted_fleet_stream_and_compares_identical(
        console, train_plan):
    """`umbra submit --fleet --mode simulated`: each child writes its
    satellite's share of the plan's predicted fleet stream; the parent's
    merged stream is that stream, event for event; `umbra events PARENT
    --compare` finds it as predicted."""
    out = subprocess.run([sys.executable, "-m", "tools.cli", "submit", "--fleet", TRAIN,
                          "--mode", "simulated", "--console", console.url,
                          "--key", console.user_key], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    parent = out.stdout.strip().splitlines()[-1]
    assert "(simulated)" in out.stderr
    view = wait_finished(console, parent)
    assert view["status"] == "completed"
    assert all(c["status"] == "completed" and c["agent_id"] is None for c in view["children"])
    plan_id = view["plan_id"]
    r = httpx.get(console.url + "/v1/plan/%s/events" % plan_id,
                  headers={"X-API-Key": console.user_key})
    predicted = r.json()["events"]
    assert predicted and predicted[-1]["type"] == "job.completed"
    got = httpx.get(console.url + "/api/deployments/%s/events" % parent,
                    headers={"X-API-Key": console.user_key}).json()["events"]
    keys = ("satellite_id", "type", "timestamp", "job_id", "step_id", "payload")
    assert [dict((k, e.get(k)) for k in keys) for e in got] == predicted
    # every step counted once, from its planned satellite
    steps = dict((st["step_id"], st) for st in view["steps"])
    for s in train_plan["steps"]:
        assert steps[s["step_id"]]["completed_by"]["satellite_id"] == s["satellite"]
    cmp = subprocess.run([sys.executable, "-m", "tools.cli", "events", parent, "--compare",
                          "--json", "--console", console.url, "--key", console.user_key],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    summary = json.loads(cmp.stdout)["summary"]
    assert summary["identical"] and summary["matched"] == len(predicted)


def test_compare_shows_a_failover_on_the_two_satellites_it_moved_between(console, train_plan):
    """The fleet flies the plan with its owner of infer_a drained mid-step
    (the fleet's own agents, fleetforecast.py); each satellite's agent posts
    what it emitted to its child; `umbra events PARENT --compare` aligns the
    merged stream with the predicted one satellite by satellite: the failover
    shows on the drained owner and the alternate that took the step, every
    other satellite as predicted."""
    import fleet
    from tools.planner import fleetforecast
    doc = train()
    victim = [s["satellite"] for s in train_plan["steps"] if s["step_id"] == "infer_a"][0]
    out = fleetforecast.run(fleet.FleetWorld(doc, hours=24), train_plan, doc["job"],
                            faults=[{"kind": "drain", "satellite": victim, "at_s": 1800,
                                     "soc": 0.08}])
    to = [e for e in out.merged() if e["type"] == "constellation.failover"][0]["payload"][
        "to_satellite"]
    parent, kids = launch(console, train_plan, "diverge")
    for sat, (a, dep) in kids.items():
        send(console, a, dep, [dict((k, e[k]) for k in ("type", "timestamp", "job_id",
                                                          "step_id", "seq", "payload"))
                               for e in out.events[sat]])
    cmp = subprocess.run([sys.executable, "-m", "tools.cli", "events", parent, "--compare",
                          "--json", "--console", console.url, "--key", console.user_key],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert cmp.returncode == 1, cmp.stdout + cmp.stderr
    rows = json.loads(cmp.stdout)["rows"]
    off = set(r["satellite_id"] for r in rows if r["mark"] != "=")
    assert off == {victim, to}
    extra = [(r["satellite_id"], r["executed"]["type"], r["note"]) for r in rows
             if r["mark"] == "+"]
    assert (victim, "constellation.failover", "reason=battery_critical") in extra
    assert (to, "constellation.failover_acknowledged", "") in [x[:2] + ("",) for x in extra]
    assert [r["mark"] for r in rows if r["satellite_id"] == victim and r["predicted"] and
            r["predicted"]["type"] == "constellation.step_completed"] == ["-"]
    for sat in kids:  # each satellite's executed events once, in its own order
        seqs = [r["executed"]["seq"] for r in rows if r["executed"] and r["satellite_id"] == sat]
        assert seqs == [e["seq"] for e in out.events[sat]]


def test_a_constellation_plan_without_a_predicted_stream_cannot_be_simulated(console, train_plan):
    """A plan stored without its fleet stream (by a Console from before it was
    predicted) deploys live only; nothing is stored."""
    from tools.console import constellations, deployments
    old = dict(deployments.get_plan(console.db, train_plan["id"]), id="cplan-old", events=[])
    constellations.save_plan(console.db, old)
    before = console.db.counts()
    r = httpx.post(console.url + "/api/deployments", headers={"X-API-Key": console.user_key},
                   json={"plan_id": "cplan-old", "mode": "simulated"})
    assert r.status_code == 422 and "no predicted fleet stream" in r.json()["error"]
    assert console.db.counts() == before


def cancel_parent(console, parent):
    """Cancel a parent: it and every child read cancelled. Returns its view."""
    r = httpx.post(console.url + "/api/deployments/%s/cancel" % parent,
                   headers={"X-API-Key": console.user_key})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    view = status(console, parent)
    assert view["status"] == "cancelled"
    assert set(c["status"] for c in view["children"]) == {"cancelled"}
    return view


def test_cancelling_a_simulated_parent_ends_every_child_cancelled(console, train_plan):
    r = httpx.post(console.url + "/api/deployments", headers={"X-API-Key": console.user_key},
                   json={"plan_id": train_plan["id"], "mode": "simulated",
                         "speed_multiplier": 1.0})  # real time: hours to go
    assert r.status_code == 201, r.text
    parent = r.json()["id"]
    view = cancel_parent(console, parent)
    got = httpx.get(console.url + "/api/deployments/%s/events" % parent,
                    headers={"X-API-Key": console.user_key}).json()["events"]
    ends = [(e["satellite_id"], e["payload"].get("status")) for e in got
            if e["type"] == "job.failed"]
    assert sorted(ends) == sorted((c["satellite_id"], "cancelled") for c in view["children"])


def test_cancelling_the_parent_cancels_its_children_and_tells_their_agents(console, train_plan):
    parent, kids = launch(console, train_plan, "cancel")
    cancel_parent(console, parent)
    for sat, (a, dep) in kids.items():
        assert poll(console, a).json().get("cancel") == [dep]


def test_a_database_from_before_constellations_is_migrated_and_keeps_its_deployments(tmp_path):
    """A Console database whose deployments table predates kind/parent_id
    opens: the columns are added (old rows are 'single'), the parent index
    made, and a constellation can be deployed into it."""
    import sqlite3
    from tools.console import constellations, deployments
    from tools.console.db import Database
    path = str(tmp_path / "old.db")
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE plans (id TEXT PRIMARY KEY, satellite_id TEXT NOT NULL,
                            created_at TEXT NOT NULL, data TEXT NOT NULL);
        CREATE TABLE deployments (id TEXT PRIMARY KEY, plan_id TEXT NOT NULL REFERENCES plans(id),
            satellite_id TEXT NOT NULL, mode TEXT NOT NULL, speed_multiplier REAL NOT NULL,
            status TEXT NOT NULL, agent_id TEXT, cancel_pending INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL, dispatched_at TEXT,
            finished_at TEXT);
        INSERT INTO plans VALUES ('plan-old', '25544', '2026-01-01T00:00:00Z', '{}');
        INSERT INTO deployments (id, plan_id, satellite_id, mode, speed_multiplier, status,
            created_at, updated_at) VALUES ('dep-old', 'plan-old', '25544', 'live', 1,
            'completed', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
    """)
    old.commit()
    old.close()
    db = Database(path)
    assert deployments.get(db, "dep-old")["kind"] == "single"
    assert deployments.get(db, "dep-old")["parent_id"] is None
    assert db.one("SELECT name FROM sqlite_master WHERE name = 'deployments_by_parent'")
    plan = {"id": "cplan-x", "kind": "constellation", "created_at": "2026-03-08T00:00:00Z",
            "fleet": ["a", "b"], "job": {"name": "j", "steps": [{"id": "s", "compute_s": 1}]},
            "steps": [{"step_id": "s", "satellite": "b", "alternates": ["a"], "depends_on": []}]}
    constellations.save_plan(db, plan)
    parent, kids = constellations.create(db, plan)
    assert sorted(kids) == ["a", "b"] and deployments.get(db, kids["b"])["parent_id"] == parent
    Database(path)  # opening again changes nothing


# ---------------------------------------------------------------- the ground's end

def telemetry(console, a, t):
    """A heartbeat as the agent sends it in a pass (its spacecraft time t)."""
    name = a[0]["X-Agent-ID"]
    r = httpx.post(console.url + "/api/agent/telemetry", headers=a[0],
                   json={"agent_id": name, "status": "idle", "timestamp": timeutil.iso_utc(t)})
    assert r.status_code == 200, r.text


def merged(console, parent):
    r = httpx.get(console.url + "/api/deployments/%s/events" % parent,
                  headers={"X-API-Key": console.user_key})
    assert r.status_code == 200, r.text
    return r.json()["events"]


def closer_lost_after_its_last_step(console, plan, tag):
    """The train's job flown until its closer (the aggregator, owner of the last
    step) is lost after completing it, before its downlink: the others were told
    over ISL and ended their parts; the closer's last word at the Console is the
    last step's start. -> (parent, kids, closer)."""
    parent, kids = launch(console, plan, tag)
    t0 = timeutil.parse_iso(plan["epoch"])
    closer = dict((s["step_id"], s["satellite"]) for s in plan["steps"])["aggregate"]
    for sat, (a, dep) in sorted(kids.items()):
        send(console, a, dep, [ev(a, "job.accepted", t0 + 180, name="x", steps=5)])
    a, dep = kids[closer]
    send(console, a, dep, [ev(a, "constellation.step_started", t0 + 2400, "aggregate",
                              step_id="aggregate", satellite_id=closer, epoch=1)])
    for sat, (a, dep) in sorted(kids.items()):
        if sat != closer:
            send(console, a, dep, [ev(a, "constellation.satellite_complete", t0 + 3000,
                                      **done(sat))])
    return parent, kids, closer


def test_a_child_that_never_ends_is_failed_by_the_ground_once_past_the_deadline_and_its_grace(
        console, train_plan):
    from tools.console import constellations
    parent, kids, closer = closer_lost_after_its_last_step(console, train_plan, "ground")
    until = int(train_plan["start"] + train_plan["horizon_s"])
    grace = constellations.GROUND_END_GRACE_S
    view = status(console, parent)
    assert view["status"] == "running" and view["deadline"] == timeutil.iso_utc(until)
    # the survivors keep reporting in their passes: the fleet's clock, as the ground knows it
    others = [sat for sat in sorted(kids) if sat != closer]
    telemetry(console, kids[others[0]][0], until + 60)
    assert status(console, parent)["status"] == "running"  # past the deadline, not the grace
    telemetry(console, kids[others[1]][0], until + grace - 60)
    assert status(console, parent)["status"] == "running"
    telemetry(console, kids[others[0]][0], until + grace + 60)
    view = status(console, parent)
    assert view["status"] == "partial" and view["finished_at"]
    by_sat = dict((c["satellite_id"], c) for c in view["children"])
    assert by_sat[closer]["status"] == "failed" and by_sat[closer]["ended_by"] == "ground"
    reason = by_sat[closer]["reason"]
    assert "no word from satellite %s" % closer in reason and timeutil.iso_utc(until) in reason
    assert all(by_sat[s]["status"] == "completed" and "ended_by" not in by_sat[s] for s in others)
    # in the merged stream: the Console's own record, marked as the ground's, once
    ground = [e for e in merged(console, parent) if e["agent_id"] == "ground"]
    assert [(e["satellite_id"], e["type"], e["payload"]["status"], e["payload"]["reason"])
            for e in ground] == [(closer, "job.failed", "failed", reason)]
    assert timeutil.parse_iso(ground[0]["timestamp"]) >= until + grace
    # once: more reads, more reports and the Console's sweep add nothing
    telemetry(console, kids[others[1]][0], until + grace + 4000)
    for _ in range(2):
        assert status(console, parent)["status"] == "partial"
    assert constellations.sweep(console.db, grace) == {}
    assert [e["agent_id"] for e in merged(console, parent)].count("ground") == 1
    assert console.db.one("SELECT COUNT(*) FROM events WHERE origin LIKE 'ground:%' AND "
                          "deployment_id = ?", (kids[closer][1],))[0] == 1
    # the closer's agent seqs are untouched: its next event is still its own seq 3
    assert console.db.one("SELECT MAX(seq) FROM events WHERE origin = ?",
                          (kids[closer][0][0]["X-Agent-ID"],))[0] == kids[closer][0][1]


def test_a_lost_satellites_late_report_after_the_grounds_end_is_stored_once_and_changes_nothing(
        console, train_plan):
    """The closer comes back after the ground ended its part and downlinks what
    it held: its last step's completion, its part's end, the job's end. Each is
    stored once (resent too); its child stays failed, the parent partial; the
    step view counts the completion of the step's highest epoch (the result did
    arrive), and the late job.completed is kept but not counted."""
    from tools.console import constellations
    parent, kids, closer = closer_lost_after_its_last_step(console, train_plan, "late")
    until = int(train_plan["start"] + train_plan["horizon_s"])
    other = next(sat for sat in sorted(kids) if sat != closer)
    telemetry(console, kids[other][0], until + constellations.GROUND_END_GRACE_S + 1)
    ended = status(console, parent)
    assert ended["status"] == "partial"
    t0 = timeutil.parse_iso(train_plan["epoch"])
    a, dep = kids[closer]
    late = [ev(a, "constellation.step_completed", t0 + 2600, "aggregate", step_id="aggregate",
               duration_s=200, data_output_mb=5, epoch=1),
            ev(a, "constellation.satellite_complete", until + 9000, **done(closer)),
            ev(a, "job.completed", until + 9000, total_duration_s=until + 9000 - t0,
               status="completed")]
    send(console, a, dep, late)
    send(console, a, dep, late)  # a resend: stored once
    view = status(console, parent)
    assert (view["status"], view["finished_at"]) == ("partial", ended["finished_at"])
    assert dict((c["satellite_id"], c["status"]) for c in view["children"])[closer] == "failed"
    evs = [e for e in merged(console, parent) if e["satellite_id"] == closer]
    assert [e["seq"] for e in evs if e["agent_id"] != "ground"] == list(range(1, a[1] + 1))
    assert [(e["type"], e.get("counted")) for e in evs if e["type"].startswith("job.")] == \
        [("job.accepted", None), ("job.failed", None), ("job.completed", False)]
    assert [e["agent_id"] for e in evs if e["type"] == "job.failed"] == ["ground"]
    step = dict((s["step_id"], s) for s in view["steps"])["aggregate"]
    assert (step["completed_by"]["satellite_id"], step["completed_by"]["epoch"]) == (closer, 1)
    # `umbra events PARENT`: the ground's record and the late end say what they are
    out = subprocess.run([sys.executable, "-m", "tools.cli", "events", parent, "--console",
                          console.url, "--key", console.user_key], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, NO_COLOR="1"))
    assert out.returncode == 0, out.stderr
    ends = [(l.split()[3], l.split()[5]) for l in out.stdout.splitlines()
            if l.split()[0] == closer and l.split()[3] in ("job.completed", "job.failed")]
    assert ends == [("job.failed", "BY-THE-GROUND"),
                    ("job.completed", "NOT-COUNTED(after")], out.stdout


def test_a_parent_none_of_whose_children_ended_reads_failed_after_the_grounds_end(
        console, train_plan):
    from tools.console import constellations
    parent, kids = launch(console, train_plan, "silent")
    until = int(train_plan["start"] + train_plan["horizon_s"])
    a, dep = kids[sorted(kids)[0]]
    send(console, a, dep, [ev(a, "job.accepted", until + constellations.GROUND_END_GRACE_S,
                              name="x", steps=5)])
    view = status(console, parent)
    assert view["status"] == "failed"
    assert all(c["status"] == "failed" and c["ended_by"] == "ground" for c in view["children"])
    assert sorted(e["satellite_id"] for e in merged(console, parent)
                  if e["agent_id"] == "ground") == sorted(kids)


def test_the_consoles_sweep_ends_an_overdue_parent_no_one_reads(console, train_plan, tmp_path):
    """A Console whose sweep runs every 0.2 s, with a grace of 60 s: the parent
    ends without a read, and its end is in the database for good."""
    from tools.console import constellations, deployments
    from tools.console.db import Database
    from tools.console.server import serve_in_thread
    path = str(tmp_path / "sweep.db")
    srv = serve_in_thread(path, ground_end_grace_s=60, ground_end_sweep_s=0.2)
    try:
        srv.user_key = auth.create_key(srv.db, "user")["key"]
        constellations.save_plan(srv.db, deployments.get_plan(console.db, train_plan["id"]))
        parent, kids, closer = closer_lost_after_its_last_step(srv, train_plan, "sweep")
        until = int(train_plan["start"] + train_plan["horizon_s"])
        other = next(sat for sat in sorted(kids) if sat != closer)
        telemetry(srv, kids[other][0], until + 61)
        import time
        for _ in range(100):
            if deployments.get(srv.db, parent)["status"] != "running":
                break
            time.sleep(0.05)
    finally:
        srv.stop()
    db = Database(path)  # the Console is gone; its database holds the end
    assert deployments.get(db, parent)["status"] == "partial"
    assert deployments.get(db, kids[closer][1])["status"] == "failed"
    assert "+60 s" in json.loads(db.one("SELECT data FROM events WHERE origin = ?",
                                        ("ground:" + kids[closer][1],))["data"])["payload"]["reason"]
