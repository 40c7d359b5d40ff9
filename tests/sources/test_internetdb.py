"""The Shodan InternetDB source against a real replay server on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest

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
from iocscope.sources.internetdb import META, InternetDbSource, create
from tests.sources.support import RecordedSleep, fixture, raises_exactly
from tests.support.corpus import CORPUS, corpus_path
from tests.support.replay import Received, ReplayServer, Reply

RECORDED = sorted(path.name for path in (CORPUS / "api-responses" / "shodan").glob("*.json"))
PREFIXES = itertools.count()
ADDRESS = "203.0.113.66"


def ipv4(value: str) -> Indicator:
    return Indicator(type=IndicatorType.IPV4, value=value, original=value, display=value)


@dataclass(frozen=True)
class Provider:
    """A fake InternetDB under a path prefix of its own on the shared replay server."""

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

    def source(self, **options: Any) -> InternetDbSource:
        options.setdefault("base_url", self.base_url)
        return InternetDbSource(self.client, sleep=self.sleep, **options)


@pytest.fixture
def provider(server: ReplayServer, client: httpx.AsyncClient) -> Provider:
    return Provider(server, f"/idb{next(PREFIXES)}", client, RecordedSleep())


async def test_c2_tag_flags(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(200, fixture("internetdb_c2.json")))

    result = await provider.source().lookup(ipv4(ADDRESS))

    assert result.source == "internetdb"
    assert result.status is Status.OK
    assert result.found is True
    assert result.flagged is True
    assert result.benign is False
    assert result.confidence == 60
    assert result.categories == ("c2",)
    assert result.tags == ("c2", "self-signed")
    assert result.reference == f"https://www.shodan.io/host/{ADDRESS}"
    assert result.summary == (
        "open ports 22, 443, 8443; 1 known vulnerability; tags c2, self-signed"
    )
    assert result.context == {
        "ports": [8443, 22, 443],
        "hostnames": [],
        "cpes": ["cpe:/a:openbsd:openssh:8.9"],
        "vulns_count": 1,
    }
    assert result.raw == json.loads(fixture("internetdb_c2.json"))


async def test_request_shape(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(200, fixture("internetdb_c2.json")))

    await provider.source().lookup(ipv4(ADDRESS))

    [received] = provider.requests(ADDRESS)
    assert received.method == "GET"
    assert received.query == {}
    assert received.headers["accept"] == "application/json"
    assert "key" not in received.headers


@pytest.mark.parametrize(
    ("name", "flagged", "benign", "summary"),
    [
        ("internetdb_cdn.json", False, True, "open ports 80, 443; tags cdn"),
        (
            "internetdb_cloud.json",
            False,
            False,
            "open ports 80; 2 known vulnerabilities; tags cloud",
        ),
    ],
    ids=["cdn", "cloud"],
)
async def test_infrastructure_tags(
    provider: Provider, name: str, flagged: bool, benign: bool, summary: str
) -> None:
    address = json.loads(fixture(name))["ip"]
    provider.queue(address, Reply(200, fixture(name)))

    result = await provider.source().lookup(ipv4(address))

    assert result.flagged is flagged
    assert result.benign is benign
    assert result.confidence == 0
    assert result.categories == ()
    assert result.summary == summary


@pytest.mark.parametrize("tag", ["malware", "c2", "compromised", "doublepulsar"])
async def test_flag_tags(provider: Provider, tag: str) -> None:
    body = {
        "ip": ADDRESS,
        "ports": [],
        "hostnames": [],
        "cpes": [],
        "tags": [tag, "cdn"],
        "vulns": [],
    }
    provider.queue(ADDRESS, Reply(200, json.dumps(body)))

    result = await provider.source().lookup(ipv4(ADDRESS))

    assert result.flagged is True
    assert result.benign is False
    assert result.categories == (tag,)
    assert result.summary == f"no open ports seen; tags {tag}, cdn"


async def test_not_seen(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(404, fixture("internetdb_not_found.json")))

    result = await provider.source().lookup(ipv4(ADDRESS))

    assert result.status is Status.OK
    assert result.found is False
    assert result.flagged is False
    assert result.summary == "not seen by Shodan"
    assert len(provider.requests(ADDRESS)) == 1


HTML = b"<!DOCTYPE html><html><head><title>Attention Required!</title></head></html>"


@pytest.mark.parametrize(
    ("reply", "error", "message", "attempts"),
    [
        (
            Reply(404, b'{"detail": "Not Found"}'),
            BadResponseError,
            "internetdb: unexpected response (status 404: Not Found)",
            1,
        ),
        (
            Reply(403, HTML, content_type="text/html"),
            AuthenticationError,
            "internetdb: access was denied (status 403)",
            1,
        ),
        (
            Reply(429, b'{"detail": "Too Many Requests"}', {"Retry-After": "2"}),
            RateLimitedError,
            "internetdb: rate limited (status 429: Too Many Requests) after 3 attempts; "
            "retry after 2 s",
            3,
        ),
        (
            Reply(500, b""),
            BadResponseError,
            "internetdb: server error (status 500) after 3 attempts",
            3,
        ),
        (
            Reply(200, HTML, content_type="text/html"),
            BadResponseError,
            "internetdb: returned an HTML page instead of JSON (status 200); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, fixture("internetdb_c2.json")[:40]),
            BadResponseError,
            "internetdb: returned a body that is not valid JSON (status 200, 40 bytes)",
            1,
        ),
        (
            Reply(200, b'{"ip": "203.0.113.66", "ports": "22"}'),
            BadResponseError,
            "internetdb: returned a response in an unexpected format "
            "(ports: Input should be a valid tuple)",
            1,
        ),
        (
            Reply(200, b"[]"),
            BadResponseError,
            "internetdb: returned a response in an unexpected format (a JSON list, not an object)",
            1,
        ),
    ],
    ids=["404-route", "403", "429", "500", "html", "truncated", "bad-ports", "not-object"],
)
async def test_failure(
    provider: Provider,
    reply: Reply,
    error: type[SourceError],
    message: str,
    attempts: int,
) -> None:
    provider.queue(ADDRESS, reply)

    await raises_exactly(provider.source().lookup(ipv4(ADDRESS)), error, message)
    assert len(provider.requests(ADDRESS)) == attempts


async def test_rate_limit_then_success(provider: Provider) -> None:
    provider.queue(
        ADDRESS,
        Reply(429, b"{}", {"Retry-After": "1"}),
        Reply(200, fixture("internetdb_c2.json")),
    )

    result = await provider.source().lookup(ipv4(ADDRESS))

    assert result.flagged is True
    assert provider.sleep.waits == [1.0]


async def test_timeout(provider: Provider) -> None:
    provider.queue(ADDRESS, Reply(200, fixture("internetdb_c2.json"), delay=1.0))

    with pytest.raises(SourceTimeoutError) as info:
        await provider.source(timeout=0.2).lookup(ipv4(ADDRESS))

    assert str(info.value) == (
        "internetdb: no response within 0.2 s after 1 attempt; "
        "check the network or raise sources.internetdb.timeout"
    )


async def test_create_with_base_url(provider: Provider) -> None:
    settings = settings_from_mapping(
        {"sources": {"internetdb": {"base_url": provider.base_url + "/", "timeout": 3}}}
    )
    provider.queue(ADDRESS, Reply(200, fixture("internetdb_c2.json")))
    feeds = cast(Any, None)  # InternetDB never reads feeds

    source = create(SourceDeps(settings=settings, http=provider.client, feeds=feeds))
    result = await source.lookup(ipv4(ADDRESS))

    assert source.meta is META
    assert result.flagged is True
    assert len(provider.requests(ADDRESS)) == 1


def test_meta() -> None:
    assert META.name == "internetdb"
    assert META.kind is SourceKind.API
    assert META.types == frozenset({IndicatorType.IPV4})
    assert META.needs_key is False


@pytest.mark.corpus
@pytest.mark.parametrize("name", RECORDED)
async def test_host_api_body_rejected(provider: Provider, name: str) -> None:
    # The recorded Shodan bodies come from the keyed host API, whose shape
    # differs from InternetDB's: the source must reject them, not misread them.
    payload = json.loads(corpus_path("api-responses", "shodan", name).read_text("utf-8"))
    body = next(iter(payload.values())) if "ip_str" not in payload else payload
    provider.queue(ADDRESS, Reply(200, json.dumps(body)))

    with pytest.raises(BadResponseError) as info:
        await provider.source().lookup(ipv4(ADDRESS))

    assert str(info.value) == (
        "internetdb: returned a response in an unexpected format (ip: Field required)"
    )
