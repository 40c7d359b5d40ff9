"""The OpenCTI source against a real replay server on 127.0.0.1."""

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
    RateLimitedError,
    SourceError,
    SourceTimeoutError,
    SourceUnavailableError,
)
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import SourceKind, Status
from iocscope.sources.drift import reset_drift_warnings
from iocscope.sources.opencti import GRAPHQL_PATH, META, QUERY, OpenCtiSource, create
from tests.sources.support import (
    RecordedSleep,
    assert_key_not_logged,
    deps,
    fixture,
    raises_exactly,
)
from tests.support.replay import Received, ReplayServer, Reply

KEY = "opencti-test-token-7a6b5c4d-3e2f-1a0b"
KEY_ENV = "IOCSCOPE_OPENCTI_API_KEY"
PREFIXES = itertools.count()
ADDRESS = "203.0.113.77"
OBSERVABLE_ID = "9c1b7f4e-2d3a-4b5c-8e6f-0a1b2c3d4e5f"


def indicator(value: str, kind: IndicatorType = IndicatorType.IPV4) -> Indicator:
    return Indicator(type=kind, value=value, original=value, display=value)


@dataclass(frozen=True)
class Provider:
    """A fake OpenCTI platform under a path prefix of its own on the shared replay server."""

    server: ReplayServer
    prefix: str
    client: httpx.AsyncClient
    sleep: RecordedSleep

    @property
    def base_url(self) -> str:
        return self.server.base_url + self.prefix

    def queue(self, *replies: Reply) -> None:
        self.server.queue(self.prefix + GRAPHQL_PATH, *replies)

    def requests(self) -> list[Received]:
        return self.server.requests_to(self.prefix + GRAPHQL_PATH)

    def source(self, **options: Any) -> OpenCtiSource:
        options.setdefault("base_url", self.base_url)
        return OpenCtiSource(self.client, SecretStr(KEY), sleep=self.sleep, **options)


@pytest.fixture
def provider(server: ReplayServer, client: httpx.AsyncClient) -> Provider:
    return Provider(server, f"/opencti{next(PREFIXES)}", client, RecordedSleep())


async def test_scored_observable(provider: Provider) -> None:
    provider.queue(Reply(200, fixture("opencti_observable_scored.json")))

    result = await provider.source().lookup(indicator(ADDRESS))

    assert result.source == "opencti"
    assert result.status is Status.OK
    assert result.found is True
    assert result.flagged is True
    assert result.benign is False
    # The revoked indicator's 95 does not count.
    assert result.confidence == 85
    assert result.categories == ("malicious-activity",)
    assert result.tags == ("c2", "cobalt-strike")
    assert result.first_seen == datetime(2024, 4, 11, 8, 30, tzinfo=UTC)
    assert result.last_seen == datetime(2024, 5, 2, 14, 5, 12, tzinfo=UTC)
    assert result.reference == (
        f"{provider.base_url}/dashboard/observations/observables/{OBSERVABLE_ID}"
    )
    assert result.summary == (
        'score 85 (flag threshold 50); 1 indicator ("Cobalt Strike team server 203.0.113.77"); '
        "labels c2, cobalt-strike"
    )
    assert result.context == {
        "score": 85,
        "observables": 1,
        "entity_types": ["IPv4-Addr"],
        "indicators": ["Cobalt Strike team server 203.0.113.77"],
    }
    assert result.raw == json.loads(fixture("opencti_observable_scored.json"))


@pytest.mark.parametrize(
    ("kind", "value", "key"),
    [
        (IndicatorType.IPV4, ADDRESS, "value"),
        (IndicatorType.DOMAIN, "bad.example.com", "value"),
        (IndicatorType.URL, "https://bad.example.com/x", "value"),
        (IndicatorType.MD5, "5e6f708192a3b4c5d6e7f8091a2b3c4d", "hashes.MD5"),
        (IndicatorType.SHA1, "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d", "hashes.SHA-1"),
        (IndicatorType.SHA256, "ab" * 32, "hashes.SHA-256"),
        (IndicatorType.SHA512, "cd" * 64, "hashes.SHA-512"),
    ],
    ids=["ipv4", "domain", "url", "md5", "sha1", "sha256", "sha512"],
)
async def test_request_shape(provider: Provider, kind: IndicatorType, value: str, key: str) -> None:
    provider.queue(Reply(200, fixture("opencti_empty.json")))

    await provider.source().lookup(indicator(value, kind))

    [received] = provider.requests()
    assert received.method == "POST"
    assert received.headers["authorization"] == f"Bearer {KEY}"
    assert received.headers["content-type"] == "application/json"
    assert received.query == {}
    assert json.loads(received.body) == {
        "query": QUERY,
        "variables": {
            "filters": {
                "mode": "and",
                "filters": [{"key": key, "values": [value], "operator": "eq", "mode": "or"}],
                "filterGroups": [],
            },
            "first": 10,
            "indicators": 10,
        },
    }


