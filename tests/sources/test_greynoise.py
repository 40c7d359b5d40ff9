"""The GreyNoise Community source against a real replay server on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest
from pydantic import SecretStr

from iocscope.config import settings_from_mapping
from iocscope.errors import (
    AuthenticationError,
    BadResponseError,
    RateLimitedError,
    SourceError,
    SourceTimeoutError,
)
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import SourceKind, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.drift import reset_drift_warnings
from iocscope.sources.greynoise import META, GreyNoiseSource, create
from tests.sources.support import RecordedSleep, fixture, raises_exactly
from tests.support.corpus import CORPUS, corpus_path
from tests.support.replay import Received, ReplayServer, Reply

KEY = "greynoise-test-key-5d0e2b"
KEY_ENV = "IOCSCOPE_GREYNOISE_API_KEY"
RECORDED = sorted(path.name for path in (CORPUS / "api-responses" / "greynoise").glob("*.json"))
PREFIXES = itertools.count()
ADDRESS = "203.0.113.66"


def ipv4(value: str = ADDRESS) -> Indicator:
    return Indicator(type=IndicatorType.IPV4, value=value, original=value, display=value)


@dataclass(frozen=True)
class Provider:
    """A fake GreyNoise under a path prefix of its own on the shared replay server."""

    server: ReplayServer
    prefix: str
    client: httpx.AsyncClient
    sleep: RecordedSleep

    @property
    def base_url(self) -> str:
        return self.server.base_url + self.prefix

    def path(self, address: str) -> str:
        return f"{self.prefix}/v3/community/{address}"

    def queue(self, address: str, *replies: Reply) -> None:
        self.server.queue(self.path(address), *replies)

    def requests(self, address: str) -> list[Received]:
        return self.server.requests_to(self.path(address))

    def source(self, key: str | None = KEY, **options: Any) -> GreyNoiseSource:
        options.setdefault("base_url", self.base_url)
        options.setdefault("key_hint", f"check {KEY_ENV}")
        secret = SecretStr(key) if key is not None else None
        return GreyNoiseSource(self.client, secret, sleep=self.sleep, **options)


@pytest.fixture
def provider(server: ReplayServer, client: httpx.AsyncClient) -> Provider:
    return Provider(server, f"/gn{next(PREFIXES)}", client, RecordedSleep())


async def test_malicious_scanner(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(200, fixture("greynoise_malicious.json")))

    result = await provider.source().lookup(ipv4())

    assert result.source == "greynoise"
    assert result.status is Status.OK
    assert result.found is True
    assert result.flagged is True
    assert result.benign is False
    assert result.confidence == 75
    assert result.categories == ("malicious scanner",)
    assert result.tags == ("noise",)
    assert result.last_seen == datetime(2024, 5, 1, tzinfo=UTC)
    assert result.reference == f"https://viz.greynoise.io/ip/{ADDRESS}"
    assert result.summary == "Internet scanner, classified malicious; last seen 2024-05-01"
    assert result.context == {"classification": "malicious", "noise": True, "riot": False}
    assert result.raw == json.loads(fixture("greynoise_malicious.json"))


async def test_riot_is_benign_hint(provider: Provider) -> None:
    address = "198.51.100.53"
    provider.queue(address, Reply(200, fixture("greynoise_riot.json")))

    result = await provider.source().lookup(ipv4(address))

    assert result.found is True
    assert result.flagged is False
    assert result.benign is True
    assert result.confidence == 0
    assert result.tags == ("riot",)
    assert result.reference == "https://viz.greynoise.io/riot/198.51.100.53"
    assert result.summary == (
        "RIOT: known business service (Example Public DNS); classified benign; last seen 2024-05-02"
    )
    assert result.context["name"] == "Example Public DNS"


@pytest.mark.parametrize(
    ("fields", "flagged", "benign"),
    [
        ({"noise": True, "riot": False, "classification": "benign"}, False, True),
        ({"noise": True, "riot": False, "classification": "unknown"}, False, False),
        ({"noise": False, "riot": True, "classification": "unknown"}, False, True),
        ({"noise": True, "riot": False}, False, False),
    ],
    ids=["benign-scanner", "unknown-scanner", "riot-unknown", "no-classification"],
)
async def test_classification_table(
    provider: Provider, fields: dict[str, Any], flagged: bool, benign: bool
) -> None:
    body = {"ip": ADDRESS, "message": "Success", **fields}
    provider.queue(ADDRESS, Reply(200, json.dumps(body)))

    result = await provider.source().lookup(ipv4())

    assert result.flagged is flagged
    assert result.benign is benign


async def test_key_only_in_header(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(200, fixture("greynoise_malicious.json")))

    await provider.source().lookup(ipv4())

    [received] = provider.requests(ADDRESS)
    assert received.headers["key"] == KEY
    assert received.headers["accept"] == "application/json"
    assert received.query == {}


async def test_works_without_key(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(200, fixture("greynoise_malicious.json")))

    result = await provider.source(key=None).lookup(ipv4())

    assert result.flagged is True
    [received] = provider.requests(ADDRESS)
    assert "key" not in received.headers


async def test_not_observed(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(404, fixture("greynoise_not_observed.json")))

    result = await provider.source().lookup(ipv4())

    assert result.status is Status.OK
    assert result.found is False
    assert result.flagged is False
    assert result.benign is False
    assert result.summary == "not observed by GreyNoise"


HTML = b"<!DOCTYPE html><html><head><title>Attention Required!</title></head></html>"


@pytest.mark.parametrize(
    ("reply", "error", "message", "attempts"),
    [
        (
            Reply(401, b'{"message": "Unauthorized"}'),
            AuthenticationError,
            "greynoise: the API key was rejected (status 401: Unauthorized); "
            "check IOCSCOPE_GREYNOISE_API_KEY",
            1,
        ),
        (
            Reply(400, fixture("greynoise_error_400.json")),
            BadResponseError,
            "greynoise: rejected 203.0.113.66 as invalid input (status 400: Invalid IP submitted)",
            1,
        ),
        (
            Reply(429, b'{"message": "Rate limit exceeded"}', {"Retry-After": "3"}),
            RateLimitedError,
            "greynoise: rate limited (status 429: Rate limit exceeded) after 3 attempts; "
            "retry after 3 s",
            3,
        ),
        (
            Reply(500, b""),
            BadResponseError,
            "greynoise: server error (status 500) after 3 attempts",
            3,
        ),
        (
            Reply(404, b'{"message": "Not Found"}'),
            BadResponseError,
            "greynoise: unexpected response (status 404: Not Found)",
            1,
        ),
        (
            Reply(404, HTML, content_type="text/html"),
            BadResponseError,
            "greynoise: returned an HTML page instead of JSON (status 404); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, HTML, content_type="text/html"),
            BadResponseError,
            "greynoise: returned an HTML page instead of JSON (status 200); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, fixture("greynoise_malicious.json")[:60]),
            BadResponseError,
            "greynoise: returned a body that is not valid JSON (status 200, 60 bytes)",
            1,
        ),
        (
            Reply(200, b'{"ip": "203.0.113.66", "message": "Success"}'),
            BadResponseError,
            "greynoise: returned a response in an unexpected format "
            "(noise: Field required; riot: Field required)",
            1,
        ),
        (
            Reply(200, b'"Success"'),
            BadResponseError,
            "greynoise: returned a response in an unexpected format (a JSON str, not an object)",
            1,
        ),
    ],
    ids=[
        "401",
        "400",
        "429",
        "500",
        "404-other-json",
        "404-html",
        "html",
        "truncated",
        "no-flags",
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
    provider.queue(ADDRESS, reply)

    await raises_exactly(provider.source().lookup(ipv4()), error, message)
    assert len(provider.requests(ADDRESS)) == attempts


async def test_keyless_access_denied(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(401, b'{"message": "Unauthorized"}'))

    with pytest.raises(AuthenticationError) as info:
        await provider.source(key=None).lookup(ipv4())

    assert str(info.value) == "greynoise: access was denied (status 401: Unauthorized)"


async def test_rate_limit_then_success(provider: Provider) -> None:
    provider.queue(
        ADDRESS,
        Reply(429, b"{}", {"Retry-After": "1"}),
        Reply(200, fixture("greynoise_malicious.json")),
    )

    result = await provider.source().lookup(ipv4())

    assert result.flagged is True
    assert provider.sleep.waits == [1.0]


async def test_rate_limit_retry_after(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(429, b"{}", {"Retry-After": "4"}))

    with pytest.raises(RateLimitedError) as info:
        await provider.source().lookup(ipv4())

    assert info.value.retry_after == 4.0


async def test_timeout(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(200, fixture("greynoise_malicious.json"), delay=1.0))

    with pytest.raises(SourceTimeoutError) as info:
        await provider.source(timeout=0.2).lookup(ipv4())

    assert str(info.value) == (
        "greynoise: no response within 0.2 s after 1 attempt; "
        "check the network or raise sources.greynoise.timeout"
    )


async def test_drift_warned_once(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    reset_drift_warnings()
    body = {"ip": ADDRESS, "noise": True, "riot": False, "classification": "suspicious"}
    provider.queue(ADDRESS, Reply(200, json.dumps(body)))
    source = provider.source()

    first = await source.lookup(ipv4())
    await source.lookup(ipv4())

    assert first.flagged is False
    assert first.context["classification"] == "unknown"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "source=greynoise unknown classification 'suspicious' is read as 'unknown'; "
        "GreyNoise may have changed its API"
    ]


async def test_key_never_logged(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider.queue(
        ADDRESS,
        Reply(200, fixture("greynoise_malicious.json")),
        Reply(429, b"{}", {"Retry-After": "1"}),
        Reply(200, fixture("greynoise_malicious.json")),
        Reply(401, b'{"message": "Key ' + KEY.encode() + b' is not valid"}'),
    )
    source = provider.source()
    messages = []

    for _ in range(3):
        try:
            await source.lookup(ipv4())
        except SourceError as exc:
            messages.append(str(exc))

    assert messages == [
        "greynoise: the API key was rejected (status 401: Key *** is not valid); "
        "check IOCSCOPE_GREYNOISE_API_KEY"
    ]
    assert {"httpx", "iocscope.sources.http"} <= {r.name for r in caplog.records}
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in repr(record.args)
    assert KEY not in repr(source)


async def test_create_keyless(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    settings = settings_from_mapping({"sources": {"greynoise": {"base_url": provider.base_url}}})
    provider.queue(ADDRESS, Reply(401, b'{"message": "Unauthorized"}'))
    source = create(SourceDeps(settings=settings, http=provider.client, feeds=cast(Any, None)))

    with pytest.raises(AuthenticationError) as info:
        await source.lookup(ipv4())

    assert source.meta is META
    assert str(info.value) == "greynoise: access was denied (status 401: Unauthorized)"


async def test_create_with_key(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    settings = settings_from_mapping({"sources": {"greynoise": {"base_url": provider.base_url}}})
    provider.queue(ADDRESS, Reply(200, fixture("greynoise_malicious.json")))
    source = create(SourceDeps(settings=settings, http=provider.client, feeds=cast(Any, None)))

    await source.lookup(ipv4())

    [received] = provider.requests(ADDRESS)
    assert received.headers["key"] == KEY


def test_meta() -> None:
    assert META.name == "greynoise"
    assert META.kind is SourceKind.API
    assert META.types == frozenset({IndicatorType.IPV4})
    assert META.needs_key is False
    assert META.daily_budget == 7


@pytest.mark.corpus
@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_answer(provider: Provider, name: str) -> None:
    payload = json.loads(corpus_path("api-responses", "greynoise", name).read_text("utf-8"))
    # wtfis_* files store each body under the queried address.
    for address, body in payload.items():
        provider.queue(address, Reply(200, json.dumps(body)))

        result = await provider.source().lookup(ipv4(address))

        assert result.flagged is (body["classification"] == "malicious")
        assert result.benign is (body["riot"] or body["classification"] == "benign")
        assert result.last_seen == datetime.strptime(body["last_seen"], "%Y-%m-%d").replace(
            tzinfo=UTC
        )
        assert result.reference == body["link"]
