"""The MISP source against a real replay server on 127.0.0.1."""

from __future__ import annotations

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
    RateLimitedError,
    SourceError,
    SourceTimeoutError,
    SourceUnavailableError,
)
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import SourceKind, Status
from iocscope.sources.drift import reset_drift_warnings
from iocscope.sources.misp import META, SEARCH_PATH, MispSource, create
from tests.sources.support import (
    RecordedSleep,
    assert_key_not_logged,
    deps,
    fixture,
    raises_exactly,
)
from tests.support.replay import Received, ReplayServer, Reply

KEY = "misp-test-key-4f1e9a7c3b2d8e6f0a5c"
KEY_ENV = "IOCSCOPE_MISP_API_KEY"
PREFIXES = itertools.count()
ADDRESS = "203.0.113.77"
EMPTY = b'{"response": {"Attribute": []}}'


def indicator(value: str, kind: IndicatorType = IndicatorType.IPV4) -> Indicator:
    return Indicator(type=kind, value=value, original=value, display=value)


@dataclass(frozen=True)
class Provider:
    """A fake MISP instance under a path prefix of its own on the shared replay server."""

    server: ReplayServer
    prefix: str
    client: httpx.AsyncClient
    sleep: RecordedSleep

    @property
    def base_url(self) -> str:
        return self.server.base_url + self.prefix

    def queue(self, *replies: Reply) -> None:
        self.server.queue(self.prefix + SEARCH_PATH, *replies)

    def requests(self) -> list[Received]:
        return self.server.requests_to(self.prefix + SEARCH_PATH)

    def source(self, **options: Any) -> MispSource:
        options.setdefault("base_url", self.base_url)
        return MispSource(self.client, SecretStr(KEY), sleep=self.sleep, **options)


@pytest.fixture
def provider(server: ReplayServer, client: httpx.AsyncClient) -> Provider:
    return Provider(server, f"/misp{next(PREFIXES)}", client, RecordedSleep())


async def test_ids_attribute(provider: Provider) -> None:
    provider.queue(Reply(200, fixture("misp_attributes_ids.json")))

    result = await provider.source().lookup(indicator(ADDRESS))

    assert result.source == "misp"
    assert result.status is Status.OK
    assert result.found is True
    assert result.flagged is True
    assert result.benign is False
    assert result.confidence == 0
    assert result.categories == ("Network activity",)
    assert result.tags == ("tlp:amber", 'misp-galaxy:tool="Cobalt Strike"', "tlp:green")
    assert result.first_seen == datetime(2024, 4, 28, 9, 0, tzinfo=UTC)
    assert result.last_seen == datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    assert result.reference == f"{provider.base_url}/events/view/1432"
    assert result.summary == (
        'in 2 events ("Cobalt Strike beacons, April 2024", '
        '"Scanning activity against VPN gateways"); 1 of 2 attributes marked for IDS'
    )
    assert result.context == {
        "events": [
            {"id": "1432", "info": "Cobalt Strike beacons, April 2024"},
            {"id": "1490", "info": "Scanning activity against VPN gateways"},
        ],
        "attributes": 2,
        "for_ids": 1,
        "types": ["ip-dst", "ip-src"],
        "warninglists": [],
    }
    assert result.raw == json.loads(fixture("misp_attributes_ids.json"))


async def test_request_shape(provider: Provider) -> None:
    provider.queue(Reply(200, EMPTY))

    await provider.source().lookup(indicator("bad.example.com", IndicatorType.DOMAIN))

    [received] = provider.requests()
    assert received.method == "POST"
    assert received.headers["authorization"] == KEY
    assert received.headers["accept"] == "application/json"
    assert received.headers["content-type"] == "application/json"
    assert received.query == {}
    assert json.loads(received.body) == {
        "returnFormat": "json",
        "value": "bad.example.com",
        "includeWarninglistHits": True,
        "includeEventTags": True,
        "limit": 100,
        "page": 1,
    }


