from __future__ import annotations

from datetime import UTC, datetime

import pytest

from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.feeds.index import (
    EntryMeta,
    FeedIndex,
    IpIndex,
    IpKey,
    ValueIndex,
    merge_meta,
    normalise_domain,
    normalise_hash,
    normalise_url,
    parse_ip_key,
    url_host,
)

META = EntryMeta(detail="listed")


def indicator(kind: IndicatorType, value: str, host: str | None = None) -> Indicator:
    return Indicator(type=kind, value=value, original=value, display=value, host=host)


@pytest.fixture
def b39_index() -> IpIndex:
    index = IpIndex()
    for line in ("198.51.100.0/22", "203.0.113.7", "2001:db8:abcd::/48"):
        index.add(line, META)
    return index


@pytest.mark.parametrize(
    ("address", "entry"),
    [
        ("198.51.101.20", "198.51.100.0/22"),
        ("198.51.100.0", "198.51.100.0/22"),
        ("198.51.103.255", "198.51.100.0/22"),
        ("198.51.104.1", None),
        ("198.51.99.255", None),
        ("203.0.113.7", "203.0.113.7"),
        ("203.0.113.8", None),
        ("2001:db8:abcd:1::5", "2001:db8:abcd::/48"),
        ("2001:db8:abce::1", None),
        ("::ffff:198.51.101.20", "198.51.100.0/22"),
    ],
)
def test_b39_any_prefix_length(b39_index: IpIndex, address: str, entry: str | None) -> None:
    found = b39_index.match(address)
    assert (found.entry if found else None) == entry


def test_longest_prefix_wins() -> None:
    index = IpIndex()
    wide, narrow, exact = EntryMeta(detail="/16"), EntryMeta(detail="/24"), EntryMeta(detail="/32")
    index.add("198.51.0.0/16", wide)
    index.add("198.51.100.0/24", narrow)
    index.add("198.51.100.9", exact)
    assert index.match("198.51.100.9") == index.match("198.51.100.9/32")
    found = [index.match(address) for address in ("198.51.100.9", "198.51.100.8", "198.51.7.1")]
    assert [match.meta if match else None for match in found] == [exact, narrow, wide]


def test_versions_do_not_mix() -> None:
    index = IpIndex()
    index.add("0.0.0.0/0", META)
    assert index.match("2001:db8::1") is None
    assert index.match("192.0.2.1") is not None


def test_invalid_lookup_matches_nothing(b39_index: IpIndex) -> None:
    assert b39_index.match("not-an-ip") is None


def test_add_rejects_invalid() -> None:
    with pytest.raises(ValueError, match="is not an IP address or network"):
        IpIndex().add("198.51.100", META)


def test_len_counts_addresses_and_networks(b39_index: IpIndex) -> None:
    assert len(b39_index) == 3


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("198.51.100.7", IpKey(4, 0xC6336407, 32)),
        ("198.51.100.7/24", IpKey(4, 0xC6336400, 24)),
        ("0.0.0.0/0", IpKey(4, 0, 0)),
        ("::ffff:198.51.100.7", IpKey(4, 0xC6336407, 32)),
        ("2001:db8::/32", IpKey(6, 0x20010DB8 << 96, 32)),
    ],
)
def test_parse_ip_key(text: str, key: IpKey) -> None:
    assert parse_ip_key(text) == key


@pytest.mark.parametrize(
    "text",
    [
        "198.51.100",
        "198.051.100.7",
        "198.51.100.7/",
        "198.51.100.7/33",
        "2001:db8::/129",
        "fe80::1%eth0",
        "",
    ],
)
def test_parse_ip_key_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not an IP address|invalid prefix length"):
        parse_ip_key(text)


def test_merge_keeps_strongest_and_widest() -> None:
    first = EntryMeta(
        confidence=40,
        tags=("a",),
        first_seen=datetime(2024, 1, 2, tzinfo=UTC),
        last_seen=datetime(2024, 1, 3, tzinfo=UTC),
    )
    second = EntryMeta(
        confidence=80,
        tags=("b", "a"),
        first_seen=datetime(2024, 1, 1, tzinfo=UTC),
        last_seen=datetime(2024, 1, 2, tzinfo=UTC),
    )
    merged = merge_meta(first, second)
    assert merged.confidence == 80
    assert merged.tags == ("a", "b")
    assert merged.first_seen == datetime(2024, 1, 1, tzinfo=UTC)
    assert merged.last_seen == datetime(2024, 1, 3, tzinfo=UTC)


def test_duplicate_address_merges() -> None:
    index = IpIndex()
    index.add("198.51.100.1", EntryMeta(confidence=20))
    index.add("198.51.100.1", EntryMeta(confidence=70))
    found = index.match("198.51.100.1")
    assert found is not None
    assert found.meta.confidence == 70


