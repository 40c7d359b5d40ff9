"""The per-key token bucket and the request body size limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from iocscope.api.app import create_app
from iocscope.api.limits import KeyRateLimiter, retry_after_header
from iocscope.api.settings import ApiSettings
from tests.api.conftest import ApiEnv, app_client


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refused() -> None:
    clock = FakeClock()
    limiter = KeyRateLimiter(rate_per_minute=60, burst=3, clock=clock)
    assert [limiter.acquire("k") for _ in range(3)] == [None, None, None]
    assert limiter.acquire("k") == pytest.approx(1.0)


def test_tokens_refill_with_time() -> None:
    clock = FakeClock()
    limiter = KeyRateLimiter(rate_per_minute=60, burst=1, clock=clock)
    assert limiter.acquire("k") is None
    clock.now += 0.5
    assert limiter.acquire("k") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("k") is None


def test_keys_have_separate_buckets() -> None:
    limiter = KeyRateLimiter(rate_per_minute=60, burst=1, clock=FakeClock())
    assert limiter.acquire("a") is None
    assert limiter.acquire("b") is None
    assert limiter.acquire("a") is not None


def test_key_rate_overrides_default() -> None:
    clock = FakeClock()
    limiter = KeyRateLimiter(rate_per_minute=60, burst=1, clock=clock)
    limiter.acquire("k", rate_per_minute=6)
    assert limiter.acquire("k", rate_per_minute=6) == pytest.approx(10.0)


@pytest.mark.parametrize(("seconds", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60")])
def test_retry_after_header(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header


async def test_over_rate_is_429_with_retry_after(env: ApiEnv) -> None:
    api = ApiSettings(rate_per_minute=1, rate_burst=2)
    async with app_client(create_app(env.settings, api)) as client:
        statuses = [
            (await client.get("/readyz", headers=env.headers)).status_code for _ in range(2)
        ]
        refused = await client.get("/readyz", headers=env.headers)
    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"
    assert refused.json()["detail"] == "rate limit of this API key reached; retry in 60 s"
    assert refused.json()["code"] == "rate_limited"


async def test_rate_limit_needs_a_valid_key_first(env: ApiEnv) -> None:
    api = ApiSettings(rate_per_minute=1, rate_burst=1)
    async with app_client(create_app(env.settings, api)) as client:
        for _ in range(3):
            response = await client.get("/readyz", headers={"X-API-Key": "iocs_x_y"})
            assert response.status_code == 401


async def test_declared_body_over_limit_is_413(env: ApiEnv) -> None:
    api = ApiSettings(max_body_bytes=1024)
    body = b'{"value": "' + b"a" * 2000 + b'"}'
    async with app_client(create_app(env.settings, api)) as client:
        response = await client.post(
            "/v1/ioc/enrich",
            content=body,
            headers={**env.headers, "Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "request body is larger than the limit of 1024 bytes; send fewer indicators per request"
    )


async def test_chunked_body_over_limit_is_413(env: ApiEnv) -> None:
    api = ApiSettings(max_body_bytes=1024)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"value": "'
        for _ in range(10):
            yield b"a" * 500
        yield b'"}'

    async with app_client(create_app(env.settings, api)) as client:
        response = await client.post(
            "/v1/ioc/enrich",
            content=chunks(),
            headers={**env.headers, "Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert "larger than the limit of 1024 bytes" in response.json()["detail"]


async def test_body_under_limit_passes(env: ApiEnv) -> None:
    api = ApiSettings(max_body_bytes=1024)
    async with app_client(create_app(env.settings, api)) as client:
        response = await client.post(
            "/v1/ioc/enrich", json={"value": "8.8.8.8"}, headers=env.headers
        )
    assert response.status_code == 200
