"""The VirusTotal source against a real replay server on 127.0.0.1."""

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
from iocscope.sources import virustotal
from iocscope.sources.contract import SourceKind, Status
from iocscope.sources.drift import reset_drift_warnings
from iocscope.sources.virustotal import META, VirusTotalSource, confidence, create, url_id
from tests.sources.support import RecordedSleep, deps, fixture, raises_exactly
from tests.support.corpus import CORPUS, corpus_path
from tests.support.replay import Received, ReplayServer, Reply

KEY = "vt-test-key-3c9a51e07b"
KEY_ENV = "IOCSCOPE_VIRUSTOTAL_API_KEY"
RECORDED = sorted(path.name for path in (CORPUS / "api-responses" / "virustotal").glob("*.json"))
PREFIXES = itertools.count()
ADDRESS = "203.0.113.7"
IP_PATH = f"/api/v3/ip_addresses/{ADDRESS}"


def make(kind: IndicatorType, value: str) -> Indicator:
    return Indicator(type=kind, value=value, original=value, display=value)


def ipv4(value: str = ADDRESS) -> Indicator:
    return make(IndicatorType.IPV4, value)


@dataclass(frozen=True)
class Provider:
    """A fake VirusTotal under a path prefix of its own on the shared replay server."""

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

    def source(self, **options: Any) -> VirusTotalSource:
        options.setdefault("base_url", self.base_url)
        return VirusTotalSource(self.client, SecretStr(KEY), sleep=self.sleep, **options)


@pytest.fixture
def provider(server: ReplayServer, client: httpx.AsyncClient) -> Provider:
    return Provider(server, f"/vt{next(PREFIXES)}", client, RecordedSleep())


async def test_flagged_address(provider: Provider) -> None:
    provider.queue(IP_PATH, Reply(200, fixture("virustotal_ip_flagged.json")))

    result = await provider.source().lookup(ipv4())

    assert result.source == "virustotal"
    assert result.status is Status.OK
    assert result.found is True
    assert result.flagged is True
    assert result.benign is False
    assert result.confidence == 67  # 9 of 90 engines is 10%, two thirds of 15%
    assert result.categories == ()
    assert result.tags == ("scanner",)
    assert result.first_seen is None
    assert result.last_seen == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert result.reference == f"https://www.virustotal.com/gui/ip-address/{ADDRESS}"
    assert result.summary == (
        "9 of 90 engines call it malicious, 2 suspicious; community reputation -25; "
        "last analysed 2024-05-01"
    )
    assert result.context == {
        "malicious": 9,
        "suspicious": 2,
        "harmless": 60,
        "undetected": 19,
        "engines": 90,
        "reputation": -25,
        "as_owner": "Example Hosting B.V.",
        "asn": 64500,
        "country_iso": "NL",
        "network": "203.0.113.0/24",
    }
    assert result.raw == json.loads(fixture("virustotal_ip_flagged.json"))


async def test_key_only_in_header(provider: Provider) -> None:
    provider.queue(IP_PATH, Reply(200, fixture("virustotal_ip_flagged.json")))

    await provider.source().lookup(ipv4())

    [received] = provider.requests(IP_PATH)
    assert received.method == "GET"
    assert received.headers["x-apikey"] == KEY
    assert received.headers["accept"] == "application/json"
    assert received.query == {}
    assert KEY not in received.path


