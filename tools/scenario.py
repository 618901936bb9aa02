"""A ground-and-space scenario for tests and benchmarks: a real Console on
loopback (Ground), and the firmware agent with its simulated world in one
MicroPython process (sim/node.py) on the simulated clock (Node). Only the
hardware is simulated."""
import json
import os
import subprocess
import uuid

import httpx

from tools import ROOT, upy
from tools.console import auth, deployments
from tools.console.server import serve_in_thread

NODE = os.path.join(ROOT, "sim", "node.py")
# The catalog's ISS elements (epoch 2008-09-20): from 13:15 the first pass is
# 13:21-13:28 (Hartebeesthoek), eclipse 13:48:19-14:19:41, next pass 17:50 (Santiago).
START = "2008-09-20T13:15:00Z"
PASS_1 = ("2008-09-20T13:21:09Z", "2008-09-20T13:28:41Z")
ECLIPSE_1 = ("2008-09-20T13:48:19Z", "2008-09-20T14:19:41Z")
PASS_2_START = "2008-09-20T17:50:16Z"


def load_job(name):
    with open(os.path.join(ROOT, "examples", "jobs", name)) as f:
        doc = json.load(f)
    return doc.get("custom_job", doc)


class Ground:
    """A Console with a user key; plans and deploys jobs."""

    def __init__(self, tmp_path):
        self.console = serve_in_thread(str(tmp_path / "console.db"))
        self.db = self.console.db
        self.url = self.console.url
        self.user = auth.create_key(self.db, "user")["key"]
        self.http = httpx.Client(base_url=self.url, headers={"X-API-Key": self.user}, timeout=30)
        sats = self.http.get("/api/satellites").json()["satellites"]
        iss = [s for s in sats if s["satellite_id"] == "25544"][0]
        self.tle_path = str(tmp_path / "iss.tle")
        with open(self.tle_path, "w") as f:
            f.write("ISS\n%s\n" % "\n".join(iss["tle"]))

    def deploy(self, job, start=START):
        r = self.http.post("/v1/plan", json={"satellite_id": "25544", "custom_job": job,
                                             "planning": {"start": start}})
        assert r.status_code == 200, r.text
        r = self.http.post("/api/deployments", json={"plan_id": r.json()["id"], "mode": "live"})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def deploy_raw(self, job):
        """A deployment whose plan the Console's planner never saw (to hand the
        agent a workload the planner would refuse)."""
        plan = {"id": "plan-" + uuid.uuid4().hex[:12], "created_at": "2008-09-20T13:00:00Z",
                "version": "1.0.0", "satellite": {"id": "25544"}, "job": job,
                "placement_decisions": [], "schedule": [], "plan": {}}
        deployments.save_plan(self.db, plan)
        return deployments.create(self.db, plan, "live", 1.0)

    def events(self, dep):
        return self.http.get("/api/deployments/%s/events" % dep).json()["events"]

    def agent_events(self, agent_id):
        return self.http.get("/api/agents/%s/events" % agent_id).json()["events"]

    def agent(self, agent_id):
        agents = self.http.get("/api/agents").json()["agents"]
        return [a for a in agents if a["agent_id"] == agent_id][0]

    def status(self, dep):
        return self.http.get("/api/deployments/%s" % dep).json()["status"]

    def all_seqs(self, agent_id):
        rows = self.db.query("SELECT seq FROM events WHERE origin = ? ORDER BY seq", (agent_id,))
        return [r["seq"] for r in rows]

    def close(self):
        self.http.close()
        self.console.stop()


class Node:
    """One simulated satellite running the firmware under the unix port."""

    def __init__(self, ground, tmp_path, agent_id="sat-25544", uplink=False, cfg=None,
                 bus=None, heap=None, mpy_dir=None):
        self.agent_id = agent_id
        satellite_id = (cfg or {}).get("satellite_id", "25544")
        key = auth.create_key(ground.db, "agent", agent_id, uplink=uplink, rate_limited=False,
                              satellite_id=satellite_id)
        # absolute: the node runs in its .mpy folder (cwd below), not in ours
        self.dir = type(tmp_path)(os.path.abspath(str(tmp_path))) / ("node-" + agent_id)
        os.makedirs(str(self.dir / "flash"), exist_ok=True)
        config = {"agent_id": agent_id, "api_url": ground.url, "api_key": key["key"],
                  "satellite_id": satellite_id, "storage_root": str(self.dir / "flash"),
                  "time_sync": False, "uplink_key": key.get("uplink_key")}
        config.update(cfg or {})
        self.cfg_path = str(self.dir / "umbra.json")
        with open(self.cfg_path, "w") as f:
            json.dump(config, f)
        self.tle = os.path.abspath(ground.tle_path)
        self.bus = bus
        self.heap = heap
        self.mpy_dir = mpy_dir  # run the modules compiled to .mpy from here (as on a board)
        # the process runs in its modules' folder, as a board in its flash root:
        # every module's interned file name is then "agent.mpy", not a long path
        # (upy.mpy_path); whoever runs argv() runs it in `cwd` (None: anywhere)
        self.cwd = os.path.abspath(mpy_dir) if mpy_dir else None

    def argv(self, until=None, until_idle=True, start=START, speed=0, reset_cause=None,
             heap_watch=False):
        """The node's command line and environment, to run in `self.cwd`."""
        args = ["--config", self.cfg_path, "--world", str(self.dir / "world"), "--tle", self.tle,
                "--start", start, "--hours", "30", "--speed", str(speed)]
        if reset_cause:
            args += ["--reset-cause", reset_cause]
        if until:
            args += ["--until", until]
        if until_idle:
            args.append("--until-idle")
        if heap_watch:
            args.append("--heap-watch")
        if self.bus:
            args += ["--bus", json.dumps(self.bus)]
        if self.mpy_dir:
            # the node itself as a module, so it too is loaded compiled
            argv, env = upy.command(NODE, heap=self.heap, args=args, mpy_dir=self.mpy_dir,
                                    cwd=self.cwd)
            i = argv.index(NODE)
            return argv[:i] + ["-m", "node"] + argv[i + 1:], env
        return upy.command(NODE, heap=self.heap, args=args)

    def run(self, timeout=120, **kw):
        argv, env = self.argv(**kw)
        proc = subprocess.run(argv, env=env, cwd=self.cwd, capture_output=True, text=True,
                              timeout=timeout)
        lines = [ln for ln in proc.stdout.splitlines() if ln != "WDT"]
        summary = None
        for ln in lines:
            if ln.startswith("{"):
                try:
                    summary = json.loads(ln)
                except ValueError:
                    pass
        return proc.returncode, summary, "\n".join(lines)

    def start(self, **kw):
        argv, env = self.argv(**kw)
        return subprocess.Popen(argv, env=env, cwd=self.cwd, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)


def types(events):
    return [e["type"] for e in events]
