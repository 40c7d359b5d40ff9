"""The ThreatFox source against a real replay server on 127.0.0.1."""

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
from iocscope.sources.abusech import AuthKey
from iocscope.sources.contract import SourceKind, Status
from iocscope.sources.drift import reset_drift_warnings
from iocscope.sources.threatfox import API_PATH, META, ThreatFoxSource, create
from tests.sources.support import (
    RecordedSleep,
    assert_key_not_logged,
    deps,
    fixture,
    raises_exactly,
)
from tests.support.corpus import CORPUS, corpus_path
from tests.support.replay import Received, ReplayServer, Reply

KEY = "threatfox-test-key-e81d44a0c3"
KEY_ENV = "IOCSCOPE_THREATFOX_API_KEY"
SHARED_ENV = "IOCSCOPE_ABUSECH_API_KEY"
RECORDED = sorted(path.name for path in (CORPUS / "api-responses" / "threatfox").glob("*.json"))
PREFIXES = itertools.count()
ADDRESS = "203.0.113.77"
SHA256 = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9"
NO_RESULT = b'{"query_status": "no_result", "data": "Your search did not yield any results"}'


def indicator(kind: IndicatorType, value: str) -> Indicator:
    return Indicator(type=kind, value=value, original=value, display=value)


@dataclass(frozen=True)
class Provider:
    """A fake ThreatFox under a path prefix of its own on the shared replay server."""

    server: ReplayServer
    prefix: str
    client: httpx.AsyncClient
    sleep: RecordedSleep

    @property
    def base_url(self) -> str:
        return self.server.base_url + self.prefix

    def queue(self, *replies: Reply) -> None:
        self.server.queue(self.prefix + API_PATH, *replies)

    def requests(self) -> list[Received]:
        return self.server.requests_to(self.prefix + API_PATH)

    def source(self, **options: Any) -> ThreatFoxSource:
        options.setdefault("base_url", self.base_url)
        key = AuthKey(SecretStr(KEY), f"check {KEY_ENV}")
        return ThreatFoxSource(self.client, key, sleep=self.sleep, **options)


@pytest.fixture
def provider(server: ReplayServer, client: httpx.AsyncClient) -> Provider:
    return Provider(server, f"/threatfox{next(PREFIXES)}", client, RecordedSleep())


async def test_address_with_ports(provider: Provider) -> None:
    provider.queue(Reply(200, fixture("threatfox_search_ioc.json")))

    result = await provider.source().lookup(indicator(IndicatorType.IPV4, ADDRESS))

    assert result.source == "threatfox"
    assert result.status is Status.OK
    assert result.found is True
    assert result.flagged is True
    assert result.benign is False
    assert result.confidence == 100
    assert result.categories == ("botnet_cc",)
    assert result.tags == ("Cobalt Strike", "Sliver", "c2", "CobaltStrike")
    assert result.first_seen == datetime(2024, 3, 2, 18, 40, 11, tzinfo=UTC)
    assert result.last_seen == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert result.reference == "https://threatfox.abuse.ch/ioc/1402117/"
    assert result.summary == (
        "Cobalt Strike botnet_cc (confidence 100); 2 IOC records; first seen 2024-03-02"
    )
    assert result.context == {
        "records": 2,
        "malware": ["Cobalt Strike", "Sliver"],
        "ioc_types": ["ip:port"],
        "malpedia": "https://malpedia.caad.fkie.fraunhofer.de/details/win.cobalt_strike",
        "external_references": ["https://example.org/report/beacon-hunt"],
    }
    assert result.raw == json.loads(fixture("threatfox_search_ioc.json"))


