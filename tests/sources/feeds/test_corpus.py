"""Real published feed files from the shared corpus, read with the matching parser."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.feeds.catalogue import FEEDS_BY_NAME, FeedSpec
from iocscope.sources.feeds.parsers import ParsedFeed, parse_feed
from iocscope.sources.feeds.source import FeedSource
from iocscope.sources.feeds.store import FeedStore, import_feed
from tests.support.corpus import corpus_path

pytestmark = pytest.mark.corpus

# Corpus file -> the feed (by name) or parser format that reads it, and the
# number of rejected lines that file is known to contain.
FEED_FILES: dict[str, tuple[str, int]] = {
    "ipsum/ipsum.txt": ("ipsum", 0),
    "ipsum/levels-3.txt": ("format:ipsum", 0),
    "ipsum/levels-5.txt": ("format:ipsum", 0),
    "firehol/firehol_level1.netset": ("firehol_level1", 0),
    "tor/tor-exit-nodes.lst": ("tor_exits", 0),
    "tor/tor-nodes.lst": ("format:ip_list", 0),
    "abusech/feodo_ipblocklist.csv": ("feodo", 0),
    "abusech/feodo_ipblocklist_sample_intelmq.json": ("feodo", 0),
    "emergingthreats/compromised-ips_via-cps_2026-08.txt": ("et_compromised", 0),
    "emergingthreats/compromised-ips_via-dkscj_2025-06.txt": ("et_compromised", 0),
    "cps-derived/abuse-ch-ipblocklist.txt": ("format:ip_list", 0),
    "cps-derived/alienvault.txt": ("format:ip_list", 0),
    "cps-derived/binarydefense.txt": ("format:ip_list", 0),
    "cps-derived/threatfox.txt": ("format:ip_list", 0),
    "cps-derived/tor-exit.txt": ("format:ip_list", 0),
    "openphish/feed.txt": ("openphish", 0),
    "spamhaus/intelmq_test_drop_2015.txt": ("spamhaus_drop", 0),
    "dshield/intelmq_test_block.txt": ("dshield", 0),
    "misp-warninglists/public-dns-v4.json": ("misp_public_dns", 0),
    "misp-warninglists/public-dns-v6.json": ("misp_public_dns", 0),
    "misp-warninglists/akamai.json": ("misp_cdn_cloud", 0),
    "misp-warninglists/amazon-aws.json": ("misp_cdn_cloud", 0),
    "misp-warninglists/cloudflare.json": ("misp_cdn_cloud", 0),
    "misp-warninglists/fastly.json": ("misp_cdn_cloud", 0),
    "misp-warninglists/google-gcp.json": ("misp_cdn_cloud", 0),
    "misp-warninglists/microsoft-azure.json": ("misp_cdn_cloud", 0),
    "misp-warninglists/microsoft-office365-ip.json": ("misp_cdn_cloud", 0),
    "misp-warninglists/oracle-oci.json": ("misp_cdn_cloud", 0),
    "misp-warninglists/tranco10k.json": ("misp_top_sites", 0),
    # The IPv6 address "3::" and a SHA-224 digest are not hashes iocscope matches.
    "misp-warninglists/empty-hashes.json": ("misp_empty_hashes", 2),
    # Three SHA-224 digests of the EICAR file.
    "misp-warninglists/eicar.com.json": ("format:misp_warninglist", 3),
}
# Every other MISP warning list of the corpus parses without a rejected item.
MISP_OTHERS = (
    "censys-scanning",
    "common-ioc-false-positive",
    "crl-hostname",
    "crl-ip",
    "dynamic-dns",
    "googlebot",
    "ipv6-linklocal",
    "multicast",
    "parking-domain",
    "rfc1918",
    "rfc3849",
    "rfc5735",
    "rfc6598",
    "rfc6761",
    "security-provider-blogpost",
    "shadowserver",
    "shodan-scanning",
    "sinkholes",
    "ti-falsepositives",
    "url-shortener",
    "whats-my-ip",
)
FEED_FILES.update(
    {f"misp-warninglists/{name}.json": ("format:misp_warninglist", 0) for name in MISP_OTHERS}
)
# Files that hold no entries iocscope can match, with the reason.
NO_ENTRIES: dict[str, tuple[str, int]] = {
    # ASN-DROP lists autonomous system numbers, not addresses: both lines are rejected.
    "spamhaus/intelmq_test_asndrop_2015.txt": ("spamhaus_drop", 2),
    # Top-level domains are single labels, which are never matched as hosts.
    "misp-warninglists/tlds.json": ("format:misp_warninglist", 1438),
}
NOT_FEEDS = ("*.md", "*LICENSE*", "maxmind-test/*")


def parse(reader: str, path: Path) -> ParsedFeed:
    text = path.read_text(encoding="utf-8")
    if reader.startswith("format:"):
        return parse_feed(reader.removeprefix("format:"), text)
    return parse_feed(FEEDS_BY_NAME[reader], text)


def test_every_file_is_classified() -> None:
    root = corpus_path("feeds")
    names = {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}
    known = set(FEED_FILES) | set(NO_ENTRIES)
    unclassified = {
        name
        for name in names - known
        if not any(fnmatch.fnmatch(name, pattern) for pattern in NOT_FEEDS)
    }
    assert unclassified == set()


@pytest.mark.parametrize(("name", "reader", "rejected"), [(k, *v) for k, v in FEED_FILES.items()])
def test_corpus_file_parses(name: str, reader: str, rejected: int) -> None:
    parsed = parse(reader, corpus_path("feeds", name))
    assert len(parsed.entries) > 0
    assert parsed.rejected_count == rejected


@pytest.mark.parametrize(("name", "reader", "rejected"), [(k, *v) for k, v in NO_ENTRIES.items()])
def test_corpus_file_without_entries(name: str, reader: str, rejected: int) -> None:
    parsed = parse(reader, corpus_path("feeds", name))
    assert parsed.entries == ()
    assert parsed.rejected_count == rejected


def test_ipsum_keeps_every_address() -> None:
    path = corpus_path("feeds", "ipsum", "ipsum.txt")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line[:1] != "#"]
    assert len(parse("ipsum", path).entries) == len(lines)


def test_firehol_drops_non_public_ranges() -> None:
    parsed = parse("firehol_level1", corpus_path("feeds", "firehol", "firehol_level1.netset"))
    values = {entry.value for entry in parsed.entries}
    assert parsed.dropped_count >= 10
    for bogon in ("0.0.0.0/8", "10.0.0.0/8", "127.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"):
        assert bogon not in values


def ip(value: str) -> Indicator:
    kind = IndicatorType.IPV6 if ":" in value else IndicatorType.IPV4
    return Indicator(type=kind, value=value, original=value, display=value)


def imported(tmp_path: Path, feed: str, *names: str) -> tuple[FeedSpec, FeedStore]:
    for name in names:
        import_feed(tmp_path, feed, corpus_path("feeds", name))
    spec = FEEDS_BY_NAME[feed]
    return spec, FeedStore.load(tmp_path, (spec,))


async def test_firehol_never_flags_private_addresses(tmp_path: Path) -> None:
    spec, store = imported(tmp_path, "firehol_level1", "firehol/firehol_level1.netset")
    source = FeedSource(spec, store)
    for address in ("10.1.2.3", "192.168.1.10", "127.0.0.1", "0.0.0.1", "172.16.5.4"):
        assert (await source.lookup(ip(address))).flagged is False


async def test_cdn_address_is_allowlisted(tmp_path: Path) -> None:
    spec, store = imported(tmp_path, "misp_cdn_cloud", "misp-warninglists/fastly.json")
    result = await FeedSource(spec, store).lookup(ip("151.101.130.137"))
    assert result.benign is True
    assert result.flagged is False
    assert result.context == {"entry": "151.101.0.0/16", "match": "network"}


async def test_ipsum_summary_names_list_count(tmp_path: Path) -> None:
    spec, store = imported(tmp_path, "ipsum", "ipsum/ipsum.txt")
    result = await FeedSource(spec, store).lookup(ip("77.90.185.20"))
    assert result.summary == "listed by 10 of the IPsum blocklists"
    assert result.confidence == 95
