"""The Simulation Service fuzzed over real HTTP (a real uvicorn on 127.0.0.1),
as the Console is (tests/test_console_fuzz.py): schemathesis from the
service's own OpenAPI document (valid and invalid requests for every
operation, each reply checked against the document) and raw bodies (any
JSON, deep nesting, broken JSON, bytes) at every POST. No 5xx, no schema
mismatch, errors are {"error", "server_time"}, and a refused request stores
nothing."""
import pytest

from tools.benches import simservice as simservice_bench
from tools.simservice.server import serve_in_thread

EXAMPLES = 15
RAW_EXAMPLES = 20


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    srv = serve_in_thread(str(tmp_path_factory.mktemp("simfuzz") / "sim.db"))
    yield srv
    srv.stop()


def test_fuzzed_requests_get_no_5xx_no_schema_mismatch_and_store_nothing_when_refused(service):
    tally = simservice_bench.campaign(service.url, service.service.db, EXAMPLES, RAW_EXAMPLES)
    assert tally.server_errors == []
    assert tally.mismatches == []
    assert tally.broken_promises == []
    assert all(s.lower().startswith(("get ", "delete ")) for s in tally.skipped), tally.skipped
    assert tally.requests > 150
    assert 0 < tally.rejected < tally.requests
