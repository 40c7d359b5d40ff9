"""The MaxMind GeoIP context source over the MaxMind test databases."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from iocscope.config import settings_from_mapping
from iocscope.errors import SourceUnavailableError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import SourceKind, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.geoip import META, GeoipSource, create
from tests.support.corpus import corpus_path


def indicator(value: str) -> Indicator:
    version = ipaddress.ip_address(value).version
    kind = IndicatorType.IPV4 if version == 4 else IndicatorType.IPV6
    return Indicator(type=kind, value=value, original=value, display=value)


def maxmind(name: str) -> Path:
    return corpus_path("feeds", "maxmind-test", name)


def build(geoip: dict[str, str]) -> GeoipSource:
    settings = settings_from_mapping({"geoip": geoip})
    # GeoIP reads local files only: it never uses the HTTP client or the feeds.
    unused = cast(Any, None)
    source = create(SourceDeps(settings=settings, http=unused, feeds=unused))
    assert isinstance(source, GeoipSource)
    return source


@pytest.fixture
def both() -> Iterator[GeoipSource]:
    source = build(
        {
            "asn_db": str(maxmind("GeoLite2-ASN-Test.mmdb")),
            "city_db": str(maxmind("GeoLite2-City-Test.mmdb")),
        }
    )
    yield source
    source.close()


def assert_context_only(result: SourceResult) -> None:
    assert result.source == "geoip"
    assert result.status is Status.OK
    assert result.flagged is False
    assert result.benign is False
    assert result.confidence == 0


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("address", "context", "summary"),
    [
        (
            "216.160.83.56",
            {
                "country_iso": "US",
                "country": "United States",
                "city": "Milton",
                "asn": 209,
                "network": "216.160.64.0/18",
            },
            "Milton, United States; AS209; network 216.160.64.0/18",
        ),
        (
            "81.2.69.160",
            {
                "country_iso": "GB",
                "country": "United Kingdom",
                "city": "London",
                "network": "81.2.69.160/27",
            },
            "London, United Kingdom; network 81.2.69.160/27",
        ),
        (
            "1.0.0.1",
            {"asn": 15169, "as_org": "Google Inc.", "network": "1.0.0.0/24"},
            "AS15169 (Google Inc.); network 1.0.0.0/24",
        ),
        (
            "2001:218::1",
            {"country_iso": "JP", "country": "Japan", "network": "2001:218::/32"},
            "Japan; network 2001:218::/32",
        ),
    ],
    ids=["city-and-asn", "city-only", "asn-only", "ipv6"],
)
async def test_lookup(
    both: GeoipSource, address: str, context: dict[str, Any], summary: str
) -> None:
    result = await both.lookup(indicator(address))

    assert_context_only(result)
    assert result.found is True
    assert result.context == context
    assert result.summary == summary


@pytest.mark.corpus
async def test_address_not_in_databases(both: GeoipSource) -> None:
    result = await both.lookup(indicator("8.8.8.8"))

    assert_context_only(result)
    assert result.found is False
    assert result.context == {}
    assert result.summary == "not in the GeoIP databases"


def source_networks(name: str) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Any]]:
    entries = json.loads(maxmind(name).read_text("utf-8"))
    return [
        (ipaddress.ip_network(network), record)
        for entry in entries
        for network, record in entry.items()
    ]


@pytest.mark.corpus
async def test_asn_database_matches_its_source() -> None:
    source = build({"asn_db": str(maxmind("GeoLite2-ASN-Test.mmdb"))})
    checked = 0

    for network, record in source_networks("GeoLite2-ASN-Test.source.json"):
        result = await source.lookup(indicator(str(network.network_address)))
        # A more specific network listed elsewhere can cover the first address.
        if ipaddress.ip_network(result.context["network"]) != network:
            continue
        checked += 1
        assert result.context["asn"] == record["autonomous_system_number"]
        assert result.context.get("as_org") == record.get("autonomous_system_organization")

    source.close()
    assert checked > 100


@pytest.mark.corpus
async def test_city_database_matches_its_source() -> None:
    source = build({"city_db": str(maxmind("GeoIP2-City-Test.mmdb"))})
    checked = 0

    for network, record in source_networks("GeoIP2-City-Test.source.json"):
        result = await source.lookup(indicator(str(network.network_address)))
        if ipaddress.ip_network(result.context["network"]) != network:
            continue
        checked += 1
        assert result.context.get("country_iso") == record.get("country", {}).get("iso_code")
        assert result.context.get("city") == record.get("city", {}).get("names", {}).get("en")

    source.close()
    assert checked > 100


def test_no_database_configured() -> None:
    with pytest.raises(SourceUnavailableError) as info:
        build({})

    assert str(info.value) == (
        "GeoIP needs a MaxMind database: set geoip.asn_db or geoip.city_db "
        "in the configuration file"
    )


def test_missing_database(tmp_path: Path) -> None:
    missing = tmp_path / "GeoLite2-ASN.mmdb"

    with pytest.raises(SourceUnavailableError) as info:
        build({"asn_db": str(missing)})

    assert str(info.value) == (
        f"GeoIP database {missing} (geoip.asn_db) not found: "
        "download it from MaxMind or correct the path"
    )


@pytest.mark.parametrize(
    "content", [b"", b"not a MaxMind database", b"\xab\xcd\xefMaxMind.com" + b"\x00" * 64]
)
def test_invalid_database(tmp_path: Path, content: bytes) -> None:
    broken = tmp_path / "GeoLite2-City.mmdb"
    broken.write_bytes(content)

    with pytest.raises(SourceUnavailableError) as info:
        build({"city_db": str(broken)})

    assert str(info.value) == (
        f"GeoIP database {broken} (geoip.city_db) is not a valid MaxMind database: "
        "download a fresh copy or correct the path"
    )


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("setting", "database", "database_type", "expected"),
    [
        ("asn_db", "GeoLite2-City-Test.mmdb", "GeoLite2-City", "ASN or ISP"),
        ("city_db", "GeoLite2-ASN-Test.mmdb", "GeoLite2-ASN", "City or Country"),
    ],
)
def test_wrong_database_type(
    setting: str, database: str, database_type: str, expected: str
) -> None:
    path = maxmind(database)

    with pytest.raises(SourceUnavailableError) as info:
        build({setting: str(path)})

    assert str(info.value) == (
        f"GeoIP database {path} (geoip.{setting}) is a {database_type} database; "
        f"expected a database of type {expected}"
    )


@pytest.mark.corpus
@pytest.mark.parametrize("database", ["GeoIP2-ISP-Test.mmdb", "GeoLite2-Country-Test.mmdb"])
def test_accepted_variants(database: str) -> None:
    setting = "asn_db" if "ISP" in database else "city_db"

    source = build({setting: str(maxmind(database))})

    assert source.meta is META
    source.close()


def test_meta() -> None:
    assert META.name == "geoip"
    assert META.kind is SourceKind.CONTEXT
    assert META.types == frozenset({IndicatorType.IPV4, IndicatorType.IPV6})
    assert META.needs_key is False
    assert META.weight == 0.0
