from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from iocscope.config import Settings
from iocscope.errors import SourceUnavailableError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import SourceKind, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.feeds.catalogue import FEEDS, FEEDS_BY_NAME, FeedSpec
from iocscope.sources.feeds.source import FeedSource, create_feed_source, feed_meta
from iocscope.sources.feeds.store import FeedStore, feed_dir

FIXTURES = Path(__file__).parent / "fixtures"
PLACED = {
    "ipsum": ("ipsum.txt", "ipsum.txt"),
    "feodo": ("feodo_ipblocklist.json", "ipblocklist.json"),
    "spamhaus_drop": ("spamhaus_drop.txt", "drop_v4.json"),
    "openphish": ("openphish.txt", "feed.txt"),
    "urlhaus_hosts": ("urlhaus_hostfile.txt", "hostfile.txt"),
    "urlhaus_online": ("urlhaus_csv_online.csv", "csv_online.csv"),
    "misp_cdn_cloud": ("misp_cidr.json", "example.json"),
    "misp_top_sites": ("misp_hostname.json", "tranco10k.json"),
    "misp_empty_hashes": ("misp_hashes.json", "empty-hashes.json"),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeedStore:
    data_dir = tmp_path_factory.mktemp("data")
    for feed, (fixture, filename) in PLACED.items():
        target = feed_dir(data_dir, feed) / filename
        target.parent.mkdir(parents=True)
        shutil.copyfile(FIXTURES / fixture, target)
    return FeedStore.load(data_dir)


def indicator(kind: IndicatorType, value: str) -> Indicator:
    return Indicator(type=kind, value=value, original=value, display=value)


async def lookup(store: FeedStore, feed: str, kind: IndicatorType, value: str) -> SourceResult:
    return await FeedSource(FEEDS_BY_NAME[feed], store).lookup(indicator(kind, value))


def test_meta_of_blocklist() -> None:
    meta = feed_meta(FEEDS_BY_NAME["ipsum"])
    assert meta.kind is SourceKind.FEED
    assert meta.needs_key is False
    assert meta.types == frozenset({IndicatorType.IPV4, IndicatorType.IPV6})
    assert meta.weight == 0.9
    assert meta.benign_only is False
    assert meta.reference == "https://github.com/stamparm/ipsum"


def test_meta_of_allowlist() -> None:
    meta = feed_meta(FEEDS_BY_NAME["misp_public_dns"])
    assert meta.benign_only is True
    assert meta.licence.startswith("MISP warning lists: CC0 1.0")


async def test_ipsum_hit(store: FeedStore) -> None:
    result = await lookup(store, "ipsum", IndicatorType.IPV4, "198.51.100.11")
    assert result.status is Status.OK
    assert result.found is True
    assert result.flagged is True
    assert result.benign is False
    assert result.confidence == 85
    assert result.categories == ("malicious_activity",)
    assert result.summary == "listed by 6 of the IPsum blocklists"
    assert result.context == {"entry": "198.51.100.11", "match": "exact"}


async def test_not_listed(store: FeedStore) -> None:
    result = await lookup(store, "ipsum", IndicatorType.IPV4, "198.51.100.250")
    assert result.status is Status.OK
    assert result.found is False
    assert result.flagged is False
    assert result.summary == "not listed by IPsum"


async def test_network_hit(store: FeedStore) -> None:
    result = await lookup(store, "spamhaus_drop", IndicatorType.IPV6, "2001:db8:abcd:1::5")
    assert result.flagged is True
    assert result.confidence == 90
    assert result.summary == "listed by Spamhaus DROP (network 2001:db8:abcd::/48): SBL000104"


async def test_feodo_metadata(store: FeedStore) -> None:
    result = await lookup(store, "feodo", IndicatorType.IPV4, "198.51.100.21")
    assert result.confidence == 80
    assert result.tags == ("pikabot",)
    assert result.categories == ("botnet_c2",)
    assert result.last_seen == datetime(2024, 2, 20, tzinfo=UTC)
    assert result.summary == "listed by abuse.ch Feodo Tracker: Pikabot C2 on port 8080, offline"


async def test_url_exact(store: FeedStore) -> None:
    result = await lookup(
        store, "openphish", IndicatorType.URL, "http://phish.example.net/verify?id=7"
    )
    assert result.flagged is True
    assert result.categories == ("phishing",)
    assert result.summary == "listed by OpenPhish community feed"


async def test_urlhaus_reference(store: FeedStore) -> None:
    url = "http://malware-host.example.com/bins/x86"
    result = await lookup(store, "urlhaus_online", IndicatorType.URL, url)
    assert result.reference == "https://urlhaus.abuse.ch/url/3000001/"
    assert result.tags == ("elf", "mirai")


@pytest.mark.parametrize(
    ("kind", "value", "summary"),
    [
        (IndicatorType.DOMAIN, "dropper.example.net", "listed by abuse.ch URLhaus hosts"),
        (
            IndicatorType.URL,
            "https://dropper.example.net/other/path",
            "listed by abuse.ch URLhaus hosts (host dropper.example.net)",
        ),
        (
            IndicatorType.URL,
            "http://203.0.113.44/x",
            "listed by abuse.ch URLhaus hosts (host 203.0.113.44)",
        ),
    ],
)
async def test_host_feed(store: FeedStore, kind: IndicatorType, value: str, summary: str) -> None:
    result = await lookup(store, "urlhaus_hosts", kind, value)
    assert result.flagged is True
    assert result.summary == summary


async def test_host_feed_exact_names_only(store: FeedStore) -> None:
    result = await lookup(store, "urlhaus_hosts", IndicatorType.DOMAIN, "x.dropper.example.net")
    assert result.found is False


async def test_allowlist_hit_is_benign(store: FeedStore) -> None:
    result = await lookup(store, "misp_cdn_cloud", IndicatorType.IPV4, "192.0.2.77")
    assert result.found is True
    assert result.benign is True
    assert result.flagged is False
    assert result.categories == ("shared_infrastructure",)
    assert result.summary == (
        "allowlisted by MISP warning lists: CDN and cloud ranges (network 192.0.2.0/24): "
        "in the MISP warning list 'Example CDN ranges'"
    )


@pytest.mark.parametrize(
    ("value", "found"),
    [("example.com", True), ("www.example.com", False), ("user-pages.example.com", False)],
)
async def test_top_sites_exact_only(store: FeedStore, value: str, found: bool) -> None:
    result = await lookup(store, "misp_top_sites", IndicatorType.DOMAIN, value)
    assert result.found is found


async def test_empty_hash(store: FeedStore) -> None:
    result = await lookup(
        store, "misp_empty_hashes", IndicatorType.MD5, "d41d8cd98f00b204e9800998ecf8427e"
    )
    assert result.benign is True
    assert result.confidence == 100


async def test_unsupported_type_is_skipped(store: FeedStore) -> None:
    result = await lookup(store, "ipsum", IndicatorType.DOMAIN, "example.com")
    assert result.status is Status.SKIPPED
    assert result.summary == "IPsum lists no domain indicators"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def test_factory_builds_loaded_feed(store: FeedStore, http: httpx.AsyncClient) -> None:
    deps = SourceDeps(settings=Settings(), http=http, feeds=store)
    source = create_feed_source(FEEDS_BY_NAME["ipsum"], deps)
    assert source.meta.name == "ipsum"


async def test_factory_rejects_unsynced_feed(tmp_path: Path, http: httpx.AsyncClient) -> None:
    deps = SourceDeps(settings=Settings(), http=http, feeds=FeedStore.empty(tmp_path))
    with pytest.raises(SourceUnavailableError) as caught:
        create_feed_source(FEEDS_BY_NAME["tor_exits"], deps)
    assert str(caught.value) == (
        "feed tor_exits is not synced: run `iocscope feeds sync` "
        "or `iocscope feeds import tor_exits FILE`"
    )


def test_catalogue_names_are_unique() -> None:
    assert len({spec.name for spec in FEEDS}) == len(FEEDS)


@pytest.mark.parametrize("spec", FEEDS, ids=lambda spec: spec.name)
def test_catalogue_entries_are_complete(spec: FeedSpec) -> None:
    assert 0.0 <= spec.weight <= 1.0
    assert 0 <= spec.confidence <= 100
    assert spec.licence
    assert spec.reference.startswith("https://")
    assert all(file.url.startswith("https://") for file in spec.files)
    assert len({file.filename for file in spec.files}) == len(spec.files)
