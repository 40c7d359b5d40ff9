"""The URLhaus source against a real replay server on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

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
from iocscope.sources.urlhaus import HOST_PATH, META, PAYLOAD_PATH, URL_PATH, UrlhausSource, create
from tests.sources.support import (
    RecordedSleep,
    assert_key_not_logged,
    deps,
    fixture,
    raises_exactly,
)
from tests.support.corpus import CORPUS, cases_of, corpus_path
from tests.support.replay import Received, ReplayServer, Reply

KEY = "urlhaus-test-key-5b0e7c21d9"
KEY_ENV = "IOCSCOPE_URLHAUS_API_KEY"
SHARED_ENV = "IOCSCOPE_ABUSECH_API_KEY"
HINT = f"check {KEY_ENV}"
RECORDED = sorted(path.name for path in (CORPUS / "api-responses" / "urlhaus").glob("*.json"))
CASES = [case for case in cases_of("provider_api") if "urlhaus" in json.dumps(case["input"])]
PREFIXES = itertools.count()
URL = "http://203.0.113.45/bins/mips"
SHA256 = "5f1c0b2e3d4a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
MD5 = "0d4c1f3e6b7a8f9e0d1c2b3a4f5e6d7c"


def indicator(kind: IndicatorType, value: str) -> Indicator:
    return Indicator(type=kind, value=value, original=value, display=value)


@dataclass(frozen=True)
class Provider:
    """A fake URLhaus under a path prefix of its own on the shared replay server."""

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

    def source(self, **options: Any) -> UrlhausSource:
        options.setdefault("base_url", self.base_url)
        key = AuthKey(SecretStr(KEY), HINT)
        return UrlhausSource(self.client, key, sleep=self.sleep, **options)


@pytest.fixture
def provider(server: ReplayServer, client: httpx.AsyncClient) -> Provider:
    return Provider(server, f"/urlhaus{next(PREFIXES)}", client, RecordedSleep())


@pytest.fixture
def fresh_drift() -> None:
    # Drift warnings are logged once per process; each test starts from none.
    reset_drift_warnings()


async def test_online_url(provider: Provider) -> None:
    provider.queue(URL_PATH, Reply(200, fixture("urlhaus_url_online.json")))

    result = await provider.source().lookup(indicator(IndicatorType.URL, URL))

    assert result.source == "urlhaus"
    assert result.status is Status.OK
    assert result.found is True
    assert result.flagged is True
    assert result.benign is False
    assert result.confidence == 100
    assert result.categories == ("malware_download",)
    assert result.tags == ("elf", "mirai")
    assert result.first_seen == datetime(2024, 6, 3, 8, 12, 44, tzinfo=UTC)
    assert result.last_seen == datetime(2024, 6, 4, 21, 0, 5, tzinfo=UTC)
    assert result.reference == "https://urlhaus.abuse.ch/url/3140021/"
    assert result.summary == (
        "listed as malware_download, online; added 2024-06-03; SURBL listed; tags elf, mirai"
    )
    assert result.context == {
        "url_status": "online",
        "threat": "malware_download",
        "host": "203.0.113.45",
        "payloads": 1,
        "spamhaus_dbl": "not listed",
        "surbl": "listed",
    }
    assert result.raw == json.loads(fixture("urlhaus_url_online.json"))


@pytest.mark.parametrize(
    ("url_status", "confidence"),
    [("online", 100), ("unknown", 75), ("offline", 50)],
)
async def test_url_confidence(provider: Provider, url_status: str, confidence: int) -> None:
    body = json.loads(fixture("urlhaus_url_online.json")) | {"url_status": url_status}
    provider.queue(URL_PATH, Reply(200, json.dumps(body)))

    result = await provider.source().lookup(indicator(IndicatorType.URL, URL))

    assert result.flagged is True
    assert result.confidence == confidence
    assert result.summary.startswith(f"listed as malware_download, {url_status};")


@pytest.mark.parametrize(
    ("kind", "value", "path", "form"),
    [
        (IndicatorType.URL, URL, URL_PATH, {"url": [URL]}),
        (IndicatorType.DOMAIN, "files.example.net", HOST_PATH, {"host": ["files.example.net"]}),
        (IndicatorType.IPV4, "203.0.113.45", HOST_PATH, {"host": ["203.0.113.45"]}),
        (IndicatorType.MD5, MD5, PAYLOAD_PATH, {"md5_hash": [MD5]}),
        (IndicatorType.SHA256, SHA256, PAYLOAD_PATH, {"sha256_hash": [SHA256]}),
    ],
    ids=["url", "domain", "ipv4", "md5", "sha256"],
)
async def test_request_shape(
    provider: Provider, kind: IndicatorType, value: str, path: str, form: dict[str, list[str]]
) -> None:
    provider.queue(path, Reply(200, fixture("urlhaus_no_results.json")))

    await provider.source().lookup(indicator(kind, value))

    [received] = provider.requests(path)
    assert received.method == "POST"
    assert received.headers["auth-key"] == KEY
    assert received.headers["accept"] == "application/json"
    assert received.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(received.body.decode()) == form
    assert received.query == {}
    assert KEY.encode() not in received.body


async def test_offline_host(provider: Provider) -> None:
    provider.queue(HOST_PATH, Reply(200, fixture("urlhaus_host_offline.json")))

    result = await provider.source().lookup(indicator(IndicatorType.DOMAIN, "files.example.net"))

    assert result.found is True
    assert result.flagged is True
    assert result.confidence == 40
    assert result.categories == ("malware_download",)
    assert result.tags == ("zip", "AgentTesla")
    assert result.first_seen == datetime(2023, 11, 20, 10, 1, 2, tzinfo=UTC)
    assert result.last_seen == datetime(2023, 12, 2, 17, 45, 10, tzinfo=UTC)
    assert result.reference == "https://urlhaus.abuse.ch/host/files.example.net/"
    assert result.summary == (
        "3 malware URLs listed, 0 online; first seen 2023-11-20; Spamhaus DBL abused_legit_malware"
    )
    assert result.context == {
        "url_count": 3,
        "online_urls": 0,
        "spamhaus_dbl": "abused_legit_malware",
        "surbl": "not listed",
    }


async def test_payload(provider: Provider) -> None:
    provider.queue(PAYLOAD_PATH, Reply(200, fixture("urlhaus_payload.json")))

    result = await provider.source().lookup(indicator(IndicatorType.SHA256, SHA256))

    assert result.found is True
    assert result.flagged is True
    assert result.confidence == 90
    assert result.categories == ("malware",)
    assert result.tags == ("Mirai",)
    assert result.first_seen == datetime(2024, 6, 3, 8, 12, 50, tzinfo=UTC)
    assert result.last_seen == datetime(2024, 6, 5, 2, 30, tzinfo=UTC)
    assert result.reference == f"https://urlhaus.abuse.ch/browse.php?search={SHA256}"
    assert result.summary == (
        "payload delivered by 2 malware URLs; file type elf; signature Mirai; VirusTotal 31 / 64"
    )
    assert result.context == {
        "file_type": "elf",
        "file_size": 61744,
        "signature": "Mirai",
        "url_count": 2,
        "md5": MD5,
        "sha256": SHA256,
    }


@pytest.mark.parametrize(
    ("kind", "value", "path"),
    [
        (IndicatorType.URL, URL, URL_PATH),
        (IndicatorType.DOMAIN, "clean.example.org", HOST_PATH),
        (IndicatorType.MD5, MD5, PAYLOAD_PATH),
    ],
    ids=["url", "host", "payload"],
)
async def test_not_listed(provider: Provider, kind: IndicatorType, value: str, path: str) -> None:
    provider.queue(path, Reply(200, fixture("urlhaus_no_results.json")))

    result = await provider.source().lookup(indicator(kind, value))

    assert result.status is Status.OK
    assert result.found is False
    assert result.flagged is False
    assert result.summary == "not listed by URLhaus"
    assert len(provider.requests(path)) == 1


@pytest.mark.parametrize(
    ("query_status", "error", "message"),
    [
        (
            "invalid_url",
            BadResponseError,
            f"urlhaus: rejected {URL} as invalid input (query_status invalid_url)",
        ),
        (
            "invalid_host",
            BadResponseError,
            f"urlhaus: rejected {URL} as invalid input (query_status invalid_host)",
        ),
        (
            "invalid_md5_hash",
            BadResponseError,
            f"urlhaus: rejected {URL} as invalid input (query_status invalid_md5_hash)",
        ),
        (
            "invalid_sha256_hash",
            BadResponseError,
            f"urlhaus: rejected {URL} as invalid input (query_status invalid_sha256_hash)",
        ),
        (
            "invalid_sha256",
            BadResponseError,
            f"urlhaus: rejected {URL} as invalid input (query_status invalid_sha256)",
        ),
        (
            "http_post_expected",
            BadResponseError,
            "urlhaus: rejected the request (query_status http_post_expected); "
            "the API may have changed",
        ),
        (
            "unknown_auth_key",
            AuthenticationError,
            "urlhaus: the API key was rejected (query_status unknown_auth_key); "
            "check IOCSCOPE_URLHAUS_API_KEY",
        ),
        ("rate_limited", RateLimitedError, "urlhaus: rate limited (query_status rate_limited)"),
        (
            "maintenance",
            BadResponseError,
            "urlhaus: returned an unknown query_status 'maintenance'; the API may have changed",
        ),
    ],
)
async def test_query_status(
    provider: Provider, query_status: str, error: type[SourceError], message: str
) -> None:
    provider.queue(URL_PATH, Reply(200, json.dumps({"query_status": query_status})))

    await raises_exactly(
        provider.source().lookup(indicator(IndicatorType.URL, URL)), error, message
    )
    assert len(provider.requests(URL_PATH)) == 1


HTML = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"


@pytest.mark.parametrize(
    ("reply", "error", "message", "attempts"),
    [
        (
            Reply(401, b"Unauthorized", content_type="text/plain"),
            AuthenticationError,
            "urlhaus: the API key was rejected (status 401); check IOCSCOPE_URLHAUS_API_KEY",
            1,
        ),
        (
            Reply(403, b'{"query_status": "unknown_auth_key"}'),
            AuthenticationError,
            "urlhaus: the API key was rejected (status 403); check IOCSCOPE_URLHAUS_API_KEY",
            1,
        ),
        (
            Reply(405, b'{"query_status": "http_post_expected"}'),
            BadResponseError,
            "urlhaus: rejected the request (query_status http_post_expected); "
            "the API may have changed",
            1,
        ),
        (
            Reply(429, b"", {"Retry-After": "2"}),
            RateLimitedError,
            "urlhaus: rate limited (status 429) after 3 attempts; retry after 2 s",
            3,
        ),
        (
            Reply(502, b"Bad Gateway", content_type="text/plain"),
            BadResponseError,
            "urlhaus: server error (status 502) after 3 attempts",
            3,
        ),
        (
            Reply(404, b"<html><body>Not Found</body></html>", content_type="text/html"),
            BadResponseError,
            "urlhaus: unexpected response (status 404)",
            1,
        ),
        (
            Reply(200, HTML, content_type="text/html"),
            BadResponseError,
            "urlhaus: returned an HTML page instead of JSON (status 200); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, fixture("urlhaus_url_online.json")[:40]),
            BadResponseError,
            "urlhaus: returned a body that is not valid JSON (status 200, 40 bytes)",
            1,
        ),
        (
            Reply(200, b"[]"),
            BadResponseError,
            "urlhaus: returned a response in an unexpected format (a JSON list, not an object)",
            1,
        ),
        (
            Reply(200, b'{"detail": "Not found"}'),
            BadResponseError,
            "urlhaus: returned a response without a query_status; the API may have changed",
            1,
        ),
        (
            Reply(200, b'{"query_status": "ok", "url": "http://203.0.113.45/bins/mips"}'),
            BadResponseError,
            "urlhaus: returned a response in an unexpected format "
            "(url_status: Field required; urlhaus_reference: Field required)",
            1,
        ),
    ],
    ids=[
        "401",
        "403",
        "405",
        "429",
        "502",
        "404-html",
        "html",
        "truncated",
        "not-object",
        "no-status",
        "missing-fields",
    ],
)
async def test_failure(
    provider: Provider, reply: Reply, error: type[SourceError], message: str, attempts: int
) -> None:
    provider.queue(URL_PATH, reply)

    await raises_exactly(
        provider.source().lookup(indicator(IndicatorType.URL, URL)), error, message
    )
    assert len(provider.requests(URL_PATH)) == attempts


async def test_rate_limit_then_success(provider: Provider) -> None:
    provider.queue(
        URL_PATH,
        Reply(429, b"", {"Retry-After": "1"}),
        Reply(200, fixture("urlhaus_url_online.json")),
    )

    result = await provider.source().lookup(indicator(IndicatorType.URL, URL))

    assert result.flagged is True
    assert provider.sleep.waits == [1.0]


async def test_timeout(provider: Provider) -> None:
    provider.queue(URL_PATH, Reply(200, fixture("urlhaus_url_online.json"), delay=1.0))

    with pytest.raises(SourceTimeoutError) as info:
        await provider.source(timeout=0.2).lookup(indicator(IndicatorType.URL, URL))

    assert str(info.value) == (
        "urlhaus: no response within 0.2 s after 1 attempt; "
        "check the network or raise sources.urlhaus.timeout"
    )


@pytest.mark.usefixtures("fresh_drift")
async def test_drift_tolerated(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    body = json.loads(fixture("urlhaus_url_online.json")) | {
        "url_status": "parked",
        "date_added": "03/06/2024",
        "tags": "elf",
    }
    provider.queue(URL_PATH, Reply(200, json.dumps(body)))
    source = provider.source()

    first = await source.lookup(indicator(IndicatorType.URL, URL))
    second = await source.lookup(indicator(IndicatorType.URL, URL))

    assert first == second
    assert first.confidence == 75
    assert first.first_seen is None
    assert first.tags == ()
    drift = [r.getMessage() for r in caplog.records if r.name == "iocscope.sources.abusech"]
    assert drift == [
        "source=urlhaus field=date_added has an unexpected value '03/06/2024'; it is ignored "
        "(the provider's API may have changed)",
        "source=urlhaus field=tags has an unexpected value 'elf'; it is ignored "
        "(the provider's API may have changed)",
        "source=urlhaus field=url_status has an unexpected value 'parked'; it is ignored "
        "(the provider's API may have changed)",
    ]


async def test_key_never_logged(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider.queue(
        URL_PATH,
        Reply(200, fixture("urlhaus_url_online.json")),
        Reply(429, b"{}", {"Retry-After": "1"}),
        Reply(200, fixture("urlhaus_no_results.json")),
        Reply(401, b'{"error": "Auth-Key ' + KEY.encode() + b' is unknown"}'),
        Reply(503, b"{}"),
    )
    source = provider.source()
    messages = []

    for _ in range(4):
        try:
            await source.lookup(indicator(IndicatorType.URL, URL))
        except SourceError as exc:
            messages.append(str(exc))

    assert messages == [
        "urlhaus: the API key was rejected (status 401: Auth-Key *** is unknown); "
        "check IOCSCOPE_URLHAUS_API_KEY",
        "urlhaus: server error (status 503) after 3 attempts",
    ]
    assert {"httpx", "httpcore.http11", "iocscope.sources.http"} <= {r.name for r in caplog.records}
    assert_key_not_logged(KEY, caplog, source)
    for received in provider.requests(URL_PATH):
        assert KEY not in received.path
        assert KEY.encode() not in received.body


async def test_create_without_key(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(SHARED_ENV, raising=False)

    with pytest.raises(SourceUnavailableError) as info:
        create(deps(Settings(), client))

    assert str(info.value) == (
        "URLhaus needs an abuse.ch Auth-Key: set IOCSCOPE_URLHAUS_API_KEY or "
        "IOCSCOPE_ABUSECH_API_KEY, or sources.urlhaus.api_key_file "
        "(a free key comes from https://auth.abuse.ch/)"
    )


async def test_create_names_custom_env(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACME_URLHAUS_KEY", raising=False)
    monkeypatch.setenv(SHARED_ENV, KEY)
    settings = settings_from_mapping({"sources": {"urlhaus": {"api_key_env": "ACME_URLHAUS_KEY"}}})

    with pytest.raises(SourceUnavailableError) as info:
        create(deps(settings, client))

    assert str(info.value) == (
        "URLhaus needs an abuse.ch Auth-Key: set ACME_URLHAUS_KEY, or "
        "sources.urlhaus.api_key_file (a free key comes from https://auth.abuse.ch/)"
    )


@pytest.mark.parametrize(
    ("own", "shared", "hint"),
    [
        (KEY, "other-shared-key", "check IOCSCOPE_URLHAUS_API_KEY"),
        (None, KEY, "check IOCSCOPE_ABUSECH_API_KEY"),
    ],
    ids=["own-key", "shared-key"],
)
async def test_create_from_env(
    provider: Provider, monkeypatch: pytest.MonkeyPatch, own: str | None, shared: str, hint: str
) -> None:
    if own is None:
        monkeypatch.delenv(KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(KEY_ENV, own)
    monkeypatch.setenv(SHARED_ENV, shared)
    settings = settings_from_mapping({"sources": {"urlhaus": {"base_url": provider.base_url}}})
    provider.queue(URL_PATH, Reply(401, b"Unauthorized", content_type="text/plain"))

    source = create(deps(settings, provider.client))
    with pytest.raises(AuthenticationError) as info:
        await source.lookup(indicator(IndicatorType.URL, URL))

    assert source.meta is META
    assert str(info.value).endswith(f"; {hint}")
    [received] = provider.requests(URL_PATH)
    assert received.headers["auth-key"] == KEY


async def test_create_from_key_file(
    provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    key_file = tmp_path / "abusech.key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    settings = settings_from_mapping(
        {"sources": {"urlhaus": {"base_url": provider.base_url, "api_key_file": str(key_file)}}}
    )
    provider.queue(URL_PATH, Reply(200, json.dumps({"query_status": "unknown_auth_key"})))

    with pytest.raises(AuthenticationError) as info:
        await create(deps(settings, provider.client)).lookup(indicator(IndicatorType.URL, URL))

    assert str(info.value).endswith(f"; check the key in {key_file}")
    [received] = provider.requests(URL_PATH)
    assert received.headers["auth-key"] == KEY


def test_meta() -> None:
    assert META.name == "urlhaus"
    assert META.kind is SourceKind.API
    assert META.types == frozenset(
        {
            IndicatorType.URL,
            IndicatorType.DOMAIN,
            IndicatorType.IPV4,
            IndicatorType.MD5,
            IndicatorType.SHA256,
        }
    )
    assert META.needs_key is True
    assert META.rate_per_minute == 60
    assert META.weight >= Settings().scoring.strong_weight


@pytest.mark.corpus
@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_host(provider: Provider, name: str) -> None:
    payload = json.loads(corpus_path("api-responses", "urlhaus", name).read_text("utf-8"))
    # The recorded files store the body under the queried host.
    body = payload if "query_status" in payload else next(iter(payload.values()))
    provider.queue(HOST_PATH, Reply(200, json.dumps(body)))
    online = sum(1 for url in body["urls"] if url["url_status"] == "online")

    result = await provider.source().lookup(indicator(IndicatorType.DOMAIN, body["host"]))

    assert result.found is True
    assert result.flagged is True
    assert result.confidence == (70 if online else 40)
    assert result.reference == body["urlhaus_reference"]
    assert result.context["url_count"] == int(body["url_count"])
    assert result.context["online_urls"] == online
    assert result.first_seen == datetime.strptime(
        body["firstseen"], "%Y-%m-%d %H:%M:%S UTC"
    ).replace(tzinfo=UTC)
    assert set(result.tags) == {tag for url in body["urls"] for tag in url["tags"] or ()}


@pytest.mark.corpus
@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
async def test_public_case(provider: Provider, case: dict[str, Any]) -> None:
    # A 401 without an Auth-Key is an authentication failure, never "not listed".
    answer = case["input"]
    body = answer["body"] if isinstance(answer["body"], str) else json.dumps(answer["body"])
    provider.queue(HOST_PATH, Reply(answer["status"], body, content_type="text/plain"))

    with pytest.raises(AuthenticationError) as info:
        await provider.source().lookup(indicator(IndicatorType.DOMAIN, "files.example.net"))

    assert str(info.value) == (
        f"urlhaus: the API key was rejected (status {answer['status']}); "
        "check IOCSCOPE_URLHAUS_API_KEY"
    )
    assert len(provider.requests(HOST_PATH)) == 1