@pytest.mark.parametrize(
    ("kind", "value", "body"),
    [
        (IndicatorType.IPV4, ADDRESS, {"query": "search_ioc", "search_term": ADDRESS}),
        (
            IndicatorType.DOMAIN,
            "update-check.example.com",
            {"query": "search_ioc", "search_term": "update-check.example.com"},
        ),
        (
            IndicatorType.URL,
            "http://203.0.113.9/gate.php",
            {"query": "search_ioc", "search_term": "http://203.0.113.9/gate.php"},
        ),
        (IndicatorType.SHA256, SHA256, {"query": "search_hash", "hash": SHA256}),
        (IndicatorType.MD5, "5e6f708192a3b4c5d6e7f8091a2b3c4d", None),
    ],
    ids=["ipv4", "domain", "url", "sha256", "md5"],
)
async def test_request_shape(
    provider: Provider, kind: IndicatorType, value: str, body: dict[str, str] | None
) -> None:
    provider.queue(Reply(200, NO_RESULT))

    await provider.source().lookup(indicator(kind, value))

    [received] = provider.requests()
    assert received.method == "POST"
    assert received.headers["auth-key"] == KEY
    assert received.headers["content-type"] == "application/json"
    assert received.query == {}
    assert json.loads(received.body) == (body or {"query": "search_hash", "hash": value})


async def test_hash_linked_records(provider: Provider) -> None:
    provider.queue(Reply(200, fixture("threatfox_search_hash.json")))

    result = await provider.source().lookup(indicator(IndicatorType.SHA256, SHA256))

    assert result.flagged is True
    assert result.confidence == 80
    assert result.categories == ("botnet_cc",)
    assert result.tags == ("Lumma Stealer", "LummaStealer")
    assert result.first_seen == datetime(2024, 5, 20, 14, 2, 33, tzinfo=UTC)
    assert result.last_seen is None
    assert result.reference == "https://threatfox.abuse.ch/ioc/1398870/"
    assert result.summary == (
        "Lumma Stealer botnet_cc (confidence 80); 1 linked IOC record; first seen 2024-05-20"
    )


@pytest.mark.parametrize(
    ("kind", "value", "found", "ignored"),
    [
        (IndicatorType.IPV4, "203.0.113.7", True, 0),
        (IndicatorType.IPV4, "203.0.113.70", False, 3),
        (IndicatorType.DOMAIN, "113.77", False, 3),
        (IndicatorType.URL, "http://203.0.113.77:8443/", False, 3),
    ],
    ids=["port-80", "longer-address", "substring", "url-with-address"],
)
async def test_partial_matches_ignored(
    provider: Provider, kind: IndicatorType, value: str, found: bool, ignored: int
) -> None:
    provider.queue(Reply(200, fixture("threatfox_search_ioc.json")))

    result = await provider.source().lookup(indicator(kind, value))

    assert result.found is found
    assert result.flagged is found
    assert result.context.get("partial_matches_ignored", 0) == ignored


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (IndicatorType.IPV6, "2001:db8::77"),
        (IndicatorType.IPV6, "2001:db8::78"),
    ],
    ids=["bracketed-port", "other-address"],
)
async def test_ipv6_with_port(provider: Provider, kind: IndicatorType, value: str) -> None:
    record = json.loads(fixture("threatfox_search_ioc.json"))["data"][0]
    body = {"query_status": "ok", "data": [record | {"ioc": "[2001:db8::77]:443"}]}
    provider.queue(Reply(200, json.dumps(body)))

    result = await provider.source().lookup(indicator(kind, value))

    assert result.found is (value == "2001:db8::77")


@pytest.mark.parametrize(
    "body",
    [
        NO_RESULT,
        b'{"query_status": "no_results"}',
        b'{"query_status": "hash_not_found"}',
        b'{"query_status": "ok", "data": []}',
    ],
    ids=["no_result", "no_results", "hash_not_found", "empty-data"],
)
async def test_not_listed(provider: Provider, body: bytes) -> None:
    provider.queue(Reply(200, body))

    result = await provider.source().lookup(indicator(IndicatorType.IPV4, ADDRESS))

    assert result.status is Status.OK
    assert result.found is False
    assert result.flagged is False
    assert result.summary == "not listed by ThreatFox"
    assert result.context == {}


