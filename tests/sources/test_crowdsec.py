"""The CrowdSec CTI source against a real replay server on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from iocscope.config import Settings, settings_from_mapping
from iocscope.errors import (
    AuthenticationError,
    BadResponseError,
    QuotaExceededError,
    SourceError,
    SourceTimeoutError,
    SourceUnavailableError,
)
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import SourceKind, Status
from iocscope.sources.crowdsec import META, CrowdSecSource, create
from iocscope.sources.drift import reset_drift_warnings
from tests.sources.support import RecordedSleep, deps, fixture, raises_exactly
from tests.support.corpus import CORPUS, corpus_path
from tests.support.replay import Received, ReplayServer, Reply

KEY = "crowdsec-test-key-61be0f"
KEY_ENV = "IOCSCOPE_CROWDSEC_API_KEY"
RECORDED = sorted(path.name for path in (CORPUS / "api-responses" / "crowdsec").glob("*.json"))
PREFIXES = itertools.count()
ADDRESS = "203.0.113.66"


def ip(value: str = ADDRESS) -> Indicator:
    kind = IndicatorType.IPV6 if ":" in value else IndicatorType.IPV4
    return Indicator(type=kind, value=value, original=value, display=value)


@dataclass(frozen=True)
class Provider:
    """A fake CrowdSec CTI under a path prefix of its own on the shared replay server."""

    server: ReplayServer
    prefix: str
    client: httpx.AsyncClient
    sleep: RecordedSleep

    @property
    def base_url(self) -> str:
        return self.server.base_url + self.prefix

    def path(self, address: str) -> str:
        return f"{self.prefix}/v2/smoke/{address}"

    def queue(self, address: str, *replies: Reply) -> None:
        self.server.queue(self.path(address), *replies)

    def requests(self, address: str) -> list[Received]:
        return self.server.requests_to(self.path(address))

    def source(self, **options: Any) -> CrowdSecSource:
        options.setdefault("base_url", self.base_url)
        return CrowdSecSource(self.client, SecretStr(KEY), sleep=self.sleep, **options)


@pytest.fixture
def provider(server: ReplayServer, client: httpx.AsyncClient) -> Provider:
    return Provider(server, f"/cs{next(PREFIXES)}", client, RecordedSleep())


async def test_malicious_address(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(200, fixture("crowdsec_malicious.json")))

    result = await provider.source().lookup(ip())

    assert result.source == "crowdsec"
    assert result.status is Status.OK
    assert result.found is True
    assert result.flagged is True
    assert result.benign is False
    assert result.confidence == 90
    assert result.categories == ("SSH Bruteforce", "HTTP Scan")
    assert result.tags == ("community-blocklist",)
    assert result.first_seen == datetime(2024, 1, 10, 12, 0, tzinfo=UTC)
    assert result.last_seen == datetime(2024, 5, 2, 6, 45, tzinfo=UTC)
    assert result.reference == f"https://app.crowdsec.net/cti/{ADDRESS}"
    assert result.summary == "reputation malicious; reported for SSH Bruteforce, HTTP Scan"
    assert result.context == {
        "reputation": "malicious",
        "as_name": "EXAMPLE-TRANSIT",
        "as_num": 64501,
        "country_iso": "DE",
        "city": "Frankfurt am Main",
        "background_noise": "high",
        "scores": {"aggressiveness": 5, "threat": 4, "trust": 5, "anomaly": 1, "total": 5},
        "scenarios": ["crowdsecurity/ssh-bf"],
        "cves": ["CVE-2023-0001"],
    }
    assert result.raw == json.loads(fixture("crowdsec_malicious.json"))


async def test_false_positive_is_benign_hint(provider: Provider) -> None:
    address = "198.51.100.80"
    provider.queue(address, Reply(200, fixture("crowdsec_false_positive.json")))

    result = await provider.source().lookup(ip(address))

    assert result.found is True
    assert result.flagged is False
    assert result.benign is True
    assert result.tags == ("seo:crawler",)
    assert result.summary == (
        "reputation safe; reported for HTTP Crawl; known false positive: SEO crawler"
    )


@dataclass(frozen=True)
class Expected:
    """The normalised fields a reputation must produce."""

    found: bool
    flagged: bool
    benign: bool
    confidence: int


@pytest.mark.parametrize(
    ("reputation", "false_positive", "expected"),
    [
        ("malicious", False, Expected(found=True, flagged=True, benign=False, confidence=90)),
        ("suspicious", False, Expected(found=True, flagged=True, benign=False, confidence=50)),
        ("known", False, Expected(found=False, flagged=False, benign=False, confidence=0)),
        ("unknown", False, Expected(found=False, flagged=False, benign=False, confidence=0)),
        ("safe", False, Expected(found=True, flagged=False, benign=True, confidence=0)),
        ("benign", False, Expected(found=True, flagged=False, benign=True, confidence=0)),
        ("malicious", True, Expected(found=True, flagged=True, benign=True, confidence=90)),
        ("known", True, Expected(found=True, flagged=False, benign=True, confidence=0)),
    ],
)
async def test_reputation_table(
    provider: Provider, reputation: str, false_positive: bool, expected: Expected
) -> None:
    fps = [{"name": "seo:crawler", "label": "SEO crawler"}] if false_positive else []
    body = {
        "ip": ADDRESS,
        "reputation": reputation,
        "classifications": {"false_positives": fps, "classifications": []},
    }
    provider.queue(ADDRESS, Reply(200, json.dumps(body)))

    result = await provider.source().lookup(ip())

    assert result.found is expected.found
    assert result.flagged is expected.flagged
    assert result.benign is expected.benign
    assert result.confidence == expected.confidence


async def test_key_only_in_header(provider: Provider) -> None:
    address = "2001:db8::66"
    provider.queue(address, Reply(200, fixture("crowdsec_malicious.json")))

    await provider.source().lookup(ip(address))

    [received] = provider.requests(address)
    assert received.headers["x-api-key"] == KEY
    assert received.query == {}


async def test_unknown_address(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(404, fixture("crowdsec_not_found.json")))

    result = await provider.source().lookup(ip())

    assert result.status is Status.OK
    assert result.found is False
    assert result.summary == "unknown to CrowdSec"


HTML = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"
HINT = "check IOCSCOPE_CROWDSEC_API_KEY"


@pytest.mark.parametrize(
    ("reply", "error", "message", "attempts"),
    [
        (
            Reply(403, b'{"message": "Forbidden"}'),
            AuthenticationError,
            f"crowdsec: the API key was rejected (status 403: Forbidden); {HINT}",
            1,
        ),
        (
            Reply(429, b'{"message": "Limit Exceeded"}'),
            QuotaExceededError,
            "crowdsec: quota exhausted (status 429: Limit Exceeded)",
            1,
        ),
        (
            Reply(429, b'{"message": "Too Many Requests"}', {"Retry-After": "30"}),
            QuotaExceededError,
            "crowdsec: quota exhausted (status 429: Too Many Requests); retry after 30 s",
            1,
        ),
        (
            Reply(500, b'{"message": "Internal server error"}'),
            BadResponseError,
            "crowdsec: server error (status 500: Internal server error) after 3 attempts",
            3,
        ),
        (
            Reply(404, b'{"message": "Not Found"}'),
            BadResponseError,
            "crowdsec: unexpected response (status 404: Not Found)",
            1,
        ),
        (
            Reply(404, HTML, content_type="text/html"),
            BadResponseError,
            "crowdsec: returned an HTML page instead of JSON (status 404); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, HTML, content_type="text/html"),
            BadResponseError,
            "crowdsec: returned an HTML page instead of JSON (status 200); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, fixture("crowdsec_malicious.json")[:200]),
            BadResponseError,
            "crowdsec: returned a body that is not valid JSON (status 200, 200 bytes)",
            1,
        ),
        (
            Reply(200, b'{"reputation": "malicious"}'),
            BadResponseError,
            "crowdsec: returned a response in an unexpected format (ip: Field required)",
            1,
        ),
        (
            Reply(200, b'{"ip": "203.0.113.66", "classifications": []}'),
            BadResponseError,
            "crowdsec: returned a response in an unexpected format "
            "(classifications: Input should be a valid dictionary or instance of "
            "_Classifications)",
            1,
        ),
        (
            Reply(200, b"[]"),
            BadResponseError,
            "crowdsec: returned a response in an unexpected format (a JSON list, not an object)",
            1,
        ),
    ],
    ids=[
        "403",
        "429",
        "429-retry-after",
        "500",
        "404-other-json",
        "404-html",
        "html",
        "truncated",
        "no-ip",
        "bad-classifications",
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

    await raises_exactly(provider.source().lookup(ip()), error, message)
    assert len(provider.requests(ADDRESS)) == attempts


async def test_quota_retry_after(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(429, b'{"message": "Limit Exceeded"}', {"Retry-After": "600"}))

    with pytest.raises(QuotaExceededError) as info:
        await provider.source().lookup(ip())

    assert info.value.retry_after == 600.0
    assert provider.sleep.waits == []


async def test_server_error_then_success(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(502, b""), Reply(200, fixture("crowdsec_malicious.json")))

    result = await provider.source().lookup(ip())

    assert result.flagged is True
    assert provider.sleep.waits == [0.5]


async def test_timeout(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(200, fixture("crowdsec_malicious.json"), delay=1.0))

    with pytest.raises(SourceTimeoutError) as info:
        await provider.source(timeout=0.2).lookup(ip())

    assert str(info.value) == (
        "crowdsec: no response within 0.2 s after 1 attempt; "
        "check the network or raise sources.crowdsec.timeout"
    )


async def test_drift_warned_once(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    reset_drift_warnings()
    body = json.loads(fixture("crowdsec_malicious.json"))
    del body["reputation"]
    body["behaviors"].append({"label": "no machine name"})
    body["history"]["first_seen"] = "yesterday"
    provider.queue(ADDRESS, Reply(200, json.dumps(body)))
    source = provider.source()

    first = await source.lookup(ip())
    await source.lookup(ip())

    assert first.flagged is False
    assert first.found is False
    assert first.categories == ("SSH Bruteforce", "HTTP Scan")
    assert first.first_seen is None
    assert first.last_seen == datetime(2024, 5, 2, 6, 45, tzinfo=UTC)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "source=crowdsec field reputation has an unexpected value (None); it is ignored. "
        "CrowdSec may have changed its API",
        "source=crowdsec field behaviors has an unexpected value ({'label': 'no machine name'}); "
        "it is ignored. CrowdSec may have changed its API",
        "source=crowdsec field history.first_seen has an unexpected value ('yesterday'); "
        "it is ignored. CrowdSec may have changed its API",
    ]


async def test_key_never_logged(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider.queue(
        ADDRESS,
        Reply(200, fixture("crowdsec_malicious.json")),
        Reply(403, b'{"message": "Key ' + KEY.encode() + b' is disabled"}'),
        Reply(429, b'{"message": "Limit Exceeded"}'),
    )
    source = provider.source()
    messages = []

    for _ in range(3):
        try:
            await source.lookup(ip())
        except SourceError as exc:
            messages.append(str(exc))

    assert messages == [
        f"crowdsec: the API key was rejected (status 403: Key *** is disabled); {HINT}",
        "crowdsec: quota exhausted (status 429: Limit Exceeded)",
    ]
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in repr(record.args)
    assert KEY not in repr(source)


async def test_create_without_key(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)

    with pytest.raises(SourceUnavailableError) as info:
        create(deps(Settings(), client))

    assert str(info.value) == (
        "CrowdSec CTI needs an API key: set IOCSCOPE_CROWDSEC_API_KEY "
        "or sources.crowdsec.api_key_file"
    )


async def test_create_from_env(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    settings = settings_from_mapping({"sources": {"crowdsec": {"base_url": provider.base_url}}})
    provider.queue(ADDRESS, Reply(200, fixture("crowdsec_malicious.json")))

    source = create(deps(settings, provider.client))
    result = await source.lookup(ip())

    assert source.meta is META
    assert result.flagged is True
    [received] = provider.requests(ADDRESS)
    assert received.headers["x-api-key"] == KEY


def test_meta() -> None:
    assert META.name == "crowdsec"
    assert META.kind is SourceKind.API
    assert META.types == frozenset({IndicatorType.IPV4, IndicatorType.IPV6})
    assert META.needs_key is True
    assert META.daily_budget == 50


@pytest.mark.corpus
@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_answer(provider: Provider, name: str) -> None:
    body = json.loads(corpus_path("api-responses", "crowdsec", name).read_text("utf-8"))
    # The recorded body masks its address ("TEST.IP.x.y"); the source does not
    # need the echoed address to be a valid one.
    provider.queue(ADDRESS, Reply(200, json.dumps(body)))

    result = await provider.source().lookup(ip())

    assert result.flagged is (body["reputation"] in ("malicious", "suspicious"))
    assert result.benign is bool(body["classifications"]["false_positives"])
    assert len(result.categories) == len(body["behaviors"])
    assert result.first_seen == datetime.fromisoformat(body["history"]["first_seen"])
    assert result.context["as_name"] == body["as_name"]