@pytest.mark.parametrize(
    ("threshold", "flagged"), [(50, False), (20, True)], ids=["below", "at-threshold"]
)
async def test_low_score(provider: Provider, threshold: int, flagged: bool) -> None:
    provider.queue(Reply(200, fixture("opencti_observable_low.json")))

    result = await provider.source(threshold=threshold).lookup(
        indicator("intranet-sso.example.com", IndicatorType.DOMAIN)
    )

    assert result.found is True
    assert result.flagged is flagged
    assert result.confidence == 20
    assert result.tags == ()
    assert result.summary == f"score 20 (flag threshold {threshold})"


async def test_unscored_observable(provider: Provider) -> None:
    body = json.loads(fixture("opencti_observable_low.json"))
    body["data"]["stixCyberObservables"]["edges"][0]["node"]["x_opencti_score"] = None
    provider.queue(Reply(200, json.dumps(body)))

    result = await provider.source().lookup(indicator("intranet-sso.example.com"))

    assert result.found is True
    assert result.flagged is False
    assert result.confidence == 0
    assert result.summary == "no score"


async def test_labels_as_connection(provider: Provider) -> None:
    body = json.loads(fixture("opencti_observable_scored.json"))
    node = body["data"]["stixCyberObservables"]["edges"][0]["node"]
    node["objectLabel"] = {"edges": [{"node": {"value": "c2"}}]}
    provider.queue(Reply(200, json.dumps(body)))

    result = await provider.source().lookup(indicator(ADDRESS))

    assert result.tags == ("c2",)


@pytest.mark.parametrize(
    "body",
    [
        fixture("opencti_empty.json"),
        b'{"data": {"stixCyberObservables": null}}',
    ],
    ids=["no-edges", "null-connection"],
)
async def test_not_in_opencti(provider: Provider, body: bytes) -> None:
    provider.queue(Reply(200, body))

    result = await provider.source().lookup(indicator(ADDRESS))

    assert result.status is Status.OK
    assert result.found is False
    assert result.flagged is False
    assert result.summary == "not in OpenCTI"


HTML = b"<!DOCTYPE html><html><head><title>OpenCTI</title></head></html>"


@pytest.mark.parametrize(
    ("reply", "error", "message", "attempts"),
    [
        (
            Reply(200, fixture("opencti_error_auth.json")),
            AuthenticationError,
            "opencti: the API key was rejected (AUTH_REQUIRED: You must be logged in to do "
            "this.); check IOCSCOPE_OPENCTI_API_KEY",
            1,
        ),
        (
            Reply(401, fixture("opencti_error_auth.json")),
            AuthenticationError,
            "opencti: the API key was rejected (status 401: You must be logged in to do this.); "
            "check IOCSCOPE_OPENCTI_API_KEY",
            1,
        ),
        (
            Reply(400, fixture("opencti_error_filter.json")),
            BadResponseError,
            'opencti: returned a GraphQL error (GRAPHQL_VALIDATION_FAILED: Variable "$filters" '
            'of type "FilterGroup" used in position expecting type '
            '"[StixCyberObservablesFiltering]".)',
            1,
        ),
        (
            Reply(404, HTML, content_type="text/html"),
            BadResponseError,
            "opencti: unexpected response (status 404)",
            1,
        ),
        (
            Reply(429, b"", {"Retry-After": "2"}),
            RateLimitedError,
            "opencti: rate limited (status 429) after 3 attempts; retry after 2 s",
            3,
        ),
        (
            Reply(502, b""),
            BadResponseError,
            "opencti: server error (status 502) after 3 attempts",
            3,
        ),
        (
            Reply(200, HTML, content_type="text/html"),
            BadResponseError,
            "opencti: returned an HTML page instead of JSON (status 200); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, fixture("opencti_observable_scored.json")[:40]),
            BadResponseError,
            "opencti: returned a body that is not valid JSON (status 200, 40 bytes)",
            1,
        ),
        (
            Reply(200, b'{"data": null}'),
            BadResponseError,
            "opencti: returned a response in an unexpected format (no data object)",
            1,
        ),
        (
            Reply(200, b'{"data": {"stixCoreObjects": {"edges": []}}}'),
            BadResponseError,
            "opencti: returned a response in an unexpected format "
            "(stixCyberObservables: Field required)",
            1,
        ),
        (
            Reply(200, b"[]"),
            BadResponseError,
            "opencti: returned a response in an unexpected format (a JSON list, not an object)",
            1,
        ),
    ],
    ids=[
        "auth-error",
        "401",
        "old-filter-format",
        "404-html",
        "429",
        "502",
        "html",
        "truncated",
        "null-data",
        "wrong-field",
        "not-object",
    ],
)
async def test_failure(
    provider: Provider, reply: Reply, error: type[SourceError], message: str, attempts: int
) -> None:
    provider.queue(reply)

    await raises_exactly(provider.source().lookup(indicator(ADDRESS)), error, message)
    assert len(provider.requests()) == attempts