@pytest.mark.parametrize(
    ("query_status", "error", "message"),
    [
        (
            "illegal_search_term",
            BadResponseError,
            f"threatfox: rejected {ADDRESS} as invalid input (query_status illegal_search_term)",
        ),
        (
            "illegal_hash",
            BadResponseError,
            f"threatfox: rejected {ADDRESS} as invalid input (query_status illegal_hash)",
        ),
        (
            "no_search_term",
            BadResponseError,
            f"threatfox: rejected {ADDRESS} as invalid input (query_status no_search_term)",
        ),
        (
            "unknown_auth_key",
            AuthenticationError,
            "threatfox: the API key was rejected (query_status unknown_auth_key); "
            "check IOCSCOPE_THREATFOX_API_KEY",
        ),
        ("rate_limited", RateLimitedError, "threatfox: rate limited (query_status rate_limited)"),
        (
            "unknown_query",
            BadResponseError,
            "threatfox: returned an unknown query_status 'unknown_query'; the API may have changed",
        ),
    ],
)
async def test_query_status(
    provider: Provider, query_status: str, error: type[SourceError], message: str
) -> None:
    provider.queue(Reply(200, json.dumps({"query_status": query_status})))

    await raises_exactly(
        provider.source().lookup(indicator(IndicatorType.IPV4, ADDRESS)), error, message
    )


HTML = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"


@pytest.mark.parametrize(
    ("reply", "error", "message", "attempts"),
    [
        (
            Reply(401, b'{"query_status": "unknown_auth_key"}'),
            AuthenticationError,
            "threatfox: the API key was rejected (status 401); check IOCSCOPE_THREATFOX_API_KEY",
            1,
        ),
        (
            Reply(429, b"", {"Retry-After": "2"}),
            RateLimitedError,
            "threatfox: rate limited (status 429) after 3 attempts; retry after 2 s",
            3,
        ),
        (
            Reply(500, b""),
            BadResponseError,
            "threatfox: server error (status 500) after 3 attempts",
            3,
        ),
        (
            Reply(404, b"<html><body>Gone</body></html>", content_type="text/html"),
            BadResponseError,
            "threatfox: unexpected response (status 404)",
            1,
        ),
        (
            Reply(200, HTML, content_type="text/html"),
            BadResponseError,
            "threatfox: returned an HTML page instead of JSON (status 200); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, fixture("threatfox_search_ioc.json")[:40]),
            BadResponseError,
            "threatfox: returned a body that is not valid JSON (status 200, 40 bytes)",
            1,
        ),
        (
            Reply(200, b'{"query_status": "ok", "data": "no data"}'),
            BadResponseError,
            "threatfox: returned a response in an unexpected format "
            "(data: Input should be a valid tuple)",
            1,
        ),
        (
            Reply(200, b'{"query_status": "ok", "data": [{"id": "1", "confidence_level": 101}]}'),
            BadResponseError,
            "threatfox: returned a response in an unexpected format (data.0.ioc: Field "
            "required; data.0.confidence_level: Input should be less than or equal to 100)",
            1,
        ),
    ],
    ids=["401", "429", "500", "404-html", "html", "truncated", "data-string", "bad-record"],
)
async def test_failure(
    provider: Provider, reply: Reply, error: type[SourceError], message: str, attempts: int
) -> None:
    provider.queue(reply)

    await raises_exactly(
        provider.source().lookup(indicator(IndicatorType.IPV4, ADDRESS)), error, message
    )
    assert len(provider.requests()) == attempts


