"""The Console's OpenAPI description, fuzzed with schemathesis over real HTTP:
valid and invalid bodies, parameters and headers for every operation. No 5xx,
errors are {"error", "server_time"}, and a rejected request stores nothing."""
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tools.console import auth, catalog, deployments, planning
from tools.console.server import serve_in_thread

EXAMPLES = 12  # per operation and mode: ~350 requests in all, well under a minute


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    srv = serve_in_thread(str(tmp_path_factory.mktemp("fuzz") / "console.db"))
    yield srv
    srv.stop()


def test_fuzzed_requests_never_crash_the_console_or_store_rejected_data(console):
    db = console.db
    user = {"X-API-Key": auth.create_key(db, "user")["key"]}
    agent_key = auth.create_key(db, "agent", "fuzz-agent", rate_limited=False,
                                satellite_id="25544")["key"]
    agent = {"X-API-Key": agent_key, "X-Agent-ID": "fuzz-agent"}
    # a finished deployment of the agent's satellite, so paths that take a real id reach the
    # body checks, and ?follow=1 streams end
    plan = planning.make_plan(catalog.get(db, "25544"), {
        "name": "f", "steps": [{"id": "a", "compute_s": 5}]}, None, 1772884800)
    deployments.save_plan(db, plan)
    dep = deployments.create(db, plan, "live", 1)
    with db.write() as c:
        c.execute("INSERT INTO agents (agent_id, satellite_id, agent_version, status, "
                  "registered_at, updated_at) VALUES ('fuzz-agent', '25544', '0', 'idle', '', '')")
    deployments.poll(db, "fuzz-agent", "25544")
    deployments.store_events(db, dep, "fuzz-agent", "fuzz-agent",
                             [dict(e, seq=i + 1) for i, e in enumerate(plan["events"])])

    schema = schemathesis.openapi.from_url(console.url + "/openapi.json")
    calls = {"total": 0, "rejected": 0}
    problems = []
    skipped = []

    def exercise(operation, mode, path_parameters):
        headers = agent if operation.path.startswith("/api/agent") or (
            operation.method.upper() == "POST" and operation.path.endswith("/events")) else user

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(mode, path_parameters=path_parameters))
        def run(case):
            before = db.counts()
            response = case.call(base_url=console.url, headers=headers, timeout=20)
            calls["total"] += 1
            where = "%s %s (%s)" % (case.method, case.formatted_path, mode)
            if response.status_code >= 500:
                problems.append("%s -> %d %s" % (where, response.status_code, response.text[:200]))
            if response.status_code >= 400:
                calls["rejected"] += 1
                body = response.json()
                if set(body) != {"error", "server_time"}:
                    problems.append("%s: error body %r" % (where, body))
                if db.counts() != before:
                    problems.append("%s: a rejected request changed %r -> %r"
                                    % (where, before, db.counts()))
            if "x-server-time" not in response.headers:
                problems.append("%s: no X-Server-Time" % where)

        try:
            run()
        except Unsatisfiable:
            # nothing of this mode to generate (e.g. no invalid form of an optional header)
            skipped.append("%s %s %s" % (operation.method, operation.path, mode))

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            params = {"deployment_id": dep} if "{deployment_id}" in operation.path else None
            if "{plan_id}" in operation.path:
                params = {"plan_id": plan["id"]}
            exercise(operation, mode, params)
            if params is not None:  # and with generated ids
                exercise(operation, mode, None)

    assert problems == []
    # only operations without a body can lack an invalid form; every body was fuzzed negatively
    assert all(s.startswith("get ") or "/cancel " in s or "/clear-safe-mode " in s
               for s in skipped), skipped
    assert calls["total"] > 200
    assert 0 < calls["rejected"] < calls["total"]
