"""Property-based requests from the OpenAPI document: no input may cause a 500.

Schemathesis generates requests for every operation of ``/openapi.json``
(a bounded number per operation) and sends them with a valid key to a real
server, so validation, parsing and the engine all see hostile input.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import APIOperation

from iocscope.api.app import create_app
from iocscope.api.settings import ApiSettings
from tests.api.conftest import ApiEnv
from tests.api.live import running_server

# Examples per operation; enough to reach every branch of validation while
# keeping the whole API test run short.
MAX_EXAMPLES = 20


@pytest.fixture(scope="module")
def fuzz_url(live_env: ApiEnv) -> Iterator[str]:
    # Its own server, with a rate limit the generated traffic never reaches.
    api = ApiSettings(rate_per_minute=1_000_000, rate_burst=1_000_000)
    with running_server(create_app(live_env.settings, api)) as url:
        yield url


def fuzz_operation(operation: APIOperation, headers: dict[str, str]) -> None:
    """Send generated requests for one operation; fail on a 5xx or a traceback."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call(headers=headers)
        assert response.status_code < 500, (
            f"{case.method} {case.path} answered {response.status_code}: {response.text[:500]}"
        )
        assert "Traceback" not in response.text

    check()


def test_no_server_error(fuzz_url: str, live_env: ApiEnv) -> None:
    # The pytest integration of schemathesis (schemathesis.pytest) fails on
    # pytest 9, so the operations are driven with Hypothesis directly.
    schema = schemathesis.openapi.from_url(f"{fuzz_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        fuzz_operation(operation, live_env.headers)
    metrics = httpx.get(f"{fuzz_url}/metrics", headers=live_env.headers).text
    sent = sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "iocscope_http_requests_total"
    )
    assert sent > 5 * len(operations)
