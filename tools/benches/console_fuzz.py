"""The Console fuzzed over real HTTP (a real uvicorn on 127.0.0.1), two ways:

- schemathesis: valid and invalid requests generated from the Console's own
  OpenAPI document for every operation, each reply checked against the
  document (status codes, content types, headers and bodies it declares;
  invalid data refused; valid data accepted) -- a failed check is a
  *schema mismatch*;
- hypothesis: raw bodies no schema describes (any JSON, deep nesting, broken
  JSON, bytes) at every POST endpoint.

Every reply must be below 500, every error `{"error", "server_time"}`, every
reply carry X-Server-Time, and a refused request store nothing. `campaign()`
is shared by tests/test_console_fuzz.py (small, in `make test`) and `run()`
(`make bench`, area console_fuzz: a longer campaign, reporting the counts).
"""
import re
import tempfile
import time

# Valid data the schema cannot tell from a working request, and the only
# refusals a valid request may get: no key rights (401/403), an id that does
# not exist (404), one that does (409), a rate limit (429). Beyond those:
# /v1/plan may answer 422 (a well-formed job that cannot be planned), and 400
# for the job rules JSON Schema cannot state (STEPS.md: unique step ids, known
# dependencies, no cycle, the fields each step type needs) -- always with the
# planner's reason code, never a shape error; /api/satellites may answer 400
# for TLE lines whose checksum or fields are wrong; an event may be refused
# when its agent_id or deployment_id is not the sender's or the URL's.
ACCEPTED = {401, 403, 404, 409, 429}
SEMANTIC_400 = {
    "/v1/plan": lambda err: bool(re.match(r"^[a-z_]+: steps\[", err))
    or err.startswith("dependency_cycle"),
    "/api/satellites": lambda err: err.startswith(("malformed TLE", "TLE elements out of range")),
    # as /v1/plan for the job; for the fleet: an id twice, an orbit that does not
    # propagate (TLE checksums, elements that make no orbit), a bus that does not add up
    "/v1/constellation/plan": lambda err: bool(re.match(r"^[a-z_]+: steps\[", err))
    or err.startswith("dependency_cycle") or "appears twice" in err
    or "orbit does not parse" in err or "bad bus" in err,
    # an agent key's satellite must be in the catalog (the agent id names it, or satellite_id)
    "/api/keys": lambda err: err.startswith(("an agent key is bound to a satellite",
                                             "no satellite ")),
    "/api/agent/events": lambda err: "is not the sender" in err or "does not match the URL" in err,
    "/api/deployments/{deployment_id}/events":
        lambda err: "is not the sender" in err or "does not match the URL" in err,
}
EXTRA_ACCEPTED = {"/v1/plan": {422}, "/v1/constellation/plan": {422}}


def prepare(db):
    """Keys and a finished deployment of the fuzz agent's satellite, so operations
    that take a real id get past their 404s. Returns (user headers, agent headers,
    path parameters)."""
    from tools.console import auth, catalog, deployments, planning
    user = {"X-API-Key": auth.create_key(db, "user")["key"]}
    agent_key = auth.create_key(db, "agent", "fuzz-agent", rate_limited=False,
                                satellite_id="25544")["key"]
    agent = {"X-API-Key": agent_key, "X-Agent-ID": "fuzz-agent"}
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
    return user, agent, {"deployment_id": dep, "plan_id": plan["id"]}


class Tally:
    def __init__(self):
        self.requests = 0
        self.rejected = 0
        self.server_errors = []
        self.mismatches = []
        self.broken_promises = []  # error shape, X-Server-Time, stored on refusal
        self.skipped = []

    def figures(self):
        return {"requests": self.requests, "rejected": self.rejected,
                "server_errors": len(self.server_errors), "mismatches": len(self.mismatches),
                "broken_promises": len(self.broken_promises)}


def _headers_for(operation, user, agent):
    path, method = operation.path, operation.method.upper()
    if path.startswith("/api/agent/") or (method == "POST" and path.endswith("/events")):
        return agent
    return user


def _check_reply(tally, db, before, where, response, body_text=None):
    tally.requests += 1
    if response.status_code >= 500:
        tally.server_errors.append("%s -> %d %s" % (where, response.status_code,
                                                    response.text[:200]))
    if response.status_code >= 400:
        tally.rejected += 1
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or set(body) != {"error", "server_time"}:
            tally.broken_promises.append("%s: error body %r" % (where, response.text[:200]))
        if db.counts() != before:
            tally.broken_promises.append("%s: a refused request changed %r -> %r"
                                         % (where, before, db.counts()))
    if "x-server-time" not in response.headers:
        tally.broken_promises.append("%s: no X-Server-Time" % where)


def console_refused(operation, mode, response):
    """A valid request (by the schema) refused for a reason the schema should state."""
    status = response.status_code
    if not mode.is_positive or status < 400 or status >= 500 or status in ACCEPTED:
        return None
    if status in EXTRA_ACCEPTED.get(operation.path, ()):
        return None
    if status == 400 and operation.path in SEMANTIC_400:
        try:
            err = response.json().get("error", "")
        except ValueError:
            err = ""
        if SEMANTIC_400[operation.path](err):
            return None
    return "valid data refused: %d %s" % (status, response.text[:160])


