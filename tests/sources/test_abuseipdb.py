"""The AbuseIPDB source against a real replay server on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import itertools
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from iocscope.config import Settings, settings_from_mapping
from iocscope.errors import (
    AuthenticationError,
    BadResponseError,
    QuotaExceededError,
    RateLimitedError,
    SourceError,
    SourceTimeoutError,
    SourceUnavailableError,
)
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.abuseipdb import CHECK_PATH, META, AbuseIpdbSource, create
from iocscope.sources.contract import SourceKind, Status
from tests.sources.support import (
    RecordedSleep,
    assert_key_not_logged,
    deps,
    fixture,
    raises_exactly,
)
from tests.support.corpus import CORPUS, corpus_path
from tests.support.replay import Received, ReplayServer, Reply

KEY = "abuseipdb-test-key-7d1f0c94e2"
KEY_ENV = "IOCSCOPE_ABUSEIPDB_API_KEY"
RECORDED = sorted(path.name for path in (CORPUS / "api-responses" / "abuseipdb").glob("*.json"))
PREFIXES = itertools.count()


def indicator(value: str) -> Indicator:
    version = ipaddress.ip_address(value).version
    kind = IndicatorType.IPV4 if version == 4 else IndicatorType.IPV6
    return Indicator(type=kind, value=value, original=value, display=value)


@dataclass(frozen=True)
class Provider:
    """A fake AbuseIPDB under a path prefix of its own on the shared replay server."""

    server: ReplayServer
    prefix: str
    client: httpx.AsyncClient
    sleep: RecordedSleep

    @property
    def base_url(self) -> str:
        return self.server.base_url + self.prefix

    def queue(self, *replies: Reply) -> None:
        self.server.queue(self.prefix + CHECK_PATH, *replies)

    def requests(self) -> list[Received]:
        return self.server.requests_to(self.prefix + CHECK_PATH)

    def source(self, **options: Any) -> AbuseIpdbSource:
        options.setdefault("base_url", self.base_url)
        return AbuseIpdbSource(self.client, SecretStr(KEY), sleep=self.sleep, **options)


@pytest.fixture
def provider(server: ReplayServer, client: httpx.AsyncClient) -> Provider:
    return Provider(server, f"/abuse{next(PREFIXES)}", client, RecordedSleep())


async def test_reported_address(provider: Provider) -> None:
    provider.queue(Reply(200, fixture("abuseipdb_check_reported.json")))

    result = await provider.source().lookup(indicator("203.0.113.7"))

    assert result.source == "abuseipdb"
    assert result.status is Status.OK
    assert result.found is True
    assert result.flagged is True
    assert result.benign is False
    assert result.confidence == 87
    assert result.categories == ("Port Scan", "Brute-Force", "SSH", "category 99")
    assert result.tags == ()
    assert result.last_seen == datetime(2024, 5, 2, 10, 15, tzinfo=UTC)
    assert result.reference == "https://www.abuseipdb.com/check/203.0.113.7"
    assert result.summary == (
        "abuse confidence 87% from 41 reports by 12 users in 90 days; last reported 2024-05-02"
    )
    assert result.context == {
        "country_iso": "NL",
        "isp": "Example Hosting B.V.",
        "usage_type": "Data Center/Web Hosting/Transit",
        "domain": "hosting.example",
        "hostnames": ["vps-7.hosting.example"],
        "is_tor": False,
        "whitelisted": False,
        "total_reports": 41,
        "distinct_users": 12,
    }
    assert result.raw == json.loads(fixture("abuseipdb_check_reported.json"))


async def test_key_only_in_header(provider: Provider) -> None:
    provider.queue(Reply(200, fixture("abuseipdb_check_clean.json")))

    await provider.source().lookup(indicator("198.51.100.20"))

    [received] = provider.requests()
    assert received.method == "GET"
    assert received.headers["key"] == KEY
    assert received.headers["accept"] == "application/json"
    assert received.query == {"ipAddress": ["198.51.100.20"], "maxAgeInDays": ["90"]}
    assert KEY not in received.path
    assert all(KEY not in value for values in received.query.values() for value in values)


async def test_verbose_asks_for_reports(provider: Provider) -> None:
    provider.queue(Reply(200, fixture("abuseipdb_check_reported.json")))

    await provider.source(verbose=True).lookup(indicator("203.0.113.7"))

    [received] = provider.requests()
    assert received.query["verbose"] == ["true"]


async def test_ipv6_query(provider: Provider) -> None:
    provider.queue(Reply(200, fixture("abuseipdb_check_tor_ipv6.json")))

    result = await provider.source().lookup(indicator("2001:db8::7"))

    [received] = provider.requests()
    assert received.query["ipAddress"] == ["2001:db8::7"]
    assert result.reference == "https://www.abuseipdb.com/check/2001:db8::7"


@dataclass(frozen=True)
class Expected:
    """The normalised fields a fixture must produce."""

    flagged: bool
    found: bool
    benign: bool
    tags: tuple[str, ...]
    summary: str


@pytest.mark.parametrize(
    ("name", "threshold", "expected"),
    [
        (
            "abuseipdb_check_reported.json",
            90,
            Expected(
                flagged=False,
                found=True,
                benign=False,
                tags=(),
                summary="abuse confidence 87% from 41 reports by 12 users in 90 days; "
                "last reported 2024-05-02",
            ),
        ),
        (
            "abuseipdb_check_clean.json",
            50,
            Expected(
                flagged=False, found=False, benign=False, tags=(), summary="no reports in 90 days"
            ),
        ),
        (
            "abuseipdb_check_whitelisted.json",
            50,
            Expected(
                flagged=False,
                found=True,
                benign=True,
                tags=(),
                summary="abuse confidence 0% from 3 reports by 2 users in 90 days; "
                "last reported 2024-03-11; whitelisted by AbuseIPDB",
            ),
        ),
        (
            "abuseipdb_check_tor_ipv6.json",
            50,
            Expected(
                flagged=True,
                found=True,
                benign=False,
                tags=("tor",),
                summary="abuse confidence 50% from 1 report by 1 user in 90 days; "
                "last reported 2024-06-01; Tor exit node",
            ),
        ),
    ],
    ids=["below-threshold", "clean", "whitelisted", "tor-at-threshold"],
)
async def test_normalised_answer(
    provider: Provider, name: str, threshold: int, expected: Expected
) -> None:
    provider.queue(Reply(200, fixture(name)))
    value = json.loads(fixture(name))["data"]["ipAddress"]

    result = await provider.source(threshold=threshold).lookup(indicator(value))

    assert result.flagged is expected.flagged
    assert result.found is expected.found
    assert result.benign is expected.benign
    assert result.tags == expected.tags
    assert result.summary == expected.summary


HTML = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"
DAILY_LIMIT = {"Retry-After": "3600", "X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "0"}
BURST_LIMIT = {"Retry-After": "1", "X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "12"}


@pytest.mark.parametrize(
    ("reply", "error", "message", "attempts"),
    [
        (
            Reply(401, fixture("abuseipdb_error_401.json")),
            AuthenticationError,
            "abuseipdb: the API key was rejected (status 401: Authentication failed. The API key "
            "is missing, wrong or revoked.); check IOCSCOPE_ABUSEIPDB_API_KEY",
            1,
        ),
        (
            Reply(422, fixture("abuseipdb_error_422.json")),
            BadResponseError,
            "abuseipdb: rejected 203.0.113.7 as invalid input (status 422: The ipAddress field "
            "must be a valid IPv4 or IPv6 address.)",
            1,
        ),
        (
            Reply(429, fixture("abuseipdb_error_429.json"), DAILY_LIMIT),
            QuotaExceededError,
            "abuseipdb: quota exhausted (status 429: Daily rate limit of 1000 requests "
            "exceeded for this endpoint.); retry after 3600 s",
            1,
        ),
        (
            Reply(429, b"{}", BURST_LIMIT),
            RateLimitedError,
            "abuseipdb: rate limited (status 429) after 3 attempts; retry after 1 s",
            3,
        ),
        (
            Reply(503, b'{"errors": [{"detail": "Service Unavailable", "status": 503}]}'),
            BadResponseError,
            "abuseipdb: server error (status 503: Service Unavailable) after 3 attempts",
            3,
        ),
        (
            Reply(200, HTML, content_type="text/html"),
            BadResponseError,
            "abuseipdb: returned an HTML page instead of JSON (status 200); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, fixture("abuseipdb_check_reported.json")[:120]),
            BadResponseError,
            "abuseipdb: returned a body that is not valid JSON (status 200, 120 bytes)",
            1,
        ),
        (
            Reply(200, b'{"data": {"ipAddress": "203.0.113.7"}}'),
            BadResponseError,
            "abuseipdb: returned a response in an unexpected format "
            "(data.abuseConfidenceScore: Field required)",
            1,
        ),
        (
            Reply(200, b'{"data": {"ipAddress": "203.0.113.7", "abuseConfidenceScore": 250}}'),
            BadResponseError,
            "abuseipdb: returned a response in an unexpected format "
            "(data.abuseConfidenceScore: Input should be less than or equal to 100)",
            1,
        ),
        (
            Reply(200, b"[]"),
            BadResponseError,
            "abuseipdb: returned a response in an unexpected format (a JSON list, not an object)",
            1,
        ),
        (
            Reply(200, b'{"errors": []}'),
            BadResponseError,
            "abuseipdb: returned a response in an unexpected format (data: Field required)",
            1,
        ),
    ],
    ids=[
        "401",
        "422",
        "429-daily",
        "429-burst",
        "503",
        "html",
        "truncated",
        "no-score",
        "score-out-of-range",
        "not-object",
        "no-data",
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

    raised = await raises_exactly(
        provider.source().lookup(indicator("203.0.113.7")), error, message
    )
    assert raised.source == "abuseipdb"
    assert len(provider.requests()) == attempts


@pytest.mark.parametrize(
    ("headers", "error", "retry_after"),
    [
        (DAILY_LIMIT, QuotaExceededError, 3600.0),
        (BURST_LIMIT, RateLimitedError, 1.0),
    ],
    ids=["daily", "burst"],
)
async def test_rate_limit_retry_after(
    provider: Provider,
    headers: dict[str, str],
    error: type[RateLimitedError],
    retry_after: float,
) -> None:
    provider.queue(Reply(429, fixture("abuseipdb_error_429.json"), headers))

    with pytest.raises(error) as info:
        await provider.source().lookup(indicator("203.0.113.7"))

    assert info.value.retry_after == retry_after


async def test_burst_limit_then_success(provider: Provider) -> None:
    provider.queue(
        Reply(429, b"{}", BURST_LIMIT),
        Reply(200, fixture("abuseipdb_check_reported.json")),
    )

    result = await provider.source().lookup(indicator("203.0.113.7"))

    assert result.flagged is True
    assert provider.sleep.waits == [1.0]
    assert len(provider.requests()) == 2


async def test_server_error_then_success(provider: Provider) -> None:
    provider.queue(Reply(502, b""), Reply(200, fixture("abuseipdb_check_reported.json")))

    result = await provider.source().lookup(indicator("203.0.113.7"))

    assert result.confidence == 87
    assert provider.sleep.waits == [0.5]


async def test_timeout(provider: Provider) -> None:
    provider.queue(Reply(200, fixture("abuseipdb_check_clean.json"), delay=1.0))

    with pytest.raises(SourceTimeoutError) as info:
        await provider.source(timeout=0.2).lookup(indicator("198.51.100.20"))

    assert str(info.value) == (
        "abuseipdb: no response within 0.2 s after 1 attempt; "
        "check the network or raise sources.abuseipdb.timeout"
    )


async def test_key_never_logged(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider.queue(
        Reply(200, fixture("abuseipdb_check_reported.json")),
        Reply(429, b"{}", BURST_LIMIT),
        Reply(200, fixture("abuseipdb_check_reported.json")),
        Reply(401, b'{"errors": [{"detail": "Key ' + KEY.encode() + b' is revoked."}]}'),
        Reply(503, b"{}"),
    )
    source = provider.source()
    messages = []

    for _ in range(4):
        try:
            await source.lookup(indicator("203.0.113.7"))
        except SourceError as exc:
            messages.append(str(exc))

    assert messages == [
        "abuseipdb: the API key was rejected (status 401: Key *** is revoked.); "
        "check IOCSCOPE_ABUSEIPDB_API_KEY",
        "abuseipdb: server error (status 503) after 3 attempts",
    ]
    # httpx and httpcore log every request at DEBUG; they must not leak it either.
    assert {"httpx", "httpcore.http11", "iocscope.sources.http"} <= {r.name for r in caplog.records}
    assert_key_not_logged(KEY, caplog, source)
    for received in provider.requests():
        assert KEY not in received.path
        assert KEY not in repr(received.query)


async def test_create_without_key(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)

    with pytest.raises(SourceUnavailableError) as info:
        create(deps(Settings(), client))

    assert str(info.value) == (
        "AbuseIPDB needs an API key: set IOCSCOPE_ABUSEIPDB_API_KEY "
        "or sources.abuseipdb.api_key_file"
    )


async def test_create_names_custom_env(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACME_ABUSE_KEY", raising=False)
    settings = settings_from_mapping({"sources": {"abuseipdb": {"api_key_env": "ACME_ABUSE_KEY"}}})

    with pytest.raises(SourceUnavailableError) as info:
        create(deps(settings, client))

    assert str(info.value) == (
        "AbuseIPDB needs an API key: set ACME_ABUSE_KEY or sources.abuseipdb.api_key_file"
    )


async def test_create_from_env(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    settings = settings_from_mapping({"sources": {"abuseipdb": {"base_url": provider.base_url}}})
    provider.queue(Reply(200, fixture("abuseipdb_check_reported.json")))

    source = create(deps(settings, provider.client))
    result = await source.lookup(indicator("203.0.113.7"))

    assert source.meta is META
    assert result.flagged is True
    [received] = provider.requests()
    assert received.headers["key"] == KEY


async def test_create_from_key_file(
    provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    key_file = tmp_path / "abuseipdb.key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    settings = settings_from_mapping(
        {"sources": {"abuseipdb": {"base_url": provider.base_url, "api_key_file": str(key_file)}}}
    )
    provider.queue(Reply(401, fixture("abuseipdb_error_401.json")))

    with pytest.raises(AuthenticationError) as info:
        await create(deps(settings, provider.client)).lookup(indicator("203.0.113.7"))

    assert str(info.value).endswith(f"; check the key in {key_file}")
    [received] = provider.requests()
    assert received.headers["key"] == KEY


def test_meta() -> None:
    assert META.name == "abuseipdb"
    assert META.kind is SourceKind.API
    assert META.types == frozenset({IndicatorType.IPV4, IndicatorType.IPV6})
    assert META.needs_key is True
    assert META.daily_budget == 1000
    assert META.weight < Settings().scoring.strong_weight


@pytest.mark.corpus
@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_answer(provider: Provider, name: str) -> None:
    payload = json.loads(corpus_path("api-responses", "abuseipdb", name).read_text("utf-8"))
    # Files named wtfis_* that are not *_raw store the body under the queried address.
    data = payload["data"] if "data" in payload else next(iter(payload.values()))
    provider.queue(Reply(200, json.dumps({"data": data})))

    result = await provider.source().lookup(indicator(data["ipAddress"]))

    assert result.confidence == data["abuseConfidenceScore"]
    assert result.flagged is (data["abuseConfidenceScore"] >= 50)
    assert result.found is (data["totalReports"] > 0)
    assert result.last_seen == datetime.fromisoformat(data["lastReportedAt"])
    assert result.context["country_iso"] == data["countryCode"]
    assert result.context["total_reports"] == data["totalReports"]
