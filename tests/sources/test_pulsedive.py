"""The Pulsedive source against a real replay server on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from iocscope.config import settings_from_mapping
from iocscope.errors import (
    AuthenticationError,
    BadResponseError,
    QuotaExceededError,
    RateLimitedError,
    SourceError,
    SourceTimeoutError,
)
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import Source, SourceKind, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.drift import reset_drift_warnings
from iocscope.sources.pulsedive import INFO_PATH, META, PulsediveSource, create
from tests.sources.support import RecordedSleep, fixture, raises_exactly
from tests.support.replay import Received, ReplayServer, Reply

KEY = "pulsedive-test-key-e41b7f09"
KEY_ENV = "IOCSCOPE_PULSEDIVE_API_KEY"
PREFIXES = itertools.count()
DOMAIN = "bad.example"


def make(kind: IndicatorType, value: str) -> Indicator:
    return Indicator(type=kind, value=value, original=value, display=value)


def domain(value: str = DOMAIN) -> Indicator:
    return make(IndicatorType.DOMAIN, value)


@dataclass(frozen=True)
class Provider:
    """A fake Pulsedive under a path prefix of its own on the shared replay server."""

    server: ReplayServer
    prefix: str
    client: httpx.AsyncClient
    sleep: RecordedSleep

    @property
    def base_url(self) -> str:
        return self.server.base_url + self.prefix

    def queue(self, *replies: Reply) -> None:
        self.server.queue(self.prefix + INFO_PATH, *replies)

    def requests(self) -> list[Received]:
        return self.server.requests_to(self.prefix + INFO_PATH)

    def source(self, **options: Any) -> PulsediveSource:
        options.setdefault("base_url", self.base_url)
        return PulsediveSource(self.client, sleep=self.sleep, **options)

    def created(self, sources: dict[str, Any] | None = None) -> Source:
        """Build the source with ``create``, as the registry does."""
        options = {"base_url": self.base_url, **(sources or {})}
        settings = settings_from_mapping({"sources": {"pulsedive": options}})
        return create(SourceDeps(settings=settings, http=self.client, feeds=cast(Any, None)))


@pytest.fixture
def provider(server: ReplayServer, client: httpx.AsyncClient) -> Provider:
    return Provider(server, f"/pd{next(PREFIXES)}", client, RecordedSleep())


async def test_high_risk_domain(provider: Provider) -> None:
    provider.queue(Reply(200, fixture("pulsedive_high.json")))

    result = await provider.source().lookup(domain())

    assert result.source == "pulsedive"
    assert result.status is Status.OK
    assert result.found is True
    assert result.flagged is True
    assert result.benign is False
    assert result.confidence == 75
    assert result.categories == ("Example Stealer",)
    assert result.tags == ("found in threat feeds", "newly registered domain")
    assert result.first_seen == datetime(2024, 3, 1, 9, 15, tzinfo=UTC)
    assert result.last_seen == datetime(2024, 5, 2, 11, 30, tzinfo=UTC)
    assert result.reference == "https://pulsedive.com/indicator/?iid=41"
    assert result.summary == ("risk high; threats Example Stealer; in feeds Example Phishing Feed")
    assert result.context == {
        "risk": "high",
        "risk_recommended": "high",
        "feeds": ["Example Phishing Feed"],
        "type": "domain",
    }
    assert result.raw == json.loads(fixture("pulsedive_high.json"))


@pytest.mark.parametrize(
    ("risk", "found", "flagged", "confidence"),
    [
        ("none", True, False, 0),
        ("low", True, True, 25),
        ("medium", True, True, 50),
        ("high", True, True, 75),
        ("critical", True, True, 90),
        ("unknown", False, False, 0),
        ("retired", False, False, 0),
    ],
)
async def test_risk_table(
    provider: Provider, risk: str, found: bool, flagged: bool, confidence: int
) -> None:
    provider.queue(Reply(200, json.dumps({"iid": 7, "indicator": DOMAIN, "risk": risk})))

    result = await provider.source().lookup(domain())

    assert result.found is found
    assert result.flagged is flagged
    assert result.confidence == confidence
    assert result.summary == f"risk {risk}"


async def test_clean_address(provider: Provider) -> None:
    provider.queue(Reply(200, fixture("pulsedive_none.json")))

    result = await provider.source().lookup(make(IndicatorType.IPV4, "198.51.100.20"))

    assert result.found is True
    assert result.flagged is False
    assert result.last_seen == datetime(2024, 4, 1, tzinfo=UTC)


async def test_request_shape(provider: Provider) -> None:
    provider.queue(Reply(200, fixture("pulsedive_high.json")))
    url = "http://bad.example/login?next=/a&b=1"

    await provider.source().lookup(make(IndicatorType.URL, url))

    [received] = provider.requests()
    assert received.method == "GET"
    assert received.query == {"indicator": [url]}
    assert received.headers["accept"] == "application/json"
    assert received.body == b""


@pytest.mark.parametrize("status", [200, 404])
async def test_unknown_indicator(provider: Provider, status: int) -> None:
    provider.queue(Reply(status, fixture("pulsedive_not_found.json")))

    result = await provider.source().lookup(domain())

    assert result.status is Status.OK
    assert result.found is False
    assert result.summary == "unknown to Pulsedive"


HTML = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"
PER_SECOND = b'{"error": "API rate limit exceeded: 1 requests per second."}'


@pytest.mark.parametrize(
    ("reply", "error", "message", "attempts"),
    [
        (
            Reply(401, b'{"error": "Invalid API key."}'),
            AuthenticationError,
            "pulsedive: access was denied (status 401: Invalid API key.)",
            1,
        ),
        (
            Reply(200, b'{"error": "API key required."}'),
            AuthenticationError,
            "pulsedive: access was denied (status 200: API key required.); iocscope sends no "
            "key to Pulsedive, so set sources.pulsedive.enabled to false if Pulsedive now "
            "requires one",
            1,
        ),
        (
            Reply(400, b'{"error": "Invalid indicator."}'),
            BadResponseError,
            "pulsedive: rejected bad.example as invalid input (status 400: Invalid indicator.)",
            1,
        ),
        (
            Reply(429, PER_SECOND, {"X-Requests-Remaining-Second": "0", "Retry-After": "1"}),
            RateLimitedError,
            "pulsedive: rate limited (status 429: API rate limit exceeded: 1 requests per "
            "second.) after 3 attempts; retry after 1 s",
            3,
        ),
        (
            Reply(429, b'{"error": "API rate limit exceeded."}', {"X-Requests-Remaining-Day": "0"}),
            QuotaExceededError,
            "pulsedive: quota exhausted (status 429: API rate limit exceeded.)",
            1,
        ),
        (
            Reply(503, b""),
            BadResponseError,
            "pulsedive: server error (status 503) after 3 attempts",
            3,
        ),
        (
            Reply(404, HTML, content_type="text/html"),
            BadResponseError,
            "pulsedive: returned an HTML page instead of JSON (status 404); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(404, b'{"detail": "Not Found"}'),
            BadResponseError,
            "pulsedive: unexpected response (status 404: Not Found)",
            1,
        ),
        (
            Reply(200, b'{"error": "Something broke."}'),
            BadResponseError,
            "pulsedive: unexpected response (status 200: Something broke.)",
            1,
        ),
        (
            Reply(200, HTML, content_type="text/html"),
            BadResponseError,
            "pulsedive: returned an HTML page instead of JSON (status 200); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, fixture("pulsedive_high.json")[:90]),
            BadResponseError,
            "pulsedive: returned a body that is not valid JSON (status 200, 90 bytes)",
            1,
        ),
        (
            Reply(200, b'{"iid": 41, "indicator": "bad.example"}'),
            BadResponseError,
            "pulsedive: returned a response in an unexpected format (risk: Field required)",
            1,
        ),
        (
            Reply(200, b"[]"),
            BadResponseError,
            "pulsedive: returned a response in an unexpected format (a JSON list, not an object)",
            1,
        ),
    ],
    ids=[
        "401",
        "200-key-required",
        "400",
        "429-per-second",
        "429-daily",
        "503",
        "404-html",
        "404-other-json",
        "200-other-error",
        "html",
        "truncated",
        "no-risk",
        "not-object",
    ],
)
async def test_failure(
    provider: Provider,
    reply: Reply,
    error: type[SourceError],
    message: str,
    attempts: int,
) -> None:
    provider.queue(reply)

    await raises_exactly(provider.source().lookup(domain()), error, message)
    assert len(provider.requests()) == attempts


async def test_rate_limit_then_success(provider: Provider) -> None:
    provider.queue(
        Reply(429, PER_SECOND, {"Retry-After": "1"}),
        Reply(200, fixture("pulsedive_high.json")),
    )

    result = await provider.source().lookup(domain())

    assert result.flagged is True
    assert provider.sleep.waits == [1.0]


async def test_monthly_quota(provider: Provider) -> None:
    headers = {"X-Requests-Remaining-Month": "0", "Retry-After": "86400"}
    provider.queue(Reply(429, b'{"error": "API rate limit exceeded."}', headers))

    with pytest.raises(QuotaExceededError) as info:
        await provider.source().lookup(domain())

    assert info.value.retry_after == 86400.0


async def test_timeout(provider: Provider) -> None:
    provider.queue(Reply(200, fixture("pulsedive_high.json"), delay=1.0))

    with pytest.raises(SourceTimeoutError) as info:
        await provider.source(timeout=0.2).lookup(domain())

    assert str(info.value) == (
        "pulsedive: no response within 0.2 s after 1 attempt; "
        "check the network or raise sources.pulsedive.timeout"
    )


async def test_drift_warned_once(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    reset_drift_warnings()
    body = json.loads(fixture("pulsedive_high.json"))
    body["risk"] = "severe"
    body["stamp_added"] = "01/03/2024"
    provider.queue(Reply(200, json.dumps(body)))
    source = provider.source()

    first = await source.lookup(domain())
    await source.lookup(domain())

    assert first.flagged is False
    assert first.found is False
    assert first.first_seen is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "source=pulsedive field risk has an unexpected value ('severe'); it is ignored. "
        "Pulsedive may have changed its API",
        "source=pulsedive field stamp_added has an unexpected value ('01/03/2024'); "
        "it is ignored. Pulsedive may have changed its API",
    ]


IGNORED = (
    "source=pulsedive an API key is configured in {where} but ignored: Pulsedive takes keys "
    "only in the URL, where iocscope never puts a key, so the keyless limits apply"
)


def sent_anywhere(secret: str, received: Received) -> bool:
    """Tell whether ``secret`` left the host in any part of a request."""
    parts = [received.path, repr(received.query), repr(received.headers), repr(received.body)]
    return any(secret in part for part in parts)


async def test_create_keyless(
    provider: Provider, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    provider.queue(Reply(200, fixture("pulsedive_high.json")))
    source = provider.created()

    result = await source.lookup(domain())

    assert source.meta is META
    assert result.flagged is True
    [received] = provider.requests()
    assert received.query == {"indicator": [DOMAIN]}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_key_never_sent(
    provider: Provider, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(KEY_ENV, KEY)
    provider.queue(
        Reply(200, fixture("pulsedive_high.json")),
        Reply(429, PER_SECOND, {"Retry-After": "1"}),
        Reply(200, fixture("pulsedive_high.json")),
        Reply(401, b'{"error": "Invalid API key."}'),
        Reply(503, b"{}"),
    )
    source = provider.created()
    messages = []

    for _ in range(4):
        try:
            await source.lookup(domain())
        except SourceError as exc:
            messages.append(str(exc))

    assert messages == [
        "pulsedive: access was denied (status 401: Invalid API key.)",
        "pulsedive: server error (status 503) after 3 attempts",
    ]
    received = provider.requests()
    assert len(received) == 7
    assert not [request for request in received if sent_anywhere(KEY, request)]
    assert all(request.query == {"indicator": [DOMAIN]} for request in received)
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert KEY not in repr(record.args)
    assert KEY not in caplog.text
    assert KEY not in repr(source)


async def test_configured_key_warned(
    provider: Provider, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)

    provider.created()

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [IGNORED.format(where=KEY_ENV)]


async def test_other_key_variable_warned(
    provider: Provider, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULSEDIVE_KEY", KEY)

    provider.created({"api_key_env": "PULSEDIVE_KEY"})

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [IGNORED.format(where="PULSEDIVE_KEY")]


async def test_key_file_ignored(
    provider: Provider,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # The file is never read, so one that does not exist is no error either.
    monkeypatch.delenv(KEY_ENV, raising=False)
    key_file = tmp_path / "missing.key"
    provider.queue(Reply(200, fixture("pulsedive_high.json")))
    source = provider.created({"api_key_file": str(key_file)})

    result = await source.lookup(domain())

    assert result.flagged is True
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [IGNORED.format(where=key_file)]


async def test_blank_key_not_warned(
    provider: Provider, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "  ")

    provider.created()

    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_meta() -> None:
    assert META.name == "pulsedive"
    assert META.kind is SourceKind.API
    assert META.types == frozenset(
        {IndicatorType.IPV4, IndicatorType.IPV6, IndicatorType.DOMAIN, IndicatorType.URL}
    )
    assert META.needs_key is False
    assert META.rate_per_minute == 60
