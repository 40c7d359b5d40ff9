"""The AlienVault OTX source against a real replay server on 127.0.0.1."""

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
from iocscope.sources.otx import META, OtxSource, create, indicator_path, pulse_weight
from tests.sources.support import RecordedSleep, deps, fixture, raises_exactly
from tests.support.corpus import CORPUS, corpus_path
from tests.support.replay import Received, ReplayServer, Reply

KEY = "otx-test-key-9f41d7a2c6"
KEY_ENV = "IOCSCOPE_OTX_API_KEY"
RECORDED = sorted(path.name for path in (CORPUS / "api-responses" / "otx").glob("*.json"))
PREFIXES = itertools.count()
ADDRESS = "203.0.113.7"
IP_PATH = f"/api/v1/indicators/IPv4/{ADDRESS}/general"
NOW = datetime(2024, 12, 1, tzinfo=UTC)  # the fixtures' pulses are dated 2020-2024


def make(kind: IndicatorType, value: str) -> Indicator:
    return Indicator(type=kind, value=value, original=value, display=value)


def ipv4(value: str = ADDRESS) -> Indicator:
    return make(IndicatorType.IPV4, value)


@dataclass(frozen=True)
class Provider:
    """A fake OTX under a path prefix of its own on the shared replay server."""

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

    def source(self, now: datetime = NOW, **options: Any) -> OtxSource:
        options.setdefault("base_url", self.base_url)
        return OtxSource(self.client, SecretStr(KEY), sleep=self.sleep, now=lambda: now, **options)


@pytest.fixture
def provider(server: ReplayServer, client: httpx.AsyncClient) -> Provider:
    return Provider(server, f"/otx{next(PREFIXES)}", client, RecordedSleep())


async def test_recent_pulses_flag(provider: Provider) -> None:
    provider.queue(IP_PATH, Reply(200, fixture("otx_ip_pulses.json")))

    result = await provider.source().lookup(ipv4())

    # Two pulses from 2024 count 1 each, the 2023 one 0.5, the 2020 one 0.
    assert result.source == "otx"
    assert result.status is Status.OK
    assert result.found is True
    assert result.flagged is True
    assert result.benign is False
    assert result.confidence == 50
    assert result.categories == ("Example Group", "Mirai")
    assert result.tags == ("ssh", "brute force", "honeypot", "scanner")
    assert result.first_seen == datetime(2020, 1, 1, tzinfo=UTC)
    assert result.last_seen == datetime(2024, 5, 20, 10, 30, tzinfo=UTC)
    assert result.reference == f"https://otx.alienvault.com/indicator/ip/{ADDRESS}"
    assert result.summary == "in 4 pulses, which count 2.5 after weighting by age"
    assert result.context == {"pulse_count": 4, "weighted_pulses": 2.5}


async def test_old_pulses_do_not_flag(provider: Provider) -> None:
    provider.queue(IP_PATH, Reply(200, fixture("otx_ip_pulses.json")))
    later = datetime(2026, 1, 1, tzinfo=UTC)

    result = await provider.source(now=later).lookup(ipv4())

    # In 2026 the 2024 pulses are half weight and the others count nothing.
    assert result.flagged is False
    assert result.found is False
    assert result.confidence == 20
    assert result.tags == ("ssh", "brute force", "honeypot")
    assert result.summary == "in 4 pulses, which count 1 after weighting by age"


@pytest.mark.parametrize(
    ("modified", "weight"),
    [
        (datetime(2024, 11, 30, tzinfo=UTC), 1.0),
        (datetime(2023, 12, 2, tzinfo=UTC), 1.0),
        (datetime(2023, 11, 30, tzinfo=UTC), 0.5),
        (datetime(2022, 12, 2, tzinfo=UTC), 0.5),
        (datetime(2022, 11, 30, tzinfo=UTC), 0.0),
        (None, 0.5),
    ],
    ids=["fresh", "364-days", "366-days", "729-days", "731-days", "no-date"],
)
def test_pulse_weight(modified: datetime | None, weight: float) -> None:
    assert pulse_weight(modified, NOW) == weight


async def test_threshold(provider: Provider) -> None:
    provider.queue(IP_PATH, Reply(200, fixture("otx_ip_pulses.json")))

    result = await provider.source(threshold=3).lookup(ipv4())

    assert result.flagged is False


async def test_unlisted_pulses_count_half(provider: Provider) -> None:
    body = json.loads(fixture("otx_ip_pulses.json"))
    body["pulse_info"]["count"] = 10  # six pulses left out of the list
    provider.queue(IP_PATH, Reply(200, json.dumps(body)))

    result = await provider.source().lookup(ipv4())

    assert result.context == {"pulse_count": 10, "weighted_pulses": 5.5}
    assert result.confidence == 100