@pytest.mark.parametrize(
    ("host", "subdomains", "entry"),
    [
        ("example.com", False, "example.com"),
        ("a.b.example.com", False, None),
        ("a.b.example.com", True, "example.com"),
        ("cdn.example.com", True, "cdn.example.com"),
        ("notexample.com", True, None),
    ],
)
def test_value_index_domains(host: str, subdomains: bool, entry: str | None) -> None:
    index = ValueIndex()
    index.add("example.com", META)
    index.add("cdn.example.com", META)
    found = index.match_domain(host, subdomains)
    assert (found[0] if found else None) == entry


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        ("Example.COM.", "example.com"),
        ("*.example.com", "example.com"),
        (".example.org", "example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("localhost", None),
        ("bad host.example", None),
        ("-bad.example", None),
        ("a..example", None),
    ],
)
def test_normalise_domain(text: str, domain: str | None) -> None:
    assert normalise_domain(text) == domain


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("https://example.com:443/a?b=1#frag", "https://example.com/a?b=1"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("http://user:pw@example.com/a", "http://example.com/a"),
        ("http://[2001:DB8::1]/x", "http://[2001:db8::1]/x"),
        ("http://198.51.100.7:80/", "http://198.51.100.7/"),
        ("http://bücher.example/", "http://xn--bcher-kva.example/"),
        ("http://example.com:99999/", None),
        ("example.com/path", None),
        ("http:///nohost", None),
    ],
)
def test_normalise_url(text: str, url: str | None) -> None:
    assert normalise_url(text) == url


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("http://Example.COM/a", "example.com"),
        ("http://198.51.100.7:8080/a", "198.51.100.7"),
        ("http://[2001:db8::1]/", "[2001:db8::1]"),
    ],
)
def test_url_host(text: str, host: str) -> None:
    assert url_host(text) == host


@pytest.mark.parametrize(
    ("text", "result"),
    [
        (
            "D41D8CD98F00B204E9800998ECF8427E",
            (IndicatorType.MD5, "d41d8cd98f00b204e9800998ecf8427e"),
        ),
        ("a" * 40, (IndicatorType.SHA1, "a" * 40)),
        ("a" * 64, (IndicatorType.SHA256, "a" * 64)),
        ("a" * 128, (IndicatorType.SHA512, "a" * 128)),
        ("a" * 56, None),
        ("g" * 32, None),
    ],
)
def test_normalise_hash(text: str, result: tuple[IndicatorType, str] | None) -> None:
    assert normalise_hash(text) == result


@pytest.fixture
def feed_index() -> FeedIndex:
    index = FeedIndex()
    index.add("http://bad.example.com/payload.exe", IndicatorType.URL, EntryMeta(detail="url"))
    index.add("bad.example.com", IndicatorType.DOMAIN, EntryMeta(detail="host"))
    index.add("203.0.113.44", IndicatorType.IPV4, EntryMeta(detail="ip"))
    index.add("d41d8cd98f00b204e9800998ecf8427e", IndicatorType.MD5, EntryMeta(detail="hash"))
    return index


@pytest.mark.parametrize(
    ("kind", "value", "entry", "how"),
    [
        (
            IndicatorType.URL,
            "http://BAD.example.com:80/payload.exe",
            "http://bad.example.com/payload.exe",
            "exact",
        ),
        (IndicatorType.URL, "https://bad.example.com/other", "bad.example.com", "url_host"),
        (IndicatorType.URL, "http://203.0.113.44:8080/x", "203.0.113.44", "url_host"),
        (IndicatorType.DOMAIN, "bad.example.com", "bad.example.com", "exact"),
        (
            IndicatorType.MD5,
            "D41D8CD98F00B204E9800998ECF8427E",
            "d41d8cd98f00b204e9800998ecf8427e",
            "exact",
        ),
        (IndicatorType.IPV4, "203.0.113.44", "203.0.113.44", "exact"),
    ],
)
def test_feed_index_match(
    feed_index: FeedIndex, kind: IndicatorType, value: str, entry: str, how: str
) -> None:
    found = feed_index.match("test", indicator(kind, value), subdomains=False)
    assert found is not None
    assert found.entry == entry
    assert found.how == how


@pytest.mark.parametrize(
    ("kind", "value", "subdomains", "how"),
    [
        (IndicatorType.DOMAIN, "x.bad.example.com", False, None),
        (IndicatorType.DOMAIN, "x.bad.example.com", True, "parent_domain"),
        (IndicatorType.URL, "http://x.bad.example.com/", True, "parent_domain"),
        (IndicatorType.URL, "http://good.example.com/", True, None),
        (IndicatorType.EMAIL, "user@bad.example.com", True, None),
    ],
)
def test_feed_index_subdomains(
    feed_index: FeedIndex, kind: IndicatorType, value: str, subdomains: bool, how: str | None
) -> None:
    found = feed_index.match("test", indicator(kind, value), subdomains=subdomains)
    assert (found.how if found else None) == how


def test_feed_index_network_match_says_network() -> None:
    index = FeedIndex()
    index.add("198.51.100.0/22", IndicatorType.IPV4, META)
    found = index.match("test", indicator(IndicatorType.IPV4, "198.51.101.20"), subdomains=False)
    assert found is not None
    assert (found.entry, found.how) == ("198.51.100.0/22", "network")