def schemathesis_campaign(url, db, tally, examples, seed, user, agent, ids, refused=None):
    """refused(operation, mode, response): why a valid request's refusal is a
    mismatch, or None (default: the Console's rules, console_refused). db
    needs only counts(): anything a refused request must leave unchanged."""
    # (bound to this name so that `run` below keeps its text: hypothesis seeds
    # its derandomized examples from the test function's source)
    _positive_refused = refused or console_refused
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import (content_type_conformance,
                                                   negative_data_rejection,
                                                   response_headers_conformance,
                                                   response_schema_conformance,
                                                   status_code_conformance)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_headers_conformance, response_schema_conformance,
              negative_data_rejection]
    schema = schemathesis.openapi.from_url(url + "/openapi.json")

    def exercise(operation, mode, path_parameters):
        headers = _headers_for(operation, user, agent)

        @settings(max_examples=examples, deadline=None, database=None,
                  derandomize=seed is None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(mode, path_parameters=path_parameters))
        def run(case):
            before = db.counts()
            response = case.call(base_url=url, headers=headers, timeout=30)
            where = "%s %s (%s)" % (case.method, case.formatted_path, mode.value)
            _check_reply(tally, db, before, where, response)
            try:
                case.validate_response(response, checks=checks, headers=headers)
            except FailureGroup as group:
                for failure in group.exceptions:
                    if response.status_code == 413 and failure.title == \
                            "Schema-violating request accepted":
                        continue  # refused, for its size (schemathesis counts 413 as accepted)
                    tally.mismatches.append("%s: %s" % (where, failure.title))
            refused = _positive_refused(operation, mode, response)
            if refused:
                tally.mismatches.append("%s: %s; body %s" % (where, refused,
                                                             response.request.body[:300]))

        if seed is not None:
            from hypothesis import seed as hypothesis_seed
            run = hypothesis_seed(seed)(run)
        try:
            run()
        except Unsatisfiable:
            tally.skipped.append("%s %s %s" % (operation.method, operation.path, mode.value))

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            params = {k: v for k, v in ids.items() if "{%s}" % k in operation.path} or None
            exercise(operation, mode, params)
            if params is not None:  # and with generated ids
                exercise(operation, mode, None)


POST_PATHS = ("/v1/plan", "/api/keys", "/api/satellites", "/api/deployments",
              "/api/agent/register", "/api/agent/telemetry", "/api/agent/events",
              "/api/deployments/{deployment_id}/events")


def campaign(url, db, examples=12, raw_examples=25, seed=None):
    """Both campaigns against the Console at url on db (a fresh one); returns the Tally."""
    tally = Tally()
    user, agent, ids = prepare(db)
    schemathesis_campaign(url, db, tally, examples, seed, user, agent, ids)
    raw_body_campaign(url, db, tally, raw_examples, seed, user, agent, ids["deployment_id"])
    return tally


def raw_body_campaign(url, db, tally, examples, seed, user, agent, dep_id, paths=POST_PATHS):
    """Bodies no schema describes, at every POST endpoint that reads one (paths),
    from the registered fuzz agent (so agent endpoints read the body)."""
    import httpx
    import json as jsonlib
    from hypothesis import HealthCheck, given, settings, strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                               st.dictionaries(st.text(max_size=8), inner, max_size=4),
                               max_leaves=30)
    texts = st.one_of(
        json_values.map(jsonlib.dumps),
        st.integers(1, 5000).map(lambda n: "[" * n + "]" * n),          # deep, closed
        st.integers(1, 5000).map(lambda n: "[" * n),                    # deep, unclosed
        st.integers(1, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
        st.text(max_size=200),                                          # anything at all
        st.sampled_from(["NaN", "[Infinity]", '{"a": 1e999}', '"\\ud800"', "\x00", "{{{"]),
    )
    bodies = st.one_of(texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
                       st.binary(max_size=200))
    with httpx.Client(base_url=url, timeout=30) as http:
        for path in paths:
            headers = agent if path.startswith("/api/agent/") or path.endswith("/events") else user
            real = path.replace("{deployment_id}", dep_id)

            @settings(max_examples=examples, deadline=None, database=None,
                      derandomize=seed is None, suppress_health_check=list(HealthCheck))
            @given(body=bodies)
            def run(body):
                before = db.counts()
                where = "POST %s (raw %r)" % (path, body[:40])
                try:
                    r = http.post(real, content=body,
                                  headers=dict(headers, **{"Content-Type": "application/json"}))
                except httpx.TransportError as exc:  # the server dropped the request
                    tally.requests += 1
                    tally.server_errors.append("%s -> no reply: %r" % (where, exc))
                    return
                _check_reply(tally, db, before, where, r)

            if seed is not None:
                from hypothesis import seed as hypothesis_seed
                run = hypothesis_seed(seed)(run)
            run()


EXAMPLES = 100      # per operation and mode (make test uses 12)
RAW_EXAMPLES = 300  # per POST endpoint (make test uses 25)


def run():
    from tools.console.server import serve_in_thread
    with tempfile.TemporaryDirectory() as tmp:
        srv = serve_in_thread(tmp + "/console.db")
        try:
            t0 = time.perf_counter()
            tally = campaign(srv.url, srv.db, EXAMPLES, RAW_EXAMPLES, seed=int(time.time()))
            wall = time.perf_counter() - t0
        finally:
            srv.stop()
    for line in (tally.server_errors + tally.mismatches + tally.broken_promises)[:20]:
        print("console_fuzz:", line)
    f = tally.figures()
    return [
        {"name": "console fuzz requests (schemathesis + raw bodies)", "value": f["requests"],
         "unit": "requests"},
        {"name": "console fuzz requests refused (4xx)", "value": f["rejected"], "unit": "requests"},
        {"name": "console fuzz 5xx replies", "value": f["server_errors"], "unit": "replies"},
        {"name": "console fuzz schema mismatches", "value": f["mismatches"], "unit": "cases"},
        {"name": "console fuzz broken promises (error shape, stored on refusal)",
         "value": f["broken_promises"], "unit": "cases"},
        {"name": "console fuzz wall time", "value": round(wall, 1), "unit": "s"},
    ]


if __name__ == "__main__":
    for fig in run():
        print(fig)