@pytest.mark.parametrize(
    ("kind", "value", "path"),
    [
        (IndicatorType.IPV6, "2001:db8::7", "/api/v3/ip_addresses/2001:db8::7"),
        (IndicatorType.DOMAIN, "shop.example", "/api/v3/domains/shop.example"),
        (
            IndicatorType.URL,
            "http://login.example/verify?id=7",
            "/api/v3/urls/aHR0cDovL2xvZ2luLmV4YW1wbGUvdmVyaWZ5P2lkPTc",
        ),
        (
            IndicatorType.MD5,
            "0cc175b9c0f1b6a831c399e269772661",
            "/api/v3/files/0cc175b9c0f1b6a831c399e269772661",
        ),
        (IndicatorType.SHA1, "a" * 40, "/api/v3/files/" + "a" * 40),
        (IndicatorType.SHA256, "b" * 64, "/api/v3/files/" + "b" * 64),
    ],
    ids=["ipv6", "domain", "url", "md5", "sha1", "sha256"],
)
async def test_object_paths(provider: Provider, kind: IndicatorType, value: str, path: str) -> None:
    provider.queue(path, Reply(200, fixture("virustotal_domain_one_engine.json")))

    result = await provider.source().lookup(make(kind, value))

    assert result.status is Status.OK
    assert len(provider.requests(path)) == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://login.example/verify?id=7", "aHR0cDovL2xvZ2luLmV4YW1wbGUvdmVyaWZ5P2lkPTc"),
        # "??>" encodes to "Pz8-" in the URL-safe alphabet ("Pz8+" in the standard one).
        ("http://a.example/??>", "aHR0cDovL2EuZXhhbXBsZS8_Pz4"),
        ("http://a.example/", "aHR0cDovL2EuZXhhbXBsZS8"),
    ],
    ids=["query", "url-safe-alphabet", "padding-stripped"],
)
def test_url_id(url: str, expected: str) -> None:
    assert url_id(url) == expected
    assert "=" not in url_id(url)


async def test_url_reference_uses_sha256_id(provider: Provider) -> None:
    url = "http://login.example/verify?id=7"
    path = f"/api/v3/urls/{url_id(url)}"
    provider.queue(path, Reply(200, fixture("virustotal_url.json")))

    result = await provider.source().lookup(make(IndicatorType.URL, url))

    data = json.loads(fixture("virustotal_url.json"))["data"]
    assert result.reference == f"https://www.virustotal.com/gui/url/{data['id']}"
    assert result.flagged is True
    assert result.first_seen == datetime(2024, 3, 1, tzinfo=UTC)
    assert result.categories == ("phishing and fraud", "Phishing and Other Frauds")


async def test_file_answer(provider: Provider) -> None:
    value = "0cc175b9c0f1b6a831c399e269772661"
    provider.queue(f"/api/v3/files/{value}", Reply(200, fixture("virustotal_file.json")))

    result = await provider.source().lookup(make(IndicatorType.MD5, value))

    assert result.flagged is True
    assert result.confidence == 100
    assert result.categories == ("trojan.agenttesla",)
    assert result.tags == ("peexe", "signed")
    assert result.reference == f"https://www.virustotal.com/gui/file/{value}"
    assert result.first_seen == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert result.context["engines"] == 70  # timeouts and unsupported types do not count
    assert result.context["names"] == ["invoice.exe"]


async def test_one_engine_never_flags(provider: Provider) -> None:
    path = "/api/v3/domains/shop.example"
    provider.queue(path, Reply(200, fixture("virustotal_domain_one_engine.json")))

    result = await provider.source().lookup(make(IndicatorType.DOMAIN, "shop.example"))

    assert result.found is True
    assert result.flagged is False
    assert result.categories == ("onlineshop", "shopping")
    assert result.summary == (
        "1 of 91 engines call it malicious, 0 suspicious; community reputation 12"
    )


@pytest.mark.parametrize(("threshold", "flagged"), [(9, True), (10, False), (2, True)])
async def test_threshold(provider: Provider, threshold: int, flagged: bool) -> None:
    provider.queue(IP_PATH, Reply(200, fixture("virustotal_ip_flagged.json")))

    result = await provider.source(threshold=threshold).lookup(ipv4())

    assert result.flagged is flagged