async def test_warninglist_hit_is_benign(provider: Provider) -> None:
    provider.queue(Reply(200, fixture("misp_attributes_warninglist.json")))

    result = await provider.source().lookup(indicator("cdn.example.com", IndicatorType.DOMAIN))

    assert result.flagged is True
    assert result.benign is True
    assert result.tags == ()
    assert result.summary == (
        'in 1 event ("Phishing kit delivery"); 1 of 1 attributes marked for IDS; '
        "on warning list List of known domains used by CDNs"
    )
    assert result.context["warninglists"] == ["List of known domains used by CDNs"]


async def test_context_only_attribute(provider: Provider) -> None:
    body = json.loads(fixture("misp_attributes_ids.json"))
    body["response"]["Attribute"] = body["response"]["Attribute"][1:]
    provider.queue(Reply(200, json.dumps(body)))

    result = await provider.source().lookup(indicator(ADDRESS))

    assert result.found is True
    assert result.flagged is False
    assert result.reference == f"{provider.base_url}/events/view/1490"
    assert result.first_seen == datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    assert result.summary == (
        'in 1 event ("Scanning activity against VPN gateways"); 0 of 1 attributes marked for IDS'
    )


async def test_many_attributes_noted(provider: Provider) -> None:
    attribute = json.loads(fixture("misp_attributes_ids.json"))["response"]["Attribute"][0]
    body = {"response": {"Attribute": [attribute] * 100}}
    provider.queue(Reply(200, json.dumps(body)))

    result = await provider.source().lookup(indicator(ADDRESS))

    assert result.summary.endswith("; only the first 100 attributes were read")


@pytest.mark.parametrize("body", [EMPTY, b'{"response": []}'], ids=["empty-list", "empty-response"])
async def test_not_in_misp(provider: Provider, body: bytes) -> None:
    provider.queue(Reply(200, body))

    result = await provider.source().lookup(indicator(ADDRESS))

    assert result.status is Status.OK
    assert result.found is False
    assert result.flagged is False
    assert result.summary == "not in MISP"


LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Users - MISP</title></head></html>"


@pytest.mark.parametrize(
    ("reply", "error", "message", "attempts"),
    [
        (
            Reply(403, fixture("misp_error_403.json")),
            AuthenticationError,
            "misp: the API key was rejected (status 403: Authentication failed. Please make "
            "sure you pass the API key of an API enabled user along in the Authorization "
            "header.); check IOCSCOPE_MISP_API_KEY",
            1,
        ),
        (
            Reply(401, b""),
            AuthenticationError,
            "misp: the API key was rejected (status 401); check IOCSCOPE_MISP_API_KEY",
            1,
        ),
        (
            Reply(302, b"", {"Location": "/users/login"}, content_type="text/html"),
            BadResponseError,
            "misp: unexpected response (status 302)",
            1,
        ),
        (
            Reply(404, b'{"name": "Not Found", "message": "Not Found", "url": "/x"}'),
            BadResponseError,
            "misp: unexpected response (status 404: Not Found)",
            1,
        ),
        (
            Reply(429, b"", {"Retry-After": "2"}),
            RateLimitedError,
            "misp: rate limited (status 429) after 3 attempts; retry after 2 s",
            3,
        ),
        (
            Reply(500, b'{"name": "An Internal Error Has Occurred.", "message": "x"}'),
            BadResponseError,
            "misp: server error (status 500: x) after 3 attempts",
            3,
        ),
        (
            Reply(200, LOGIN_PAGE, content_type="text/html"),
            BadResponseError,
            "misp: returned an HTML page instead of JSON (status 200); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, fixture("misp_attributes_ids.json")[:40]),
            BadResponseError,
            "misp: returned a body that is not valid JSON (status 200, 40 bytes)",
            1,
        ),
        (
            Reply(200, b'{"Attribute": []}'),
            BadResponseError,
            "misp: returned a response in an unexpected format (no response object)",
            1,
        ),
        (
            Reply(200, b'{"response": {"Attribute": [{"id": "1", "type": "ip-dst"}]}}'),
            BadResponseError,
            "misp: returned a response in an unexpected format "
            "(Attribute.0.event_id: Field required; Attribute.0.value: Field required)",
            1,
        ),
    ],
    ids=[
        "403",
        "401",
        "302-login",
        "404",
        "429",
        "500",
        "html",
        "truncated",
        "no-response",
        "bad-attribute",
    ],
)
async def test_failure(
    provider: Provider, reply: Reply, error: type[SourceError], message: str, attempts: int
) -> None:
    provider.queue(reply)

    await raises_exactly(provider.source().lookup(indicator(ADDRESS)), error, message)
    assert len(provider.requests()) == attempts