async def test_no_pulses(provider: Provider) -> None:
    path = "/api/v1/indicators/domain/docs.example/general"
    provider.queue(path, Reply(200, fixture("otx_domain_clean.json")))

    result = await provider.source().lookup(make(IndicatorType.DOMAIN, "docs.example"))

    assert result.found is False
    assert result.flagged is False
    assert result.confidence == 0
    assert result.summary == "in no pulse"
    assert result.first_seen is None


async def test_allowlisted_is_benign_hint(provider: Provider) -> None:
    path = "/api/v1/indicators/domain/cdn.example/general"
    provider.queue(path, Reply(200, fixture("otx_domain_allowlisted.json")))

    result = await provider.source().lookup(make(IndicatorType.DOMAIN, "cdn.example"))

    assert result.found is True
    assert result.benign is True
    assert result.flagged is False
    assert result.summary == (
        "in 1 pulse, which count 1 after weighting by age; "
        "marked as a false positive or allowlisted by OTX"
    )


async def test_false_positive_is_benign_hint(provider: Provider) -> None:
    body = json.loads(fixture("otx_domain_clean.json"))
    body["false_positive"] = [{"assessment": "accepted", "report_date": "2024-01-01"}]
    path = "/api/v1/indicators/domain/docs.example/general"
    provider.queue(path, Reply(200, json.dumps(body)))

    result = await provider.source().lookup(make(IndicatorType.DOMAIN, "docs.example"))

    assert result.benign is True


@pytest.mark.parametrize(
    ("kind", "value", "path"),
    [
        (IndicatorType.IPV6, "2001:db8::7", "IPv6/2001:db8::7"),
        (IndicatorType.DOMAIN, "bad.example", "domain/bad.example"),
        (
            IndicatorType.URL,
            "http://bad.example/a/b?c=1#x",
            "url/http%3A%2F%2Fbad.example%2Fa%2Fb%3Fc%3D1%23x",
        ),
        (
            IndicatorType.MD5,
            "0cc175b9c0f1b6a831c399e269772661",
            "file/0cc175b9c0f1b6a831c399e269772661",
        ),
        (IndicatorType.SHA256, "b" * 64, "file/" + "b" * 64),
    ],
    ids=["ipv6", "domain", "url", "md5", "sha256"],
)
async def test_indicator_paths(
    provider: Provider, kind: IndicatorType, value: str, path: str
) -> None:
    indicator = make(kind, value)
    provider.queue(
        f"/api/v1/indicators/{path}/general", Reply(200, fixture("otx_domain_clean.json"))
    )

    result = await provider.source().lookup(indicator)

    assert indicator_path(indicator) == path
    assert result.status is Status.OK
    assert len(provider.requests(f"/api/v1/indicators/{path}/general")) == 1


async def test_key_only_in_header(provider: Provider) -> None:
    provider.queue(IP_PATH, Reply(200, fixture("otx_ip_pulses.json")))

    await provider.source().lookup(ipv4())

    [received] = provider.requests(IP_PATH)
    assert received.headers["x-otx-api-key"] == KEY
    assert received.query == {}


async def test_unknown_indicator(provider: Provider) -> None:
    provider.queue(IP_PATH, Reply(404, fixture("otx_not_found.json")))

    result = await provider.source().lookup(ipv4())

    assert result.status is Status.OK
    assert result.found is False
    assert result.summary == "unknown to OTX"


HTML = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"
HINT = "check IOCSCOPE_OTX_API_KEY"


