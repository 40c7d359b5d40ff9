"""Nothing private leaves the host, whatever sources are enabled.

Every API source of the registry is pointed at one replay server on
127.0.0.1 with a key configured, so each of them would call it; the tests
then check what the server received.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iocscope.config import Settings, settings_from_mapping
from iocscope.engine.pipeline import Engine
from iocscope.indicators.scope import IPV4_RANGES, IPV6_RANGES
from iocscope.runtime import open_runtime
from iocscope.sources.contract import SourceKind
from iocscope.sources.registry import catalogue
from tests.support.replay import ReplayServer, replay_server

# Every source that may call out: API sources and online context sources.
# GeoIP reads a local database and has no address to send anything to.
OFFLINE_CONTEXT = {"geoip"}
API_NAMES = [
    entry.meta.name
    for entry in catalogue()
    if entry.meta.kind is not SourceKind.FEED and entry.meta.name not in OFFLINE_CONTEXT
]

NON_PUBLIC_VALUES = [
    "10.1.2.3",
    "172.18.0.1",
    "192.168.80.13",
    "100.64.1.20",
    "169.254.169.254",
    "127.0.0.1",
    "fe80::1%eth0",
    "fd12:3456::1",
    "::ffff:192.168.1.1",
    "2002:c0a8:101::1",
    "fs01.corp.internal",
    "printer.local",
    "nas.home.arpa",
    "intranet",
    "wiki.corp.example.org",
    "198.51.100.0",
    "http://10.0.0.5/admin",
    "https://git.corp.example.org/repo",
    "http://[fd00::1]:8080/x",
    "alice@corp.example.org",
    "8.8.4.4",
]


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with replay_server() as running:
        yield running


def all_sources_at(server: ReplayServer, tmp_path: Path) -> Settings:
    sources = {name: {"base_url": server.base_url} for name in API_NAMES}
    return settings_from_mapping(
        {
            "data_dir": str(tmp_path / "data"),
            "sources": sources,
            "scope": {
                "internal_domains": ["corp.example.org"],
                "internal_networks": ["8.8.4.0/24"],
            },
        }
    )


@asynccontextmanager
async def engine_with_every_source(
    server: ReplayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Engine]:
    for name in API_NAMES:
        monkeypatch.setenv(f"IOCSCOPE_{name.upper()}_API_KEY", "PLACEHOLDER-KEY-0000")
    async with open_runtime(all_sources_at(server, tmp_path)) as runtime:
        disabled = [
            s.meta.name for s in runtime.states if s.meta.name in API_NAMES and not s.enabled
        ]
        assert disabled == [], f"API sources not built, so not tested: {disabled}"
        yield runtime.engine


def test_every_api_source_is_covered() -> None:
    assert "abuseipdb" in API_NAMES
    assert "internetdb" in API_NAMES


@pytest.mark.parametrize("value", NON_PUBLIC_VALUES)
async def test_non_public_value_never_sent(
    value: str, server: ReplayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine_with_every_source(server, tmp_path, monkeypatch) as engine:
        enrichment = await engine.enrich_value(value)
    assert not enrichment.scope.is_public
    assert server.received == []


async def test_url_credentials_never_sent(
    server: ReplayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine_with_every_source(server, tmp_path, monkeypatch) as engine:
        await engine.enrich_value("https://admin:Hunter2Secret@phish.example-shop.net/login")
    sent = b" ".join(
        request.path.encode() + str(request.query).encode() + request.body
        for request in server.received
    )
    assert server.received, "no source was asked: the test would prove nothing"
    assert b"Hunter2Secret" not in sent
    assert b"admin:" not in sent


async def test_public_value_reaches_sources(
    server: ReplayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine_with_every_source(server, tmp_path, monkeypatch) as engine:
        await engine.enrich_value("104.16.0.1")
    assert len({request.path for request in server.received}) >= 2


def non_public_addresses() -> st.SearchStrategy[str]:
    networks = [entry.network for entry in (*IPV4_RANGES, *IPV6_RANGES)]

    def pick(network: ipaddress.IPv4Network | ipaddress.IPv6Network, offset: int) -> str:
        return str(network[offset % network.num_addresses])

    return st.builds(pick, st.sampled_from(networks), st.integers(min_value=0))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=non_public_addresses())
async def test_special_ranges_never_sent(
    value: str, server: ReplayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine_with_every_source(server, tmp_path, monkeypatch) as engine:
        enrichment = await engine.enrich_value(value)
    if enrichment.scope.is_public:
        pytest.fail(f"{value} from a special-purpose range was classified public")
    assert server.received == []