@pytest.mark.parametrize("threshold", [1, 0, -3])
def test_threshold_below_two_rejected(client: httpx.AsyncClient, threshold: int) -> None:
    with pytest.raises(ValueError, match="one engine alone must never flag") as info:
        VirusTotalSource(client, SecretStr(KEY), threshold=threshold)

    assert str(info.value) == (
        f"the VirusTotal flag threshold must be at least 2 engines, not {threshold}: "
        "one engine alone must never flag an indicator"
    )


@pytest.mark.parametrize(
    ("malicious", "engines", "expected"),
    [(0, 90, 0), (1, 90, 7), (3, 94, 21), (9, 90, 67), (14, 90, 100), (60, 70, 100), (5, 0, 0)],
)
def test_confidence(malicious: int, engines: int, expected: int) -> None:
    assert confidence(malicious, engines) == expected


async def test_unknown_indicator(provider: Provider) -> None:
    provider.queue(IP_PATH, Reply(404, fixture("virustotal_error_404.json")))

    result = await provider.source().lookup(ipv4())

    assert result.status is Status.OK
    assert result.found is False
    assert result.flagged is False
    assert result.summary == "unknown to VirusTotal"
    assert len(provider.requests(IP_PATH)) == 1


HTML = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"
HINT = "check IOCSCOPE_VIRUSTOTAL_API_KEY"
TOO_MANY = b'{"error": {"code": "TooManyRequestsError", "message": "Too many"}}'