@pytest.mark.parametrize(
    ("reply", "error", "message", "attempts"),
    [
        (
            Reply(403, b'{"detail": "Authentication credentials were not provided."}'),
            AuthenticationError,
            "otx: the API key was rejected "
            f"(status 403: Authentication credentials were not provided.); {HINT}",
            1,
        ),
        (
            Reply(400, b'{"detail": "Invalid IPv4 address"}'),
            BadResponseError,
            "otx: rejected 203.0.113.7 as invalid input (status 400: Invalid IPv4 address)",
            1,
        ),
        (
            Reply(429, b'{"detail": "Request was throttled."}', {"Retry-After": "2"}),
            RateLimitedError,
            "otx: rate limited (status 429: Request was throttled.) after 3 attempts; "
            "retry after 2 s",
            3,
        ),
        (
            Reply(502, b"<html>Bad gateway</html>", content_type="text/html"),
            BadResponseError,
            "otx: server error (status 502) after 3 attempts",
            3,
        ),
        (
            Reply(404, HTML, content_type="text/html"),
            BadResponseError,
            "otx: returned an HTML page instead of JSON (status 404); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(404, b'{"detail": "Endpoint retired"}'),
            BadResponseError,
            "otx: unexpected response (status 404: Endpoint retired)",
            1,
        ),
        (
            Reply(200, HTML, content_type="text/html"),
            BadResponseError,
            "otx: returned an HTML page instead of JSON (status 200); "
            "the provider may be showing a challenge page",
            1,
        ),
        (
            Reply(200, fixture("otx_ip_pulses.json")[:300]),
            BadResponseError,
            "otx: returned a body that is not valid JSON (status 200, 300 bytes)",
            1,
        ),
        (
            Reply(200, b'{"indicator": "203.0.113.7", "type": "IPv4"}'),
            BadResponseError,
            "otx: returned a response in an unexpected format (pulse_info: Field required)",
            1,
        ),
        (
            Reply(200, b'{"pulse_info": {"pulses": []}}'),
            BadResponseError,
            "otx: returned a response in an unexpected format (pulse_info.count: Field required)",
            1,
        ),
        (
            Reply(200, b"[]"),
            BadResponseError,
            "otx: returned a response in an unexpected format (a JSON list, not an object)",
            1,
        ),
    ],
    ids=[
        "403",
        "400",
        "429",
        "502",
        "404-html",
        "404-other-json",
        "html",
        "truncated",
        "no-pulse-info",
        "no-count",
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

    await raises_exactly(provider.source().lookup(ipv4()), error, message)
    assert len(provider.requests(IP_PATH)) == attempts


async def test_rate_limit_then_success(provider: Provider) -> None:
    provider.queue(
        IP_PATH,
        Reply(429, b"{}", {"Retry-After": "1"}),
        Reply(200, fixture("otx_ip_pulses.json")),
    )

    result = await provider.source().lookup(ipv4())

    assert result.flagged is True
    assert provider.sleep.waits == [1.0]


async def test_timeout(provider: Provider) -> None:
    provider.queue(IP_PATH, Reply(200, fixture("otx_ip_pulses.json"), delay=1.0))

    with pytest.raises(SourceTimeoutError) as info:
        await provider.source(timeout=0.2).lookup(ipv4())

    assert str(info.value) == (
        "otx: no response within 0.2 s after 1 attempt; "
        "check the network or raise sources.otx.timeout"
    )


async def test_drift_warned_once(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    reset_drift_warnings()
    body = json.loads(fixture("otx_ip_pulses.json"))
    body["pulse_info"]["pulses"].append("not a pulse")
    provider.queue(IP_PATH, Reply(200, json.dumps(body)))
    source = provider.source()

    first = await source.lookup(ipv4())
    await source.lookup(ipv4())

    assert first.flagged is True
    assert first.context == {"pulse_count": 4, "weighted_pulses": 2.5}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "source=otx field pulse_info.pulses has an unexpected value ('not a pulse'); "
        "it is ignored. OTX may have changed its API"
    ]


async def test_key_never_logged(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider.queue(
        IP_PATH,
        Reply(200, fixture("otx_ip_pulses.json")),
        Reply(403, b'{"detail": "Key ' + KEY.encode() + b' is invalid"}'),
    )
    source = provider.source()
    messages = []

    for _ in range(2):
        try:
            await source.lookup(ipv4())
        except SourceError as exc:
            messages.append(str(exc))

    assert messages == [f"otx: the API key was rejected (status 403: Key *** is invalid); {HINT}"]
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
        "AlienVault OTX needs an API key: set IOCSCOPE_OTX_API_KEY or sources.otx.api_key_file"
    )


async def test_create_from_env(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    settings = settings_from_mapping({"sources": {"otx": {"base_url": provider.base_url}}})
    provider.queue(IP_PATH, Reply(200, fixture("otx_domain_clean.json")))

    source = create(deps(settings, provider.client))
    result = await source.lookup(ipv4())

    assert source.meta is META
    assert result.status is Status.OK
    [received] = provider.requests(IP_PATH)
    assert received.headers["x-otx-api-key"] == KEY


def test_meta() -> None:
    assert META.name == "otx"
    assert META.kind is SourceKind.API
    assert IndicatorType.SHA512 not in META.types
    assert META.needs_key is True
    assert META.weight < Settings().scoring.strong_weight


@pytest.mark.corpus
@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_answer(provider: Provider, name: str) -> None:
    body = json.loads(corpus_path("api-responses", "otx", name).read_text("utf-8"))
    kinds = {"IPv4": IndicatorType.IPV4, "domain": IndicatorType.DOMAIN, "md5": IndicatorType.MD5}
    indicator = make(kinds[body["type"]], body["indicator"])
    path = f"/api/v1/indicators/{indicator_path(indicator)}/general"
    provider.queue(path, Reply(200, json.dumps(body)))
    # The recorded pulses date from mid-2025; a month later they are all fresh.
    recorded_at = datetime(2025, 8, 1, tzinfo=UTC)

    result = await provider.source(now=recorded_at).lookup(indicator)

    count = body["pulse_info"]["count"]
    assert result.context["pulse_count"] == count
    assert result.flagged is (count >= 2)
    assert result.last_seen is not None
    assert result.last_seen.year == 2025
