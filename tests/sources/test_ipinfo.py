"""The IPinfo context source against a real replay server on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
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
from iocscope.sources import ipinfo
from iocscope.sources.contract import SourceKind, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.drift import reset_drift_warnings
from iocscope.sources.ipinfo import META, IpinfoSource, create
from tests.sources.support import RecordedSleep, fixture, raises_exactly
from tests.support.corpus import CORPUS, corpus_path
from tests.support.replay import Received, ReplayServer, Reply

TOKEN = "ipinfo-test-token-0a7c3e"
TOKEN_ENV = "IOCSCOPE_IPINFO_API_KEY"
RECORDED = sorted(
    path.name
    for path in (CORPUS / "api-responses" / "ipinfo").glob("*ipinfo*.json")
    if path.is_file()
)
PREFIXES = itertools.count()
ADDRESS = "198.51.100.20"


def ip(value: str = ADDRESS) -> Indicator:
    kind = IndicatorType.IPV6 if ":" in value else IndicatorType.IPV4
    return Indicator(type=kind, value=value, original=value, display=value)


@dataclass(frozen=True)
class Provider:
    """A fake IPinfo under a path prefix of its own on the shared replay server."""

    server: ReplayServer
    prefix: str
    client: httpx.AsyncClient
    sleep: RecordedSleep

    @property
    def base_url(self) -> str:
        return self.server.base_url + self.prefix

    def queue(self, address: str, *replies: Reply) -> None:
        self.server.queue(f"{self.prefix}/{address}", *replies)

    def requests(self, address: str) -> list[Received]:
        return self.server.requests_to(f"{self.prefix}/{address}")

    def source(self, token: str | None = TOKEN, **options: Any) -> IpinfoSource:
        options.setdefault("base_url", self.base_url)
        options.setdefault("key_hint", f"check {TOKEN_ENV}")
        secret = SecretStr(token) if token is not None else None
        return IpinfoSource(self.client, secret, sleep=self.sleep, **options)


@pytest.fixture
def provider(server: ReplayServer, client: httpx.AsyncClient) -> Provider:
    return Provider(server, f"/ii{next(PREFIXES)}", client, RecordedSleep())


async def test_free_plan_answer(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(200, fixture("ipinfo_free.json")))

    result = await provider.source().lookup(ip())

    assert result.source == "ipinfo"
    assert result.status is Status.OK
    assert result.found is True
    assert result.flagged is False
    assert result.benign is False
    assert result.confidence == 0
    assert result.tags == ()
    assert result.reference == f"https://ipinfo.io/{ADDRESS}"
    assert result.summary == "Utrecht, NL; AS64500 Example ISP B.V."
    assert result.context == {
        "country_iso": "NL",
        "region": "Utrecht",
        "city": "Utrecht",
        "asn": "AS64500",
        "as_name": "Example ISP B.V.",
        "hostname": "host-20.isp.example",
        "timezone": "Europe/Amsterdam",
    }
    assert result.raw == json.loads(fixture("ipinfo_free.json"))


async def test_privacy_flags_are_tags(provider: Provider) -> None:
    address = "203.0.113.7"
    provider.queue(address, Reply(200, fixture("ipinfo_privacy.json")))

    result = await provider.source().lookup(ip(address))

    assert result.flagged is False
    assert result.benign is False
    assert result.tags == ("vpn", "hosting")
    assert result.summary == (
        "Frankfurt am Main, DE; AS64501 Example Transit GmbH; privacy: vpn, hosting"
    )
    assert result.context["asn"] == "AS64501"
    assert result.context["privacy"] == {
        "vpn": True,
        "proxy": False,
        "tor": False,
        "relay": False,
        "hosting": True,
    }


async def test_bogon(provider: Provider) -> None:
    address = "203.0.113.250"
    provider.queue(address, Reply(200, fixture("ipinfo_bogon.json")))

    result = await provider.source().lookup(ip(address))

    assert result.status is Status.OK
    assert result.found is False
    assert result.flagged is False
    assert result.summary == "bogon address (not routed)"


async def test_token_only_in_header(provider: Provider) -> None:
    address = "2001:db8::20"
    provider.queue(address, Reply(200, fixture("ipinfo_free.json")))

    await provider.source().lookup(ip(address))

    [received] = provider.requests(address)
    assert received.headers["authorization"] == f"Bearer {TOKEN}"
    assert received.query == {}


async def test_works_without_token(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(200, fixture("ipinfo_free.json")))

    result = await provider.source(token=None).lookup(ip())

    assert result.found is True
    [received] = provider.requests(ADDRESS)
    assert "authorization" not in received.headers


HTML = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"
UNKNOWN_TOKEN = (
    b'{"status": 403, "error": {"title": "Unknown token", '
    b'"message": "Please ensure you have entered your token correctly."}}'
)


@pytest.mark.parametrize(
    ("reply", "error", "message", "attempts"),
    [
        (
            Reply(403, UNKNOWN_TOKEN),
            AuthenticationError,
            "ipinfo: the API key was rejected "
            "(status 403: Please ensure you have entered your token correctly.); "
            "check IOCSCOPE_IPINFO_API_KEY",
            1,
        ),
        (
            Reply(404, fixture("ipinfo_error_404.json")),
            BadResponseError,
            "ipinfo: rejected 198.51.100.20 as invalid input "
            "(status 404: Wrong ip: Please provide a valid IP address)",
            1,
        ),
        (
            Reply(429, b'{"status": 429, "error": "Rate limit exceeded"}', {"Retry-After": "2"}),
            RateLimitedError,
            "ipinfo: rate limited (status 429: Rate limit exceeded) after 3 attempts; "
            "retry after 2 s",
            3,
        ),
        (
            Reply(502, b""),
            BadResponseError,
            "ipinfo: server error (status 502) after 3 attempts",
            3,
        ),
        (
            Reply(404, HTML, content_type="text/html"),
            BadResponseError,
            "ipinfo: returned an HTML page instead of JSON (status 404); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, HTML, content_type="text/html"),
            BadResponseError,
            "ipinfo: returned an HTML page instead of JSON (status 200); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, fixture("ipinfo_free.json")[:70]),
            BadResponseError,
            "ipinfo: returned a body that is not valid JSON (status 200, 70 bytes)",
            1,
        ),
        (
            Reply(200, b'{"city": "Utrecht"}'),
            BadResponseError,
            "ipinfo: returned a response in an unexpected format (ip: Field required)",
            1,
        ),
        (
            Reply(200, b"[]"),
            BadResponseError,
            "ipinfo: returned a response in an unexpected format (a JSON list, not an object)",
            1,
        ),
    ],
    ids=[
        "403",
        "404-wrong-ip",
        "429",
        "502",
        "404-html",
        "html",
        "truncated",
        "no-ip",
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


async def test_tokenless_access_denied(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(403, UNKNOWN_TOKEN))

    with pytest.raises(AuthenticationError) as info:
        await provider.source(token=None).lookup(ip())

    assert str(info.value) == (
        "ipinfo: access was denied "
        "(status 403: Please ensure you have entered your token correctly.)"
    )


async def test_rate_limit_then_success(provider: Provider) -> None:
    provider.queue(
        ADDRESS,
        Reply(429, b"{}", {"Retry-After": "1"}),
        Reply(200, fixture("ipinfo_free.json")),
    )

    result = await provider.source().lookup(ip())

    assert result.found is True
    assert provider.sleep.waits == [1.0]


async def test_timeout(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(200, fixture("ipinfo_free.json"), delay=1.0))

    with pytest.raises(SourceTimeoutError) as info:
        await provider.source(timeout=0.2).lookup(ip())

    assert str(info.value) == (
        "ipinfo: no response within 0.2 s after 1 attempt; "
        "check the network or raise sources.ipinfo.timeout"
    )


async def test_drift_warned_once(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    reset_drift_warnings()
    body = json.loads(fixture("ipinfo_free.json"))
    body["privacy"] = "vpn"
    provider.queue(ADDRESS, Reply(200, json.dumps(body)))
    source = provider.source()

    first = await source.lookup(ip())
    await source.lookup(ip())

    assert first.tags == ()
    assert "privacy" not in first.context
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "source=ipinfo field privacy has an unexpected value ('vpn'); it is ignored. "
        "IPinfo may have changed its API"
    ]


async def test_token_never_logged(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider.queue(
        ADDRESS,
        Reply(200, fixture("ipinfo_free.json")),
        Reply(403, b'{"error": "Token ' + TOKEN.encode() + b' is unknown"}'),
    )
    source = provider.source()
    messages = []

    for _ in range(2):
        try:
            await source.lookup(ip())
        except SourceError as exc:
            messages.append(str(exc))

    assert messages == [
        "ipinfo: the API key was rejected (status 403: Token *** is unknown); "
        "check IOCSCOPE_IPINFO_API_KEY"
    ]
    assert TOKEN not in caplog.text
    for record in caplog.records:
        assert TOKEN not in repr(record.args)
    assert TOKEN not in repr(source)


async def test_create_tokenless(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    settings = settings_from_mapping({"sources": {"ipinfo": {"base_url": provider.base_url}}})
    provider.queue(ADDRESS, Reply(200, fixture("ipinfo_free.json")))
    source = create(SourceDeps(settings=settings, http=provider.client, feeds=cast(Any, None)))

    result = await source.lookup(ip())

    assert source.meta is META
    assert result.found is True
    [received] = provider.requests(ADDRESS)
    assert "authorization" not in received.headers


def test_meta() -> None:
    assert META.name == "ipinfo"
    assert META.kind is SourceKind.CONTEXT
    assert META.types == frozenset({IndicatorType.IPV4, IndicatorType.IPV6})
    assert META.needs_key is False
    assert META.weight == 0.0


@pytest.mark.corpus
@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_answer(provider: Provider, name: str) -> None:
    payload = json.loads(corpus_path("api-responses", "ipinfo", name).read_text("utf-8"))
    # wtfis_* files store the body under the queried address.
    body = payload if "ip" in payload else next(iter(payload.values()))
    provider.queue(body["ip"], Reply(200, json.dumps(body)))

    result = await provider.source().lookup(ip(body["ip"]))

    assert result.found is True
    assert result.flagged is False
    assert result.context["country_iso"] == body["country"]
    assert result.context["asn"].startswith("AS")
    privacy = body.get("privacy", {})
    expected = tuple(flag for flag in ipinfo.PRIVACY_FLAGS if privacy.get(flag) is True)
    assert result.tags == expected