async def test_timeout(provider: Provider) -> None:
    provider.queue(Reply(200, EMPTY, delay=1.0))

    with pytest.raises(SourceTimeoutError) as info:
        await provider.source(timeout=0.2).lookup(indicator(ADDRESS))

    assert str(info.value) == (
        "misp: no response within 0.2 s after 1 attempt; "
        "check the network or raise sources.misp.timeout"
    )


async def test_drift_tolerated(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    reset_drift_warnings()
    attribute = json.loads(fixture("misp_attributes_ids.json"))["response"]["Attribute"][0]
    drifted = attribute | {"id": 88121, "first_seen": "last spring", "timestamp": "soon"}
    provider.queue(Reply(200, json.dumps({"response": {"Attribute": [drifted, drifted]}})))

    result = await provider.source().lookup(indicator(ADDRESS))

    assert result.flagged is True
    assert result.first_seen is None
    assert result.last_seen is None
    assert [r.getMessage() for r in caplog.records if r.name == "iocscope.sources.misp"] == [
        "source=misp field=timestamp has an unexpected value 'soon'; it is ignored "
        "(the MISP API may have changed)",
        "source=misp field=first_seen has an unexpected value 'last spring'; it is ignored "
        "(the MISP API may have changed)",
    ]


async def test_key_never_logged(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider.queue(
        Reply(200, fixture("misp_attributes_ids.json")),
        Reply(503, b"{}"),
        Reply(200, EMPTY),
        Reply(403, b'{"message": "Key ' + KEY.encode() + b' is disabled"}'),
    )
    source = provider.source()
    messages = []

    for _ in range(3):
        try:
            await source.lookup(indicator(ADDRESS))
        except SourceError as exc:
            messages.append(str(exc))

    assert messages == [
        "misp: the API key was rejected (status 403: Key *** is disabled); "
        "check IOCSCOPE_MISP_API_KEY"
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
        "MISP needs the address of your instance: set sources.misp.base_url "
        "(for example https://misp.example.org)"
    )


async def test_create_without_key(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    settings = settings_from_mapping({"sources": {"misp": {"base_url": "https://misp.example"}}})

    with pytest.raises(SourceUnavailableError) as info:
        create(deps(settings, client))

    assert str(info.value) == (
        "MISP needs an API key: set IOCSCOPE_MISP_API_KEY or sources.misp.api_key_file"
    )


async def test_create_from_key_file(
    provider: Provider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    key_file = tmp_path / "misp.key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    source_settings = {"base_url": provider.base_url + "/", "api_key_file": str(key_file)}
    settings = settings_from_mapping({"sources": {"misp": source_settings}})
    provider.queue(Reply(403, fixture("misp_error_403.json")))

    source = create(deps(settings, provider.client))
    with pytest.raises(AuthenticationError) as info:
        await source.lookup(indicator(ADDRESS))

    assert source.meta is META
    assert str(info.value).endswith(f"; check the key in {key_file}")
    [received] = provider.requests()
    assert received.headers["authorization"] == KEY
    # The replay server speaks plain HTTP, so creating the source warned about it.
    assert [r.getMessage() for r in caplog.records if r.name == "iocscope.sources.misp"] == [
        "source=misp base_url uses http: the API key travels unencrypted"
    ]


def test_meta() -> None:
    assert META.name == "misp"
    assert META.kind is SourceKind.API
    assert META.types == frozenset(IndicatorType)
    assert META.needs_key is True
    assert META.rate_per_minute is None
    assert META.daily_budget is None
