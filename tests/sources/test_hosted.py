"""The hosted enrichment sources against a real replay server on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
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
from iocscope.sources.contract import Source, SourceKind, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.drift import reset_drift_warnings
from iocscope.sources.hosted import (
    ENRICH_META,
    ENRICH_PATH,
    ENTRIES,
    LOOKUP_META,
    LOOKUP_PATH,
    HostedEnrichSource,
    HostedLookupSource,
    create_enrich,
    create_lookup,
)
from tests.sources.support import (
    RecordedSleep,
    assert_key_not_logged,
    deps,
    fixture,
    raises_exactly,
)
from tests.support.replay import Received, ReplayServer, Reply

KEY = "sk-dfir-test-key-93b1c0d7e5f2"
PREFIXES = itertools.count()
ADDRESS = "203.0.113.42"


def indicator(value: str, kind: IndicatorType = IndicatorType.IPV4) -> Indicator:
    return Indicator(type=kind, value=value, original=value, display=value)


def lookup_body(verdict: Any, score: Any) -> str:
    result = {"indicator": {"type": "ip", "value": ADDRESS}, "verdict": verdict, "score": score}
    return json.dumps({"data": {"results": [result]}, "meta": {}})


@dataclass(frozen=True)
class Provider:
    """A fake hosted service under a path prefix of its own on the shared replay server."""

    server: ReplayServer
    prefix: str
    client: httpx.AsyncClient
    sleep: RecordedSleep

    @property
    def base_url(self) -> str:
        return self.server.base_url + self.prefix

    def queue(self, path: str, *replies: Reply) -> None:
        self.server.queue(self.prefix + path, *replies)

    def requests(self, path: str) -> list[Received]:
        return self.server.requests_to(self.prefix + path)

    def lookup_source(self, **options: Any) -> HostedLookupSource:
        options.setdefault("base_url", self.base_url)
        return HostedLookupSource(self.client, SecretStr(KEY), sleep=self.sleep, **options)

    def enrich_source(self, **options: Any) -> HostedEnrichSource:
        options.setdefault("base_url", self.base_url)
        return HostedEnrichSource(self.client, SecretStr(KEY), sleep=self.sleep, **options)


@pytest.fixture
def provider(server: ReplayServer, client: httpx.AsyncClient) -> Provider:
    return Provider(server, f"/hosted{next(PREFIXES)}", client, RecordedSleep())


@pytest.fixture
def fresh_drift() -> None:
    # Drift warnings are logged once per process; each test starts from none.
    reset_drift_warnings()


async def test_lookup_malicious(provider: Provider) -> None:
    provider.queue(LOOKUP_PATH, Reply(200, fixture("hosted_lookup_malicious.json")))

    result = await provider.lookup_source().lookup(indicator(ADDRESS))

    assert result.source == "hosted_lookup"
    assert result.status is Status.OK
    assert result.found is True
    assert result.flagged is True
    assert result.benign is False
    assert result.confidence == 85
    assert result.reference is None
    assert result.summary == (
        "malicious, score 85; flagged by 2 of 3 sources (abuseipdb, virustotal)"
    )
    assert result.context == {
        "verdict": "malicious",
        "score": 85,
        "providers": {"virustotal": "malicious", "abuseipdb": "suspicious", "greynoise": "unknown"},
        "request_id": "req_0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
        "credits_remaining": 41,
    }
    assert result.raw == json.loads(fixture("hosted_lookup_malicious.json"))


@pytest.mark.parametrize(
    ("kind", "value", "name"),
    [
        (IndicatorType.IPV4, ADDRESS, "ip"),
        (IndicatorType.DOMAIN, "bad.example.com", "domain"),
        (IndicatorType.URL, "https://bad.example.com/a", "url"),
        (IndicatorType.MD5, "5e6f708192a3b4c5d6e7f8091a2b3c4d", "hash"),
        (IndicatorType.SHA1, "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d", "hash"),
        (IndicatorType.SHA256, "ab" * 32, "hash"),
        (IndicatorType.EMAIL, "billing@bad.example.com", "email"),
    ],
    ids=["ipv4", "domain", "url", "md5", "sha1", "sha256", "email"],
)
async def test_lookup_request_shape(
    provider: Provider, kind: IndicatorType, value: str, name: str
) -> None:
    provider.queue(LOOKUP_PATH, Reply(200, lookup_body("unknown", None)))

    await provider.lookup_source().lookup(indicator(value, kind))

    [received] = provider.requests(LOOKUP_PATH)
    assert received.method == "POST"
    assert received.headers["authorization"] == f"Bearer {KEY}"
    assert received.headers["content-type"] == "application/json"
    assert received.query == {}
    assert json.loads(received.body) == {"indicators": [{"type": name, "value": value}]}


@pytest.mark.parametrize("kind", [IndicatorType.IPV6, IndicatorType.SHA512])
async def test_lookup_unsupported_type(provider: Provider, kind: IndicatorType) -> None:
    with pytest.raises(ValueError, match="hosted_lookup cannot look up indicators of type"):
        await provider.lookup_source().lookup(indicator("x", kind))

    assert kind not in LOOKUP_META.types
    assert provider.requests(LOOKUP_PATH) == []


async def test_lookup_picks_its_result(provider: Provider) -> None:
    provider.queue(LOOKUP_PATH, Reply(200, fixture("hosted_lookup_list_shape.json")))

    result = await provider.lookup_source().lookup(
        indicator("login-portal.example.com", IndicatorType.DOMAIN)
    )

    assert result.flagged is True
    assert result.confidence == 45
    assert result.summary == "suspicious, score 45; flagged by 1 of 2 sources (urlscan)"
    assert result.context["providers"] == {"urlscan": "suspicious", "otx": "clean"}
    assert result.context["request_id"] == "req_5a4b3c2d"


async def test_lookup_without_its_result(provider: Provider) -> None:
    provider.queue(LOOKUP_PATH, Reply(200, fixture("hosted_lookup_list_shape.json")))

    with pytest.raises(BadResponseError) as info:
        await provider.lookup_source().lookup(indicator("absent.example.org"))

    assert str(info.value) == "hosted_lookup: returned no result for absent.example.org"


@dataclass(frozen=True)
class Judged:
    """The normalised fields a verdict and score must produce."""

    found: bool
    flagged: bool
    benign: bool
    confidence: int


@pytest.mark.parametrize(
    ("verdict", "score", "expected"),
    [
        ("malicious", 85, Judged(found=True, flagged=True, benign=False, confidence=85)),
        ("Suspicious", 45, Judged(found=True, flagged=True, benign=False, confidence=45)),
        ("malicious", None, Judged(found=True, flagged=True, benign=False, confidence=1)),
        ("malicious", 0, Judged(found=True, flagged=True, benign=False, confidence=1)),
        ("benign", 0, Judged(found=True, flagged=False, benign=True, confidence=0)),
        ("clean", 10, Judged(found=True, flagged=False, benign=False, confidence=0)),
        ("harmless", None, Judged(found=True, flagged=False, benign=False, confidence=0)),
        ("unknown", 0, Judged(found=False, flagged=False, benign=False, confidence=0)),
        ("unknown", 92, Judged(found=False, flagged=False, benign=False, confidence=0)),
    ],
)
async def test_verdict_mapping(
    provider: Provider, verdict: str, score: int | None, expected: Judged
) -> None:
    provider.queue(LOOKUP_PATH, Reply(200, lookup_body(verdict, score)))
    enrich = {"verdict": verdict, "risk_score": score, "sources_queried": 4, "sources_flagged": 1}
    provider.queue(ENRICH_PATH, Reply(200, json.dumps(enrich)))

    for source in (provider.lookup_source(), provider.enrich_source()):
        result = await source.lookup(indicator(ADDRESS))
        assert result.found is expected.found
        assert result.flagged is expected.flagged
        assert result.benign is expected.benign
        assert result.confidence == expected.confidence


@pytest.mark.usefixtures("fresh_drift")
@pytest.mark.parametrize(
    ("answer", "flagged_found", "drift"),
    [
        (("likely_malicious", 75), (True, True), ["verdict 'likely_malicious'"]),
        (("likely_malicious", 35), (True, True), ["verdict 'likely_malicious'"]),
        (("likely_malicious", 10), (False, True), ["verdict 'likely_malicious'"]),
        (("likely_malicious", None), (False, False), ["verdict 'likely_malicious'"]),
        (("malicious", 850), (True, True), ["score 850"]),
        (("malicious", "85.0"), (True, True), []),
        (("suspicious", "high"), (True, True), ["score 'high'"]),
    ],
)
async def test_lookup_drift(
    provider: Provider,
    caplog: pytest.LogCaptureFixture,
    answer: tuple[str, Any],
    flagged_found: tuple[bool, bool],
    drift: list[str],
) -> None:
    provider.queue(LOOKUP_PATH, Reply(200, lookup_body(*answer)))
    source = provider.lookup_source()

    first = await source.lookup(indicator(ADDRESS))
    second = await source.lookup(indicator(ADDRESS))

    assert first == second
    assert (first.flagged, first.found) == flagged_found
    assert [r.getMessage() for r in caplog.records if r.name == "iocscope.sources.hosted"] == [
        f"source=hosted_lookup field={text.split()[0]} has an unexpected value "
        f"{text.split(maxsplit=1)[1]}; it is ignored (the hosted API may have changed)"
        for text in drift
    ]


HTML = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"


@pytest.mark.parametrize(
    ("reply", "error", "message", "attempts"),
    [
        (
            Reply(401, fixture("hosted_error_401.json")),
            AuthenticationError,
            "hosted_lookup: the API key was rejected "
            "(status 401: The API key provided is invalid); check IOCSCOPE_HOSTED_LOOKUP_API_KEY",
            1,
        ),
        (
            Reply(402, fixture("hosted_error_402.json")),
            QuotaExceededError,
            "hosted_lookup: the account's credits are spent (status 402: Not enough credits); "
            "add credits",
            1,
        ),
        (
            Reply(400, b'{"error": {"code": "invalid_request", "message": "Invalid IP"}}'),
            BadResponseError,
            f"hosted_lookup: rejected {ADDRESS} as invalid input (status 400: Invalid IP)",
            1,
        ),
        (
            Reply(404, HTML, content_type="text/html"),
            BadResponseError,
            "hosted_lookup: unexpected response (status 404)",
            1,
        ),
        (
            Reply(429, b'{"error": {"code": "rate_limit_exceeded"}}', {"Retry-After": "2"}),
            RateLimitedError,
            "hosted_lookup: rate limited (status 429: rate_limit_exceeded) after 3 attempts; "
            "retry after 2 s",
            3,
        ),
        (
            Reply(503, b""),
            BadResponseError,
            "hosted_lookup: server error (status 503) after 3 attempts",
            3,
        ),
        (
            Reply(200, HTML, content_type="text/html"),
            BadResponseError,
            "hosted_lookup: returned an HTML page instead of JSON (status 200); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, fixture("hosted_lookup_malicious.json")[:40]),
            BadResponseError,
            "hosted_lookup: returned a body that is not valid JSON (status 200, 40 bytes)",
            1,
        ),
        (
            Reply(200, b'{"results": []}'),
            BadResponseError,
            "hosted_lookup: returned a response in an unexpected format (data: Field required)",
            1,
        ),
        (
            Reply(200, b'{"data": {"results": []}}'),
            BadResponseError,
            f"hosted_lookup: returned no result for {ADDRESS}",
            1,
        ),
        (
            Reply(200, b"[]"),
            BadResponseError,
            "hosted_lookup: returned a response in an unexpected format "
            "(a JSON list, not an object)",
            1,
        ),
    ],
    ids=[
        "401",
        "402",
        "400",
        "404-html",
        "429",
        "503",
        "html",
        "truncated",
        "no-data",
        "no-results",
        "not-object",
    ],
)
async def test_lookup_failure(
    provider: Provider, reply: Reply, error: type[SourceError], message: str, attempts: int
) -> None:
    provider.queue(LOOKUP_PATH, reply)

    await raises_exactly(provider.lookup_source().lookup(indicator(ADDRESS)), error, message)
    assert len(provider.requests(LOOKUP_PATH)) == attempts


async def test_enrich_malicious(provider: Provider) -> None:
    provider.queue(ENRICH_PATH, Reply(200, fixture("hosted_enrich_malicious.json")))

    result = await provider.enrich_source().lookup(indicator(ADDRESS))

    assert result.source == "hosted_enrich"
    assert result.found is True
    assert result.flagged is True
    assert result.confidence == 82
    assert result.summary == "malicious, score 82; flagged by 3 of 7 sources"
    assert result.context == {
        "verdict": "malicious",
        "risk_score": 82,
        "sources_queried": 7,
        "sources_flagged": 3,
    }


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (IndicatorType.IPV4, ADDRESS),
        (IndicatorType.IPV6, "2001:db8::42"),
        (IndicatorType.SHA512, "ef" * 64),
        (IndicatorType.URL, "https://bad.example.com/a"),
    ],
)
async def test_enrich_request_shape(provider: Provider, kind: IndicatorType, value: str) -> None:
    provider.queue(ENRICH_PATH, Reply(200, b'{"verdict": "unknown", "risk_score": 0}'))

    result = await provider.enrich_source().lookup(indicator(value, kind))

    [received] = provider.requests(ENRICH_PATH)
    assert received.method == "POST"
    assert received.headers["x-api-key"] == KEY
    assert "authorization" not in received.headers
    assert json.loads(received.body) == {"type": kind.value, "value": value}
    assert result.found is False
    assert result.summary == "unknown, score 0"


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (
            Reply(401, b'{"detail": "invalid API key"}'),
            AuthenticationError,
            "hosted_enrich: the API key was rejected (status 401: invalid API key); "
            "check IOCSCOPE_HOSTED_ENRICH_API_KEY",
        ),
        (
            Reply(422, b'{"detail": [{"loc": ["body", "type"], "msg": "bad type"}]}'),
            BadResponseError,
            f"hosted_enrich: rejected {ADDRESS} as invalid input (status 422: no detail given)",
        ),
        (
            Reply(400, b'{"detail": "invalid indicator: not an address"}'),
            BadResponseError,
            f"hosted_enrich: rejected {ADDRESS} as invalid input "
            "(status 400: invalid indicator: not an address)",
        ),
        (
            Reply(200, b'{"verdict": ["malicious"]}'),
            BadResponseError,
            "hosted_enrich: returned a response in an unexpected format "
            "(verdict: Input should be a valid string)",
        ),
    ],
    ids=["401", "422", "400", "verdict-list"],
)
async def test_enrich_failure(
    provider: Provider, reply: Reply, error: type[SourceError], message: str
) -> None:
    provider.queue(ENRICH_PATH, reply)

    await raises_exactly(provider.enrich_source().lookup(indicator(ADDRESS)), error, message)


async def test_timeout(provider: Provider) -> None:
    provider.queue(ENRICH_PATH, Reply(200, fixture("hosted_enrich_malicious.json"), delay=1.0))

    with pytest.raises(SourceTimeoutError) as info:
        await provider.enrich_source(timeout=0.2).lookup(indicator(ADDRESS))

    assert str(info.value) == (
        "hosted_enrich: no response within 0.2 s after 1 attempt; "
        "check the network or raise sources.hosted_enrich.timeout"
    )


@pytest.mark.parametrize("path", [LOOKUP_PATH, ENRICH_PATH])
async def test_key_never_logged(
    provider: Provider, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level(logging.DEBUG)
    good = "hosted_lookup_malicious.json" if path == LOOKUP_PATH else "hosted_enrich_malicious.json"
    provider.queue(
        path,
        Reply(200, fixture(good)),
        Reply(429, b"{}", {"Retry-After": "1"}),
        Reply(200, fixture(good)),
        Reply(401, b'{"detail": "key ' + KEY.encode() + b' revoked"}'),
    )
    source = provider.lookup_source() if path == LOOKUP_PATH else provider.enrich_source()
    messages = []

    for _ in range(3):
        try:
            await source.lookup(indicator(ADDRESS))
        except SourceError as exc:
            messages.append(str(exc))

    name = source.meta.name
    assert messages == [
        f"{name}: the API key was rejected (status 401: key *** revoked); "
        f"check IOCSCOPE_{name.upper()}_API_KEY"
    ]
    assert {"httpx", "httpcore.http11", "iocscope.sources.http"} <= {r.name for r in caplog.records}
    assert_key_not_logged(KEY, caplog, source)
    for received in provider.requests(path):
        assert KEY.encode() not in received.body


@pytest.mark.parametrize(("meta", "factory"), ENTRIES, ids=["lookup", "enrich"])
async def test_create_without_base_url(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, meta: Any, factory: Any
) -> None:
    monkeypatch.setenv(f"IOCSCOPE_{meta.name.upper()}_API_KEY", KEY)

    with pytest.raises(SourceUnavailableError) as info:
        factory(deps(Settings(), client))

    assert str(info.value) == (
        f"{meta.name} needs the address of the hosted service: set sources.{meta.name}.base_url"
    )


@pytest.mark.parametrize(("meta", "factory"), ENTRIES, ids=["lookup", "enrich"])
async def test_create_without_key(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, meta: Any, factory: Any
) -> None:
    env = f"IOCSCOPE_{meta.name.upper()}_API_KEY"
    monkeypatch.delenv(env, raising=False)
    settings = settings_from_mapping({"sources": {meta.name: {"base_url": "https://ti.example"}}})

    with pytest.raises(SourceUnavailableError) as info:
        factory(deps(settings, client))

    assert str(info.value) == (
        f"{meta.name} needs an API key: set {env} or sources.{meta.name}.api_key_file"
    )


@dataclass(frozen=True)
class Shape:
    """One request shape: its factory, path, a good answer and where the key goes."""

    name: str
    factory: Callable[[SourceDeps], Source]
    path: str
    body: str
    header: str
    sent: str


SHAPES = [
    Shape(
        "hosted_lookup",
        create_lookup,
        LOOKUP_PATH,
        "hosted_lookup_malicious.json",
        "authorization",
        f"Bearer {KEY}",
    ),
    Shape(
        "hosted_enrich",
        create_enrich,
        ENRICH_PATH,
        "hosted_enrich_malicious.json",
        "x-api-key",
        KEY,
    ),
]


@pytest.mark.parametrize("shape", SHAPES, ids=["lookup", "enrich"])
async def test_create_from_key_file(provider: Provider, tmp_path: Path, shape: Shape) -> None:
    key_file = tmp_path / "hosted.key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    settings = settings_from_mapping(
        {"sources": {shape.name: {"base_url": provider.base_url, "api_key_file": str(key_file)}}}
    )
    provider.queue(shape.path, Reply(200, fixture(shape.body)), Reply(401, b"{}"))

    source = shape.factory(deps(settings, provider.client))
    result = await source.lookup(indicator(ADDRESS))
    with pytest.raises(AuthenticationError) as info:
        await source.lookup(indicator(ADDRESS))

    assert source.meta.name == shape.name
    assert result.flagged is True
    assert str(info.value).endswith(f"; check the key in {key_file}")
    assert provider.requests(shape.path)[0].headers[shape.header] == shape.sent


def test_meta() -> None:
    assert LOOKUP_META.name == "hosted_lookup"
    assert ENRICH_META.name == "hosted_enrich"
    assert {LOOKUP_META.kind, ENRICH_META.kind} == {SourceKind.API}
    assert LOOKUP_META.rate_per_minute == 5
    assert LOOKUP_META.daily_budget == 100
    assert ENRICH_META.types == frozenset(IndicatorType)
    assert max(LOOKUP_META.weight, ENRICH_META.weight) < Settings().scoring.strong_weight
    assert [meta for meta, _ in ENTRIES] == [LOOKUP_META, ENRICH_META]