async def test_drift_tolerated(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    reset_drift_warnings()
    body = json.loads(fixture("opencti_observable_scored.json"))
    node = body["data"]["stixCyberObservables"]["edges"][0]["node"]
    node["x_opencti_score"] = "high"
    node["indicators"]["edges"][0]["node"]["x_opencti_score"] = 850
    provider.queue(Reply(200, json.dumps(body)))

    result = await provider.source().lookup(indicator(ADDRESS))

    assert result.found is True
    assert result.flagged is False
    assert result.summary.startswith("no score; ")
    assert [r.getMessage() for r in caplog.records if r.name == "iocscope.sources.opencti"] == [
        "source=opencti field=x_opencti_score has an unexpected value 'high'; it is ignored "
        "(the OpenCTI API may have changed)"
    ]


async def test_timeout(provider: Provider) -> None:
    provider.queue(Reply(200, fixture("opencti_empty.json"), delay=1.0))

    with pytest.raises(SourceTimeoutError) as info:
        await provider.source(timeout=0.2).lookup(indicator(ADDRESS))

    assert str(info.value) == (
        "opencti: no response within 0.2 s after 1 attempt; "
        "check the network or raise sources.opencti.timeout"
    )


async def test_key_never_logged(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider.queue(
        Reply(200, fixture("opencti_observable_scored.json")),
        Reply(503, b"{}"),
        Reply(200, fixture("opencti_empty.json")),
        Reply(401, b'{"message": "token ' + KEY.encode() + b' expired"}'),
    )
    source = provider.source()
    messages = []

    for _ in range(3):
        try:
            await source.lookup(indicator(ADDRESS))
        except SourceError as exc:
            messages.append(str(exc))

    assert messages == [
        "opencti: the API key was rejected (status 401: token *** expired); "
        "check IOCSCOPE_OPENCTI_API_KEY"
    ]
    assert {"httpx", "httpcore.http11", "iocscope.sources.http"} <= {r.name for r in caplog.records}
    assert_key_not_logged(KEY, caplog, source)
    for received in provider.requests():
        assert KEY.encode() not in received.body


async def test_create_without_base_url(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)

    with pytest.raises(SourceUnavailableError) as info:
        create(deps(Settings(), client))

    assert str(info.value) == (
        "OpenCTI needs the address of your platform: set sources.opencti.base_url "
        "(for example https://opencti.example.org)"
    )


async def test_create_without_key(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACME_CTI_TOKEN", raising=False)
    settings = settings_from_mapping(
        {
            "sources": {
                "opencti": {"base_url": "https://cti.example", "api_key_env": "ACME_CTI_TOKEN"}
            }
        }
    )

    with pytest.raises(SourceUnavailableError) as info:
        create(deps(settings, client))

    assert str(info.value) == (
        "OpenCTI needs an API key (the token of an OpenCTI user): set ACME_CTI_TOKEN "
        "or sources.opencti.api_key_file"
    )


async def test_create_from_env(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    settings = settings_from_mapping({"sources": {"opencti": {"base_url": provider.base_url}}})
    provider.queue(Reply(200, fixture("opencti_observable_scored.json")))

    source = create(deps(settings, provider.client))
    result = await source.lookup(indicator(ADDRESS))

    assert source.meta is META
    assert result.flagged is True
    [received] = provider.requests()
    assert received.headers["authorization"] == f"Bearer {KEY}"


def test_meta() -> None:
    assert META.name == "opencti"
    assert META.kind is SourceKind.API
    assert META.types == frozenset(IndicatorType)
    assert META.needs_key is True
    assert META.rate_per_minute is None