async def test_drift_tolerated(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    reset_drift_warnings()
    record = json.loads(fixture("threatfox_search_ioc.json"))["data"][0]
    drifted = record | {"id": 1402117, "first_seen": 1712740500, "tags": {"c2": True}}
    provider.queue(Reply(200, json.dumps({"query_status": "ok", "data": [drifted]})))

    result = await provider.source().lookup(indicator(IndicatorType.IPV4, ADDRESS))

    assert result.reference == "https://threatfox.abuse.ch/ioc/1402117/"
    assert result.first_seen is None
    assert result.tags == ("Cobalt Strike",)
    assert [r.getMessage() for r in caplog.records if r.name == "iocscope.sources.abusech"] == [
        "source=threatfox field=first_seen has an unexpected value 1712740500; it is ignored "
        "(the provider's API may have changed)",
        "source=threatfox field=tags has an unexpected value {'c2': True}; it is ignored "
        "(the provider's API may have changed)",
    ]


async def test_zero_confidence_stays_stated(provider: Provider) -> None:
    record = json.loads(fixture("threatfox_search_ioc.json"))["data"][0]
    body = {"query_status": "ok", "data": [record | {"confidence_level": 0}]}
    provider.queue(Reply(200, json.dumps(body)))

    result = await provider.source().lookup(indicator(IndicatorType.IPV4, ADDRESS))

    assert result.confidence == 1


async def test_timeout(provider: Provider) -> None:
    provider.queue(Reply(200, NO_RESULT, delay=1.0))

    with pytest.raises(SourceTimeoutError) as info:
        await provider.source(timeout=0.2).lookup(indicator(IndicatorType.IPV4, ADDRESS))

    assert str(info.value) == (
        "threatfox: no response within 0.2 s after 1 attempt; "
        "check the network or raise sources.threatfox.timeout"
    )


async def test_key_never_logged(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider.queue(
        Reply(200, fixture("threatfox_search_ioc.json")),
        Reply(429, b"{}", {"Retry-After": "1"}),
        Reply(200, NO_RESULT),
        Reply(403, b'{"message": "key ' + KEY.encode() + b' unknown"}'),
    )
    source = provider.source()
    messages = []

    for _ in range(3):
        try:
            await source.lookup(indicator(IndicatorType.IPV4, ADDRESS))
        except SourceError as exc:
            messages.append(str(exc))

    assert messages == [
        "threatfox: the API key was rejected (status 403: key *** unknown); "
        "check IOCSCOPE_THREATFOX_API_KEY"
    ]
    assert {"httpx", "httpcore.http11", "iocscope.sources.http"} <= {r.name for r in caplog.records}
    assert_key_not_logged(KEY, caplog, source)
    for received in provider.requests():
        assert KEY.encode() not in received.body


async def test_create_without_key(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(SHARED_ENV, raising=False)

    with pytest.raises(SourceUnavailableError) as info:
        create(deps(Settings(), client))

    assert str(info.value) == (
        "ThreatFox needs an abuse.ch Auth-Key: set IOCSCOPE_THREATFOX_API_KEY or "
        "IOCSCOPE_ABUSECH_API_KEY, or sources.threatfox.api_key_file "
        "(a free key comes from https://auth.abuse.ch/)"
    )


async def test_create_with_shared_key(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(SHARED_ENV, KEY)
    settings = settings_from_mapping({"sources": {"threatfox": {"base_url": provider.base_url}}})
    provider.queue(Reply(200, fixture("threatfox_search_ioc.json")))

    source = create(deps(settings, provider.client))
    result = await source.lookup(indicator(IndicatorType.IPV4, ADDRESS))

    assert source.meta is META
    assert result.flagged is True
    [received] = provider.requests()
    assert received.headers["auth-key"] == KEY


def test_meta() -> None:
    assert META.name == "threatfox"
    assert META.kind is SourceKind.API
    assert IndicatorType.SHA1 not in META.types
    assert META.needs_key is True
    assert META.rate_per_minute == 60


@pytest.mark.corpus
@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_answer(provider: Provider, name: str) -> None:
    payload = json.loads(corpus_path("api-responses", "threatfox", name).read_text("utf-8"))
    records = payload["data"] if payload["query_status"] == "ok" else []
    provider.queue(Reply(200, json.dumps(payload)))
    source = provider.source()

    if not records:
        result = await source.lookup(indicator(IndicatorType.DOMAIN, "absent.example.com"))
        assert result.found is False
    for record in records:
        result = await source.lookup(indicator(IndicatorType.DOMAIN, record["ioc"]))
        assert result.flagged is True
        assert result.confidence == record["confidence_level"]
        assert result.categories == (record["threat_type"],)
        assert result.reference == f"https://threatfox.abuse.ch/ioc/{record['id']}/"
        assert result.tags[0] == record["malware_printable"]
        assert result.context["records"] == 1
