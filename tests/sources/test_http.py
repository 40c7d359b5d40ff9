"""The shared HTTP client and request_json against a real server on 127.0.0.1."""

from __future__ import annotations

import itertools
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from iocscope import __version__
from iocscope.config import Settings, SourceSettings
from iocscope.errors import (
    AuthenticationError,
    BadResponseError,
    ConnectionFailedError,
    QuotaExceededError,
    RateLimitedError,
    SourceError,
    SourceTimeoutError,
)
from iocscope.sources import http
from iocscope.sources.http import (
    build_http_client,
    error_detail,
    key_env,
    key_hint,
    parse_retry_after,
    request_json,
)
from tests.support.replay import Received, ReplayServer, Reply, replay_server

CASE_NUMBERS = itertools.count()
OK = Reply(200, b'{"answer": 42}')


class RecordedSleep:
    """A sleep that returns at once and remembers every wait it was asked for."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@dataclass(frozen=True)
class Endpoint:
    """One path of the shared replay server, used by a single test."""

    server: ReplayServer
    path: str
    client: httpx.AsyncClient
    sleep: RecordedSleep

    @property
    def url(self) -> str:
        return self.server.base_url + self.path

    def queue(self, *replies: Reply) -> None:
        self.server.queue(self.path, *replies)

    def requests(self) -> list[Received]:
        return self.server.requests_to(self.path)

    async def call(self, **options: Any) -> tuple[int, Any]:
        options.setdefault("timeout", 2.0)
        return await request_json(
            self.client, "replay", "GET", self.url, sleep=self.sleep, **options
        )


# One server per module: stopping a server takes up to half a second, and a
# path of its own keeps each test's replies apart.
@pytest.fixture(scope="module")
def server() -> Iterator[ReplayServer]:
    with replay_server() as running:
        yield running


@pytest.fixture
def endpoint(server: ReplayServer, client: httpx.AsyncClient, sleep: RecordedSleep) -> Endpoint:
    return Endpoint(server, f"/case{next(CASE_NUMBERS)}/v1/lookup", client, sleep)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with build_http_client(Settings()) as shared:
        yield shared


@pytest.fixture
def sleep() -> RecordedSleep:
    return RecordedSleep()


async def test_client_defaults() -> None:
    async with build_http_client(Settings()) as client:
        assert client.follow_redirects is False
        assert client.headers["User-Agent"] == f"iocscope/{__version__}"
        assert client.timeout.connect == 5.0
        assert client.timeout.read == 10.0


async def test_returns_status_and_body(endpoint: Endpoint) -> None:
    endpoint.queue(OK)

    answer = await endpoint.call(headers={"X-Token": "t"}, params={"q": "1"})

    assert answer == (200, {"answer": 42})
    [received] = endpoint.requests()
    assert received.headers["user-agent"] == f"iocscope/{__version__}"
    assert received.headers["x-token"] == "t"
    assert received.query == {"q": ["1"]}


async def test_sends_json_body(endpoint: Endpoint) -> None:
    endpoint.queue(OK)

    await request_json(
        endpoint.client, "replay", "POST", endpoint.url, json={"query": "x"}, timeout=2.0
    )

    [received] = endpoint.requests()
    assert received.method == "POST"
    assert orjson.loads(received.body) == {"query": "x"}


async def test_expected_status_returns(endpoint: Endpoint) -> None:
    endpoint.queue(Reply(404, b'{"detail": "No information available"}'))

    answer = await endpoint.call(expect=(200, 404))

    assert answer == (404, {"detail": "No information available"})


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            Reply(302, b"", {"Location": "https://elsewhere.example/"}),
            "unexpected response (status 302)",
        ),
        (Reply(404, b'{"detail": "Not Found"}'), "unexpected response (status 404: Not Found)"),
        (
            Reply(400, b"<html>bad</html>", content_type="text/html"),
            "unexpected response (status 400)",
        ),
    ],
)
async def test_unexpected_status(
    endpoint: Endpoint,
    reply: Reply,
    message: str,
) -> None:
    endpoint.queue(reply)

    with pytest.raises(BadResponseError) as info:
        await endpoint.call()

    assert str(info.value) == f"replay: {message}"
    assert info.value.source == "replay"
    assert len(endpoint.requests()) == 1


@pytest.mark.parametrize(
    ("status", "key_hint", "message"),
    [
        (
            401,
            "check IOCSCOPE_REPLAY_API_KEY",
            "replay: the API key was rejected (status 401: Authentication failed.); "
            "check IOCSCOPE_REPLAY_API_KEY",
        ),
        (403, None, "replay: access was denied (status 403: Authentication failed.)"),
    ],
)
async def test_auth_error_not_retried(
    endpoint: Endpoint,
    status: int,
    key_hint: str | None,
    message: str,
) -> None:
    body = b'{"errors": [{"detail": "Authentication failed.", "status": 401}]}'
    endpoint.queue(Reply(status, body))

    with pytest.raises(AuthenticationError) as info:
        await endpoint.call(key_hint=key_hint)

    assert str(info.value) == message
    assert len(endpoint.requests()) == 1
    assert endpoint.sleep.waits == []


async def test_echoed_key_redacted(endpoint: Endpoint) -> None:
    echoed = "k3y-that-must-not-leak"
    endpoint.queue(Reply(401, orjson.dumps({"message": f"invalid key {echoed}"})))

    with pytest.raises(AuthenticationError) as info:
        await endpoint.call(headers={"Key": echoed}, key_hint="check the key")

    assert str(info.value) == (
        "replay: the API key was rejected (status 401: invalid key ***); check the key"
    )


@pytest.mark.parametrize(
    ("echoed", "detail"),
    [
        ("token {token} is not valid", "token *** is not valid"),
        ("header 'Bearer {token}' is not valid", "header '***' is not valid"),
    ],
    ids=["token-only", "whole-header"],
)
async def test_echoed_bearer_token_redacted(endpoint: Endpoint, echoed: str, detail: str) -> None:
    # A provider may echo the token without its "Bearer" scheme.
    token = "b3arer-t0ken-that-must-not-leak"
    body = orjson.dumps({"error": {"code": "invalid_token", "message": echoed.format(token=token)}})
    endpoint.queue(Reply(401, body))

    with pytest.raises(AuthenticationError) as info:
        await endpoint.call(headers={"Authorization": f"Bearer {token}"}, key_hint="check it")

    assert str(info.value) == f"replay: the API key was rejected (status 401: {detail}); check it"
    assert token not in str(info.value)


async def test_429_retried_then_succeeds(endpoint: Endpoint) -> None:
    endpoint.queue(Reply(429, b"{}", {"Retry-After": "2"}), OK)

    answer = await endpoint.call()

    assert answer == (200, {"answer": 42})
    assert endpoint.sleep.waits == [2.0]
    assert len(endpoint.requests()) == 2


async def test_429_retries_spent(endpoint: Endpoint) -> None:
    endpoint.queue(Reply(429, b"{}", {"Retry-After": "3"}))

    with pytest.raises(RateLimitedError) as info:
        await endpoint.call()

    assert str(info.value) == "replay: rate limited (status 429) after 3 attempts; retry after 3 s"
    assert info.value.retry_after == 3.0
    assert endpoint.sleep.waits == [3.0, 3.0]
    assert len(endpoint.requests()) == 3


async def test_429_without_retry_after(endpoint: Endpoint) -> None:
    endpoint.queue(Reply(429, b'{"message": "slow down"}'))

    with pytest.raises(RateLimitedError) as info:
        await endpoint.call()

    assert str(info.value) == "replay: rate limited (status 429: slow down) after 3 attempts"
    assert info.value.retry_after is None
    assert endpoint.sleep.waits == [0.5, 1.0]


@pytest.mark.parametrize(
    ("options", "retry_after"),
    [
        ({"retry_cap": 30.0}, "120"),
        ({"deadline": 4.0}, "5"),
    ],
    ids=["over-cap", "past-deadline"],
)
async def test_429_wait_too_long(
    endpoint: Endpoint,
    options: dict[str, float],
    retry_after: str,
) -> None:
    endpoint.queue(Reply(429, b"{}", {"Retry-After": retry_after}), OK)

    with pytest.raises(RateLimitedError) as info:
        await endpoint.call(**options)

    assert str(info.value) == (
        f"replay: rate limited (status 429) after 1 attempt; retry after {retry_after} s"
    )
    assert info.value.retry_after == float(retry_after)
    assert endpoint.sleep.waits == []
    assert len(endpoint.requests()) == 1


async def test_429_http_date(endpoint: Endpoint) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    endpoint.queue(Reply(429, b"{}", {"Retry-After": later}))

    with pytest.raises(RateLimitedError) as info:
        await endpoint.call()

    assert info.value.retry_after is not None
    assert 3000 < info.value.retry_after <= 3600
    assert endpoint.sleep.waits == []


async def test_quota_not_retried(endpoint: Endpoint) -> None:
    body = b'{"errors": [{"detail": "Daily limit reached.", "status": 429}]}'
    headers = {"Retry-After": "3600", "X-RateLimit-Remaining": "0"}
    endpoint.queue(Reply(429, body, headers))

    with pytest.raises(QuotaExceededError) as info:
        await endpoint.call(
            is_quota=lambda headers: headers.get("X-RateLimit-Remaining") == "0",
        )

    assert str(info.value) == (
        "replay: quota exhausted (status 429: Daily limit reached.); retry after 3600 s"
    )
    assert info.value.retry_after == 3600.0
    assert len(endpoint.requests()) == 1


class RecordedQuotaBody:
    """A ``quota_body`` check that answers ``spent`` and remembers every body it saw."""

    def __init__(self, spent: bool) -> None:
        self.spent = spent
        self.bodies: list[Any] = []

    def __call__(self, body: Any) -> bool:
        self.bodies.append(body)
        return self.spent


QUOTA_BODY = {"error": {"code": "QuotaExceededError", "message": "Quota exceeded"}}


async def test_quota_body_not_retried(endpoint: Endpoint) -> None:
    endpoint.queue(Reply(429, orjson.dumps(QUOTA_BODY), {"Retry-After": "600"}), OK)
    check = RecordedQuotaBody(spent=True)

    with pytest.raises(QuotaExceededError) as info:
        await endpoint.call(quota_body=check)

    assert str(info.value) == (
        "replay: quota exhausted (status 429: Quota exceeded); retry after 600 s"
    )
    assert info.value.retry_after == 600.0
    assert check.bodies == [QUOTA_BODY]
    assert endpoint.sleep.waits == []
    assert len(endpoint.requests()) == 1


async def test_quota_body_burst_retried(endpoint: Endpoint) -> None:
    burst = {"error": {"code": "TooManyRequestsError", "message": "Too many requests"}}
    endpoint.queue(Reply(429, orjson.dumps(burst), {"Retry-After": "1"}))
    check = RecordedQuotaBody(spent=False)

    with pytest.raises(RateLimitedError) as info:
        await endpoint.call(quota_body=check)

    assert type(info.value) is RateLimitedError
    assert str(info.value) == (
        "replay: rate limited (status 429: Too many requests) after 3 attempts; retry after 1 s"
    )
    assert check.bodies == [burst, burst, burst]
    assert endpoint.sleep.waits == [1.0, 1.0]


@pytest.mark.parametrize(
    "reply",
    [
        Reply(429, b"<html>slow down</html>", content_type="text/html"),
        Reply(429, b""),
        Reply(429, b'{"error": '),
    ],
    ids=["html", "empty", "truncated"],
)
async def test_quota_body_skipped_without_json(endpoint: Endpoint, reply: Reply) -> None:
    endpoint.queue(reply)
    check = RecordedQuotaBody(spent=True)

    with pytest.raises(RateLimitedError) as info:
        await endpoint.call(quota_body=check, retries=0)

    assert type(info.value) is RateLimitedError
    assert check.bodies == []


async def test_quota_body_gets_json_null(endpoint: Endpoint) -> None:
    endpoint.queue(Reply(429, b"null"))
    check = RecordedQuotaBody(spent=False)

    with pytest.raises(RateLimitedError):
        await endpoint.call(quota_body=check, retries=0)

    assert check.bodies == [None]


async def test_quota_headers_checked_first(endpoint: Endpoint) -> None:
    endpoint.queue(Reply(429, orjson.dumps(QUOTA_BODY), {"X-Left": "0"}))
    check = RecordedQuotaBody(spent=False)

    with pytest.raises(QuotaExceededError):
        await endpoint.call(is_quota=lambda headers: headers.get("X-Left") == "0", quota_body=check)

    assert check.bodies == []


async def test_5xx_retried_then_succeeds(endpoint: Endpoint) -> None:
    endpoint.queue(Reply(503, b"{}"), OK)

    answer = await endpoint.call()

    assert answer == (200, {"answer": 42})
    assert endpoint.sleep.waits == [0.5]


async def test_5xx_persistent(endpoint: Endpoint) -> None:
    endpoint.queue(Reply(502, b'{"message": "upstream down"}'))

    with pytest.raises(BadResponseError) as info:
        await endpoint.call()

    assert str(info.value) == "replay: server error (status 502: upstream down) after 3 attempts"
    assert endpoint.sleep.waits == [0.5, 1.0]
    assert len(endpoint.requests()) == 3


async def test_retries_zero(endpoint: Endpoint) -> None:
    endpoint.queue(Reply(500, b""), OK)

    with pytest.raises(BadResponseError) as info:
        await endpoint.call(retries=0)

    assert str(info.value) == "replay: server error (status 500) after 1 attempt"
    assert len(endpoint.requests()) == 1


CHALLENGE = (
    "replay: returned an HTML page instead of JSON (status 200); "
    "the provider may be showing a challenge page"
)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            Reply(200, b"<!DOCTYPE html><title>Just a moment</title>", content_type="text/html"),
            CHALLENGE,
        ),
        (Reply(200, b"  <html><body>challenge</body></html>"), CHALLENGE),
        (
            Reply(200, b'{"data": {"ip'),
            "replay: returned a body that is not valid JSON (status 200, 13 bytes)",
        ),
        (
            Reply(200, b"not json at all"),
            "replay: returned a body that is not valid JSON (status 200, 15 bytes)",
        ),
        (Reply(200, b""), "replay: returned an empty body (status 200)"),
    ],
    ids=["html-content-type", "html-as-json", "truncated", "plain-text", "empty"],
)
async def test_unusable_body(
    endpoint: Endpoint,
    reply: Reply,
    message: str,
) -> None:
    endpoint.queue(reply)

    with pytest.raises(BadResponseError) as info:
        await endpoint.call()

    assert str(info.value) == message
    assert len(endpoint.requests()) == 1


async def test_invalid_json_keeps_cause(endpoint: Endpoint) -> None:
    endpoint.queue(Reply(200, b"[1, 2"))

    with pytest.raises(BadResponseError) as info:
        await endpoint.call()

    assert isinstance(info.value.__cause__, orjson.JSONDecodeError)


async def test_body_over_limit(
    endpoint: Endpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http, "MAX_BODY_BYTES", 1024)
    endpoint.queue(Reply(200, b"[" + b"1," * 2000 + b"1]"))

    with pytest.raises(BadResponseError) as info:
        await endpoint.call()

    assert str(info.value) == "replay: returned a body larger than 1024 bytes"


async def test_timeout_retried_then_raised(endpoint: Endpoint) -> None:
    endpoint.queue(Reply(200, b"{}", delay=1.0))

    with pytest.raises(SourceTimeoutError) as info:
        await endpoint.call(timeout=0.2, retries=1)

    assert str(info.value) == (
        "replay: no response within 0.2 s after 2 attempts; "
        "check the network or raise sources.replay.timeout"
    )
    assert isinstance(info.value.__cause__, (httpx.TimeoutException, TimeoutError))
    assert endpoint.sleep.waits == [0.5]
    assert len(endpoint.requests()) == 2


async def test_timeout_then_success(endpoint: Endpoint) -> None:
    endpoint.queue(Reply(200, b"{}", delay=1.0), OK)

    answer = await endpoint.call(timeout=0.2)

    assert answer == (200, {"answer": 42})


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_connection_refused(client: httpx.AsyncClient, sleep: RecordedSleep) -> None:
    port = closed_port()

    with pytest.raises(ConnectionFailedError) as info:
        await request_json(
            client, "replay", "GET", f"http://127.0.0.1:{port}/x", timeout=2.0, sleep=sleep
        )

    assert str(info.value) == (
        f"replay: request to 127.0.0.1:{port} failed (ConnectError: All connection attempts failed)"
    )
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert sleep.waits == []


async def test_log_lines(
    endpoint: Endpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="iocscope.sources.http")
    endpoint.queue(Reply(503, b"{}"), OK)

    await endpoint.call(params={"ipAddress": "203.0.113.9"})

    records = [r for r in caplog.records if r.name == "iocscope.sources.http"]
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(infos) == 2
    assert infos[0].startswith(
        f"source=replay method=GET path={endpoint.path} status=503 latency_ms="
    )
    assert infos[1].startswith(
        f"source=replay method=GET path={endpoint.path} status=200 latency_ms="
    )
    assert warnings == ["source=replay retry=1/2 reason=server error 503 wait_s=0.5"]
    assert not any("203.0.113.9" in message for message in infos + warnings)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5", 5.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("-1", None),
        ("inf", None),
        ("nan", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 01 May 2024 12:01:00 GMT", 60.0),
        ("Wed, 01 May 2024 11:00:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    assert parse_retry_after(value, now) == seconds


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"errors": [{"detail": "Daily limit reached.", "status": 429}]}, "Daily limit reached."),
        ({"detail": "Not Found"}, "Not Found"),
        ({"message": "slow down"}, "slow down"),
        ({"error": "Invalid API key."}, "Invalid API key."),
        (
            {"error": {"code": "NotFoundError", "message": "Resource not found"}},
            "Resource not found",
        ),
        ({"error": {"code": "rate_limit_exceeded"}}, "rate_limit_exceeded"),
        ({"error": {"code": 429, "message": None}}, ""),
        ({"detail": "outer", "error": {"message": "inner"}}, "outer"),
        ({"errors": [{"error": {"message": "in a list"}}]}, "in a list"),
        ({"error": {"message": "  spread\n over   lines "}}, "spread over lines"),
        ({"error": {"message": "x" * 250}}, "x" * 197 + "..."),
        ({"error": ["not", "text"]}, ""),
        (["not", "an", "object"], ""),
        (None, ""),
    ],
    ids=[
        "abuseipdb",
        "detail",
        "message",
        "error-text",
        "nested",
        "nested-code-only",
        "nested-not-text",
        "top-level-first",
        "nested-in-errors",
        "white-space",
        "shortened",
        "error-list",
        "list",
        "null",
    ],
)
def test_error_detail(payload: Any, detail: str) -> None:
    assert error_detail(payload) == detail


def test_error_detail_redacts_nested() -> None:
    payload = {"error": {"code": "WrongCredentialsError", "message": "Wrong key s3cr3t"}}

    assert error_detail(payload, ["s3cr3t"]) == "Wrong key ***"


async def test_nested_error_in_message(endpoint: Endpoint) -> None:
    endpoint.queue(Reply(403, b'{"error": {"code": "ForbiddenError", "message": "Forbidden"}}'))

    with pytest.raises(AuthenticationError) as info:
        await endpoint.call()

    assert str(info.value) == "replay: access was denied (status 403: Forbidden)"


@pytest.mark.parametrize(
    ("settings", "credential", "env", "hint"),
    [
        (SourceSettings(), "key", "IOCSCOPE_REPLAY_API_KEY", "check IOCSCOPE_REPLAY_API_KEY"),
        (SourceSettings(api_key_env="MY_KEY"), "key", "MY_KEY", "check MY_KEY"),
        (
            SourceSettings(api_key_file=Path("/etc/iocscope/replay.key")),
            "key",
            "IOCSCOPE_REPLAY_API_KEY",
            "check the key in /etc/iocscope/replay.key",
        ),
        (
            SourceSettings(api_key_file=Path("/etc/iocscope/replay.token")),
            "token",
            "IOCSCOPE_REPLAY_API_KEY",
            "check the token in /etc/iocscope/replay.token",
        ),
    ],
    ids=["default", "own-variable", "key-file", "token-file"],
)
def test_key_hint(settings: SourceSettings, credential: str, env: str, hint: str) -> None:
    assert key_env("replay", settings) == env
    assert key_hint("replay", settings, credential) == hint


def test_errors_are_source_errors() -> None:
    for error in (AuthenticationError, BadResponseError, RateLimitedError, SourceTimeoutError):
        assert issubclass(error, SourceError)