@pytest.mark.parametrize(
    ("reply", "error", "message", "attempts"),
    [
        (
            Reply(401, fixture("virustotal_error_401.json")),
            AuthenticationError,
            f"virustotal: the API key was rejected (status 401: Wrong API key); {HINT}",
            1,
        ),
        (
            Reply(403, b'{"error": {"code": "ForbiddenError", "message": "Forbidden"}}'),
            AuthenticationError,
            f"virustotal: the API key was rejected (status 403: Forbidden); {HINT}",
            1,
        ),
        (
            Reply(400, fixture("virustotal_error_400.json")),
            BadResponseError,
            "virustotal: rejected 203.0.113.7 as invalid input (status 400: Invalid IP address)",
            1,
        ),
        (
            Reply(429, fixture("virustotal_error_429_quota.json"), {"Retry-After": "2"}),
            QuotaExceededError,
            "virustotal: quota exhausted (status 429: Quota exceeded); retry after 2 s",
            1,
        ),
        (
            Reply(429, TOO_MANY, {"Retry-After": "2"}),
            RateLimitedError,
            "virustotal: rate limited (status 429: Too many) after 3 attempts; retry after 2 s",
            3,
        ),
        (
            Reply(503, b'{"error": {"code": "TransientError", "message": "Try again"}}'),
            BadResponseError,
            "virustotal: server error (status 503: Try again) after 3 attempts",
            3,
        ),
        (
            Reply(404, HTML, content_type="text/html"),
            BadResponseError,
            "virustotal: returned an HTML page instead of JSON (status 404); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(404, b'{"detail": "Not Found"}'),
            BadResponseError,
            "virustotal: unexpected response (status 404: Not Found)",
            1,
        ),
        (
            Reply(200, HTML, content_type="text/html"),
            BadResponseError,
            "virustotal: returned an HTML page instead of JSON (status 200); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, fixture("virustotal_ip_flagged.json")[:150]),
            BadResponseError,
            "virustotal: returned a body that is not valid JSON (status 200, 150 bytes)",
            1,
        ),
        (
            Reply(
                200,
                b'{"data": {"id": "x", "type": "file", "attributes": '
                b'{"last_analysis_stats": {"malicious": 3, "suspicious": 0, "undetected": 60}}}}',
            ),
            BadResponseError,
            "virustotal: returned a response in an unexpected format "
            "(data.attributes.last_analysis_stats.harmless: Field required)",
            1,
        ),
        (
            Reply(200, b'{"data": {"id": "x", "type": "ip_address", "attributes": {}}}'),
            BadResponseError,
            "virustotal: returned a response in an unexpected format "
            "(data.attributes.last_analysis_stats: Field required)",
            1,
        ),
        (
            Reply(200, b"[]"),
            BadResponseError,
            "virustotal: returned a response in an unexpected format (a JSON list, not an object)",
            1,
        ),
    ],
    ids=[
        "401",
        "403",
        "400",
        "429-quota",
        "429-too-many",
        "503",
        "404-html",
        "404-other-json",
        "html",
        "truncated",
        "stats-incomplete",
        "no-stats",
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
    provider.queue(IP_PATH, reply)

    raised = await raises_exactly(provider.source().lookup(ipv4()), error, message)
    assert raised.source == "virustotal"
    assert len(provider.requests(IP_PATH)) == attempts


async def test_rate_limit_retry_after(provider: Provider) -> None:
    provider.queue(IP_PATH, Reply(429, TOO_MANY, {"Retry-After": "2"}))

    with pytest.raises(RateLimitedError) as info:
        await provider.source().lookup(ipv4())

    assert type(info.value) is RateLimitedError
    assert info.value.retry_after == 2.0
    assert provider.sleep.waits == [2.0, 2.0]


async def test_quota_not_retried(provider: Provider) -> None:
    body = fixture("virustotal_error_429_quota.json")
    provider.queue(IP_PATH, Reply(429, body, {"Retry-After": "3600"}), Reply(200, b"{}"))

    with pytest.raises(QuotaExceededError) as info:
        await provider.source().lookup(ipv4())

    assert info.value.retry_after == 3600.0
    assert provider.sleep.waits == []
    assert len(provider.requests(IP_PATH)) == 1


async def test_rate_limit_then_success(provider: Provider) -> None:
    provider.queue(
        IP_PATH,
        Reply(429, TOO_MANY, {"Retry-After": "1"}),
        Reply(200, fixture("virustotal_ip_flagged.json")),
    )

    result = await provider.source().lookup(ipv4())

    assert result.flagged is True
    assert provider.sleep.waits == [1.0]


async def test_timeout(provider: Provider) -> None:
    provider.queue(IP_PATH, Reply(200, fixture("virustotal_ip_flagged.json"), delay=1.0))

    with pytest.raises(SourceTimeoutError) as info:
        await provider.source(timeout=0.2).lookup(ipv4())

    assert str(info.value) == (
        "virustotal: no response within 0.2 s after 1 attempt; "
        "check the network or raise sources.virustotal.timeout"
    )


async def test_drift_tolerated_and_warned_once(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    reset_drift_warnings()
    body = json.loads(fixture("virustotal_ip_flagged.json"))
    body["data"]["attributes"]["reputation"] = "bad"
    body["data"]["attributes"]["tags"] = "scanner"
    provider.queue(IP_PATH, Reply(200, json.dumps(body)))
    source = provider.source()

    first = await source.lookup(ipv4())
    second = await source.lookup(ipv4())

    assert first.flagged is True
    assert first.tags == ()
    assert "reputation" not in first.context
    assert second.tags == ()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "source=virustotal attribute reputation has an unexpected value ('bad'); it is "
        "ignored. VirusTotal may have changed its API",
        "source=virustotal attribute tags has an unexpected value ('scanner'); it is "
        "ignored. VirusTotal may have changed its API",
    ]


async def test_key_never_logged(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # VirusTotal nests its error text, which here echoes the key.
    wrong_key = f"Wrong key {KEY}"
    provider.queue(
        IP_PATH,
        Reply(200, fixture("virustotal_ip_flagged.json")),
        Reply(429, b"{}", {"Retry-After": "1"}),
        Reply(200, fixture("virustotal_ip_flagged.json")),
        Reply(401, json.dumps({"error": {"code": "WrongCredentialsError", "message": wrong_key}})),
        Reply(503, b"{}"),
    )
    source = provider.source()
    messages = []

    for _ in range(4):
        try:
            await source.lookup(ipv4())
        except SourceError as exc:
            messages.append(str(exc))

    assert messages == [
        f"virustotal: the API key was rejected (status 401: Wrong key ***); {HINT}",
        "virustotal: server error (status 503) after 3 attempts",
    ]
    assert {"httpx", "iocscope.sources.http"} <= {r.name for r in caplog.records}
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert KEY not in repr(record.args)
    assert KEY not in caplog.text
    assert KEY not in repr(source)


async def test_create_without_key(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)

    with pytest.raises(SourceUnavailableError) as info:
        create(deps(Settings(), client))

    assert str(info.value) == (
        "VirusTotal needs an API key: set IOCSCOPE_VIRUSTOTAL_API_KEY "
        "or sources.virustotal.api_key_file"
    )


async def test_create_from_env(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    settings = settings_from_mapping({"sources": {"virustotal": {"base_url": provider.base_url}}})
    provider.queue(IP_PATH, Reply(200, fixture("virustotal_ip_flagged.json")))

    source = create(deps(settings, provider.client))
    result = await source.lookup(ipv4())

    assert source.meta is META
    assert result.flagged is True
    [received] = provider.requests(IP_PATH)
    assert received.headers["x-apikey"] == KEY


async def test_create_from_key_file(
    provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    key_file = tmp_path / "virustotal.key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    settings = settings_from_mapping(
        {"sources": {"virustotal": {"base_url": provider.base_url, "api_key_file": str(key_file)}}}
    )
    provider.queue(IP_PATH, Reply(401, fixture("virustotal_error_401.json")))

    with pytest.raises(AuthenticationError) as info:
        await create(deps(settings, provider.client)).lookup(ipv4())

    assert str(info.value).endswith(f"; check the key in {key_file}")


def test_meta() -> None:
    assert META.name == "virustotal"
    assert META.kind is SourceKind.API
    assert IndicatorType.SHA512 not in META.types
    assert IndicatorType.EMAIL not in META.types
    assert META.needs_key is True
    assert META.rate_per_minute == 4
    assert META.daily_budget == 500
    assert META.weight >= Settings().scoring.strong_weight


def unwrap(payload: dict[str, Any]) -> dict[str, Any]:
    # wtfis_* files store the provider body under the queried value.
    return payload if "data" in payload else cast(dict[str, Any], next(iter(payload.values())))


@pytest.mark.corpus
@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_answer(provider: Provider, name: str) -> None:
    body = unwrap(json.loads(corpus_path("api-responses", "virustotal", name).read_text("utf-8")))
    data = body["data"]
    kind = {
        "ip_address": IndicatorType.IPV4,
        "domain": IndicatorType.DOMAIN,
        "file": IndicatorType.SHA256,
    }.get(data["type"], IndicatorType.URL)
    value = data["attributes"].get("url", data["id"]) if kind is IndicatorType.URL else data["id"]
    indicator = make(kind, value)
    provider.queue("/api/v3/" + virustotal.object_path(indicator), Reply(200, json.dumps(body)))

    result = await provider.source().lookup(indicator)

    stats = data["attributes"]["last_analysis_stats"]
    assert result.found is True
    assert result.flagged is (stats["malicious"] >= 3)
    assert result.context["malicious"] == stats["malicious"]
    assert result.context["reputation"] == data["attributes"]["reputation"]
    assert result.summary.startswith(f"{stats['malicious']} of ")


@pytest.mark.corpus
async def test_recorded_one_engine_domain_not_flagged(provider: Provider) -> None:
    path = corpus_path("api-responses", "virustotal", "wtfis_vt_domain_google.json")
    body = unwrap(json.loads(path.read_text("utf-8")))
    provider.queue("/api/v3/domains/google.com", Reply(200, json.dumps(body)))

    result = await provider.source().lookup(make(IndicatorType.DOMAIN, "google.com"))

    assert result.flagged is False
    assert result.context["malicious"] == 1
