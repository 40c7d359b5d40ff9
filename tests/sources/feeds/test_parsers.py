from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iocscope.indicators.model import IndicatorType
from iocscope.sources.feeds.catalogue import FEEDS_BY_NAME
from iocscope.sources.feeds.index import parse_ip_key
from iocscope.sources.feeds.parsers import FORMATS, feed_format, is_public, parse_feed

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def values(name_or_spec: str, text: str) -> list[str]:
    return [entry.value for entry in parse_feed(name_or_spec, text).entries]


@pytest.mark.parametrize(
    ("fmt", "name", "entries", "rejected"),
    [
        ("ipsum", "ipsum.txt", 6, 2),
        ("feodo", "feodo_ipblocklist.csv", 2, 2),
        ("feodo", "feodo_ipblocklist.json", 2, 1),
        ("ip_list", "tor_exits.txt", 3, 0),
        ("ip_list", "et_compromised.txt", 3, 0),
        ("ip_list", "firehol_level1.netset", 12, 0),
        ("spamhaus_drop", "spamhaus_drop_v4.json", 2, 1),
        ("spamhaus_drop", "spamhaus_drop.txt", 2, 1),
        ("dshield_block", "dshield_block.txt", 2, 1),
        ("url_list", "openphish.txt", 3, 2),
        ("urlhaus_csv", "urlhaus_csv_online.csv", 2, 1),
        ("hosts", "urlhaus_hostfile.txt", 3, 2),
        ("misp_warninglist", "misp_cidr.json", 3, 1),
        ("misp_warninglist", "misp_hostname.json", 3, 1),
        ("misp_warninglist", "misp_hashes.json", 4, 1),
        ("misp_warninglist", "misp_regex.json", 0, 2),
        ("threatfox", "threatfox_recent.json", 5, 3),
        ("threatfox", "threatfox_recent.csv", 3, 2),
        ("hash_list", "malwarebazaar_sha256_recent.txt", 3, 1),
        ("aws_ip_ranges", "aws_ip_ranges.json", 4, 2),
        ("google_ip_ranges", "google_cloud.json", 3, 1),
        ("fastly_ip_list", "fastly_public_ip_list.json", 3, 1),
        ("oci_ip_ranges", "oci_public_ip_ranges.json", 3, 1),
        ("ip_list", "cloudflare_ips_v4.txt", 3, 0),
        ("ip_list", "cloudflare_ips_v6.txt", 2, 0),
    ],
)
def test_fixture_counts(fmt: str, name: str, entries: int, rejected: int) -> None:
    parsed = parse_feed(fmt, fixture(name))
    assert len(parsed.entries) == entries
    assert parsed.rejected_count == rejected
    assert len(parsed.rejected_examples) == rejected


@pytest.mark.parametrize(
    ("count", "confidence"),
    [(1, 20), (2, 35), (3, 50), (5, 80), (6, 85), (8, 90), (10, 95), (40, 95)],
)
def test_ipsum_count_sets_confidence(count: int, confidence: int) -> None:
    (entry,) = parse_feed("ipsum", f"198.51.100.1\t{count}\n").entries
    assert entry.confidence == confidence
    assert entry.meta.detail == f"listed by {count} of the IPsum blocklists"


@pytest.mark.parametrize("count", ["0", "-3", "many", "\u00b2"])
def test_ipsum_rejects_bad_count(count: str) -> None:
    parsed = parse_feed("ipsum", f"198.51.100.1\t{count}\n")
    assert parsed.entries == ()
    assert parsed.rejected_count == 1


def test_ipsum_shares_metadata_per_count() -> None:
    entries = parse_feed("ipsum", "198.51.100.1\t3\n198.51.100.2\t3\n").entries
    assert entries[0].meta is entries[1].meta


def test_ipsum_without_count() -> None:
    (entry,) = parse_feed("ipsum", "198.51.100.1\n").entries
    assert entry.confidence is None
    assert entry.meta.detail == ""


def test_ipsum_rejected_examples() -> None:
    parsed = parse_feed("ipsum", fixture("ipsum.txt"))
    assert parsed.rejected_examples == (
        "line 12: 'not-an-address\\t4': not an IP address",
        "line 13: '203.0.113.8\\tmany': the list count is not a positive number",
    )


def test_bom_crlf_blank_and_comments() -> None:
    text = (
        "\ufeff# comment\r\n; another comment\r\n\r\n  198.51.100.1  \r\n198.51.100.2 # inline\r\n"
    )
    parsed = parse_feed("ip_list", text)
    assert [entry.value for entry in parsed.entries] == ["198.51.100.1", "198.51.100.2"]
    assert parsed.rejected_count == 0


def test_examples_are_capped() -> None:
    parsed = parse_feed("ip_list", "\n".join(f"bad{number}" for number in range(20)))
    assert parsed.rejected_count == 20
    assert len(parsed.rejected_examples) == 5
    assert parsed.rejected_examples[0] == "line 1: 'bad0': not an IP address or network"


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("198.51.100.7/32", "198.51.100.7"),
        ("198.51.100.7/22", "198.51.100.0/22"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("2001:db8:abcd::/48", "2001:db8:abcd::/48"),
        ("::ffff:198.51.100.9", "198.51.100.9"),
    ],
)
def test_ip_list_canonical_values(line: str, value: str) -> None:
    assert values("ip_list", line) == [value]


@pytest.mark.parametrize(
    "line",
    ["198.51.100", "198.051.100.1", "198.51.100.1/33", "198.51.100.1/\u00b2", "1.2.3.4-1.2.3.9"],
)
def test_ip_list_rejects(line: str) -> None:
    assert parse_feed("ip_list", line).rejected_count == 1


def test_feodo_csv_and_json_agree() -> None:
    from_csv = parse_feed("feodo", fixture("feodo_ipblocklist.csv")).entries
    from_json = parse_feed("feodo", fixture("feodo_ipblocklist.json")).entries
    assert [entry.value for entry in from_csv] == [entry.value for entry in from_json]
    assert [entry.tags for entry in from_csv] == [("qakbot",), ("pikabot",)]


def test_feodo_metadata() -> None:
    online, offline = parse_feed("feodo", fixture("feodo_ipblocklist.json")).entries
    assert online.confidence is None
    assert offline.confidence == 80
    assert online.category == "botnet_c2"
    assert online.first_seen == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert online.last_seen == datetime(2024, 3, 5, tzinfo=UTC)
    assert offline.first_seen is None
    assert online.meta.detail == "QakBot C2 on port 443, online"


def test_spamhaus_json_skips_metadata_line() -> None:
    parsed = parse_feed("spamhaus_drop", fixture("spamhaus_drop_v4.json"))
    assert [entry.value for entry in parsed.entries] == ["198.51.100.0/22", "203.0.113.0/24"]
    assert parsed.entries[0].meta.detail == "SBL000101"
    assert parsed.rejected_examples[0].endswith("not an IP network")


def test_spamhaus_legacy_text() -> None:
    parsed = parse_feed("spamhaus_drop", fixture("spamhaus_drop.txt"))
    assert [entry.value for entry in parsed.entries] == ["198.51.100.0/22", "2001:db8:abcd::/48"]
    assert parsed.entries[1].type is IndicatorType.IPV6
    assert parsed.entries[1].tags == ("sbl000104",)


def test_dshield_networks() -> None:
    entries = parse_feed("dshield_block", fixture("dshield_block.txt")).entries
    assert [entry.value for entry in entries] == ["203.0.113.0/24", "198.51.100.0/24"]
    assert entries[0].meta.detail == "512 targets reported scans from this network"


def test_url_list_normalises() -> None:
    assert values("url_list", fixture("openphish.txt")) == [
        "https://login.example-bank.example/",
        "http://phish.example.net/verify?id=7",
        "https://secure.example.org/account",
    ]


def test_urlhaus_csv_metadata() -> None:
    first, second = parse_feed("urlhaus_csv", fixture("urlhaus_csv_online.csv")).entries
    assert first.value == "http://malware-host.example.com/bins/x86"
    assert first.tags == ("elf", "mirai")
    assert first.meta.reference == "https://urlhaus.abuse.ch/url/3000001/"
    assert first.meta.detail == "malware download, online"
    assert first.first_seen == datetime(2024, 9, 20, 10, 12, 7, tzinfo=UTC)
    assert second.value == "http://203.0.113.44:8080/payload.exe"


def test_urlhaus_text_lines() -> None:
    assert values("urlhaus_csv", "# comment\nhttp://bad.example.com/a\n") == [
        "http://bad.example.com/a"
    ]


def test_hosts_file() -> None:
    parsed = parse_feed("hosts", fixture("urlhaus_hostfile.txt"))
    assert [(entry.value, entry.type) for entry in parsed.entries] == [
        ("malware-host.example.com", IndicatorType.DOMAIN),
        ("dropper.example.net", IndicatorType.DOMAIN),
        ("203.0.113.44", IndicatorType.IPV4),
    ]
    assert parsed.rejected_examples[0] == (
        "line 4: '127.0.0.1\\tlocalhost': 'localhost' is not a public host name"
    )


def test_misp_cidr_list() -> None:
    parsed = parse_feed("misp_warninglist", fixture("misp_cidr.json"))
    assert [entry.value for entry in parsed.entries] == [
        "192.0.2.0/24",
        "2001:db8:cafe::/48",
        "198.51.100.7",
    ]
    assert parsed.entries[0].meta.detail == "in the MISP warning list 'Example CDN ranges'"


def test_misp_hostname_list() -> None:
    assert values("misp_warninglist", fixture("misp_hostname.json")) == [
        "example.com",
        "example.org",
        "example.net",
    ]


def test_misp_string_list_classifies() -> None:
    entries = parse_feed("misp_warninglist", fixture("misp_hashes.json")).entries
    assert [entry.type for entry in entries] == [
        IndicatorType.MD5,
        IndicatorType.SHA1,
        IndicatorType.SHA256,
        IndicatorType.IPV4,
    ]
    assert entries[0].value == "d41d8cd98f00b204e9800998ecf8427e"


def test_misp_regex_list_rejected() -> None:
    parsed = parse_feed("misp_warninglist", fixture("misp_regex.json"))
    assert parsed.rejected_examples[0] == (
        "item 1: '^evil\\\\..*$': MISP lists of type 'regex' are not supported"
    )


@pytest.mark.parametrize(
    "fmt",
    [
        "misp_warninglist",
        "feodo",
        "threatfox",
        "aws_ip_ranges",
        "google_ip_ranges",
        "fastly_ip_list",
        "oci_ip_ranges",
    ],
)
def test_invalid_json_is_one_rejection(fmt: str) -> None:
    parsed = parse_feed(fmt, "[{not json")
    assert parsed.entries == ()
    assert parsed.rejected_count == 1
    assert "not valid JSON" in parsed.rejected_examples[0]


def test_spec_rejects_undeclared_types() -> None:
    parsed = parse_feed(FEEDS_BY_NAME["misp_empty_hashes"], fixture("misp_hashes.json"))
    assert len(parsed.entries) == 3
    assert parsed.rejected_examples[0] == (
        "entry: '192.0.2.1': type ipv4 is not one of md5/sha1/sha256/sha512"
    )


def test_public_only_drops_non_public() -> None:
    parsed = parse_feed(FEEDS_BY_NAME["firehol_level1"], fixture("firehol_level1.netset"))
    assert [entry.value for entry in parsed.entries] == [
        "2.56.192.0/22",
        "5.8.16.0/21",
        "37.9.0.0/16",
        "185.10.68.0/22",
    ]
    assert parsed.dropped_count == 8
    assert parsed.rejected_count == 0


@pytest.mark.parametrize(
    ("text", "public"),
    [
        ("8.8.8.8", True),
        ("2.56.192.0/22", True),
        ("10.1.2.3", False),
        ("0.0.0.0/8", False),
        ("224.0.0.0/3", False),
        ("192.0.0.0/2", False),  # a public-looking supernet that contains 192.168.0.0/16
        ("198.18.0.1", False),
        ("255.255.255.255", False),
        ("2a00:1450::1", True),
        ("2001:db8::1", False),
        ("fe80::1", False),
        ("fc00::/7", False),
        ("ff02::1", False),
        ("::1", False),
    ],
)
def test_is_public(text: str, public: bool) -> None:
    assert is_public(parse_ip_key(text)) is public


def test_unknown_format() -> None:
    with pytest.raises(KeyError, match="unknown feed format 'csv'"):
        feed_format("csv")


def test_every_spec_has_a_parser() -> None:
    assert {spec.format for spec in FEEDS_BY_NAME.values()} <= set(FORMATS)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=200))
def test_parsers_never_raise(fmt: str, text: str) -> None:
    parsed = parse_feed(fmt, text)
    assert parsed.rejected_count >= 0


def test_threatfox_json_entries() -> None:
    entries = parse_feed("threatfox", fixture("threatfox_recent.json")).entries
    assert [(entry.value, entry.type) for entry in entries] == [
        ("198.51.100.23", IndicatorType.IPV4),
        ("update-check.example.net", IndicatorType.DOMAIN),
        ("http://dl.example.org/files/invoice.exe", IndicatorType.URL),
        ("0cc175b9c0f1b6a831c399e269772661", IndicatorType.MD5),
        ("2001:db8::5", IndicatorType.IPV6),
    ]


def test_threatfox_metadata() -> None:
    c2, domain, url, md5, ipv6 = parse_feed("threatfox", fixture("threatfox_recent.json")).entries
    assert c2.confidence == 100
    assert c2.category == "botnet_c2"
    assert c2.tags == ("cobalt strike", "c2", "cobaltstrike")
    assert c2.first_seen == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert c2.last_seen is None
    assert c2.meta.detail == "Cobalt Strike botnet C2 on port 443"
    assert c2.meta.reference == "https://threatfox.abuse.ch/ioc/1300001/"
    assert domain.last_seen == datetime(2024, 5, 2, 8, 0, tzinfo=UTC)
    assert domain.tags == ("asyncrat",)
    assert url.category == "malware_distribution"
    assert url.meta.detail == "Remcos payload delivery"
    assert md5.category == "malware"
    assert md5.meta.detail == "Unknown malware payload"
    assert ipv6.confidence == 75
    assert ipv6.meta.detail == "Sliver botnet C2 on port 8443"


def test_threatfox_csv_matches_json() -> None:
    from_csv = parse_feed("threatfox", fixture("threatfox_recent.csv")).entries
    from_json = parse_feed("threatfox", fixture("threatfox_recent.json")).entries[:3]
    assert from_csv == from_json


def test_threatfox_rejected_examples() -> None:
    parsed = parse_feed("threatfox", fixture("threatfox_recent.csv"))
    assert parsed.rejected_examples[0] == (
        'line 10: \'"2024-05-01 12:05:00", "1300009", "198.51.100.24", "ip:port"\': '
        "expected a ThreatFox CSV row of 14 columns"
    )
    assert parsed.rejected_examples[1].endswith(": not an IOC of a known ioc_type")


@pytest.mark.parametrize(
    ("record", "value"),
    [
        ({"ioc": "198.51.100.9:8080", "ioc_type": "ip:port"}, "198.51.100.9"),
        ({"ioc_value": "198.51.100.9", "ioc_type": "ip:port"}, "198.51.100.9"),
        ({"ioc_value": "[2001:db8::9]:443", "ioc_type": "ip:port"}, "2001:db8::9"),
        ({"ioc_value": "A" * 40, "ioc_type": "sha1_hash"}, "a" * 40),
        ({"ioc_value": "b" * 64, "ioc_type": "sha256_hash"}, "b" * 64),
    ],
    ids=["api-keys", "no-port", "ipv6", "sha1", "sha256"],
)
def test_threatfox_value_forms(record: dict[str, str], value: str) -> None:
    text = orjson.dumps({"data": [record]}).decode()
    assert values("threatfox", text) == [value]


@pytest.mark.parametrize(
    "confidence", ["high", -5, None, "", 7.5], ids=["word", "negative", "null", "empty", "float"]
)
def test_threatfox_unusable_confidence_uses_default(confidence: object) -> None:
    record = {"ioc_value": "198.51.100.9:80", "ioc_type": "ip:port", "confidence_level": confidence}
    (entry,) = parse_feed("threatfox", orjson.dumps([record]).decode()).entries
    assert entry.confidence is None


def test_threatfox_confidence_capped() -> None:
    record = {"ioc_value": "198.51.100.9:80", "ioc_type": "ip:port", "confidence_level": 250}
    (entry,) = parse_feed("threatfox", orjson.dumps([record]).decode()).entries
    assert entry.confidence == 100


def test_hash_list_lower_cases() -> None:
    parsed = parse_feed("hash_list", fixture("malwarebazaar_sha256_recent.txt"))
    assert parsed.entries[0].value == (
        "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    )
    assert {entry.type for entry in parsed.entries} == {IndicatorType.SHA256}
    assert parsed.rejected_examples == (
        "line 10: 'not-a-sha256': not an MD5, SHA-1, SHA-256 or SHA-512 hash",
    )


@pytest.mark.parametrize(
    ("fmt", "name", "details"),
    [
        (
            "aws_ip_ranges",
            "aws_ip_ranges.json",
            ["AMAZON in us-east-1", "EC2 in us-east-1", "CLOUDFRONT in GLOBAL", "S3 in eu-west-1"],
        ),
        (
            "google_ip_ranges",
            "google_cloud.json",
            ["Google Cloud in europe-west1", "Google Cloud in us-central1", ""],
        ),
        ("fastly_ip_list", "fastly_public_ip_list.json", ["", "", ""]),
        (
            "oci_ip_ranges",
            "oci_public_ip_ranges.json",
            ["OCI in us-phoenix-1", "OSN/OBJECT_STORAGE in us-phoenix-1", "OCI in eu-frankfurt-1"],
        ),
    ],
)
def test_provider_ranges_details(fmt: str, name: str, details: list[str]) -> None:
    entries = parse_feed(fmt, fixture(name)).entries
    assert [entry.meta.detail for entry in entries] == details


def test_provider_ranges_values() -> None:
    assert values("oci_ip_ranges", fixture("oci_public_ip_ranges.json")) == [
        "192.0.2.0/25",
        "192.0.2.128/25",
        "203.0.113.0/24",
    ]
    assert values("fastly_ip_list", fixture("fastly_public_ip_list.json"))[-1] == (
        "2001:db8:f000::/48"
    )


def test_provider_ranges_share_metadata() -> None:
    text = orjson.dumps(
        {"prefixes": [{"ip_prefix": f"192.0.2.{n}/32", "service": "EC2"} for n in (1, 2)]}
    ).decode()
    first, second = parse_feed("aws_ip_ranges", text).entries
    assert first.meta is second.meta


@pytest.mark.parametrize(
    ("fmt", "text", "reason"),
    [
        ("aws_ip_ranges", "[]", "expected an AWS ip-ranges.json document with 'prefixes'"),
        ("aws_ip_ranges", '{"prefixes": []}', "expected an AWS ip-ranges.json document"),
        ("google_ip_ranges", '{"syncToken": "1"}', "expected a Google cloud.json or goog.json"),
        ("fastly_ip_list", '{"addresses": "x"}', "expected a Fastly public-ip-list document"),
        ("oci_ip_ranges", '{"regions": [{"cidrs": []}]}', "expected an Oracle Cloud"),
    ],
    ids=["array", "empty", "no-prefixes", "not-a-list", "no-cidrs"],
)
def test_provider_ranges_wrong_shape(fmt: str, text: str, reason: str) -> None:
    parsed = parse_feed(fmt, text)
    assert parsed.entries == ()
    assert parsed.rejected_count == 1
    assert reason in parsed.rejected_examples[0]


@pytest.mark.parametrize(
    ("feed", "names", "entries"),
    [
        ("threatfox_export", ["threatfox_recent.json"], 5),
        ("malwarebazaar_recent", ["malwarebazaar_sha256_recent.txt"], 3),
        ("aws_ip_ranges", ["aws_ip_ranges.json"], 4),
        ("google_ip_ranges", ["google_cloud.json"], 3),
        ("cloudflare_ips", ["cloudflare_ips_v4.txt", "cloudflare_ips_v6.txt"], 5),
        ("fastly_ips", ["fastly_public_ip_list.json"], 3),
        ("oracle_oci_ranges", ["oci_public_ip_ranges.json"], 3),
        ("blocklist_de", ["et_compromised.txt"], 3),
        ("cins_army", ["et_compromised.txt"], 3),
    ],
)
def test_new_feeds_read_their_format(feed: str, names: list[str], entries: int) -> None:
    spec = FEEDS_BY_NAME[feed]
    parsed = [parse_feed(spec, fixture(name)) for name in names]
    assert sum(len(result.entries) for result in parsed) == entries
    assert all(
        "is not one of" not in example for result in parsed for example in result.rejected_examples
    )


def test_firehol_level2_drops_non_public() -> None:
    parsed = parse_feed(FEEDS_BY_NAME["firehol_level2"], fixture("firehol_level1.netset"))
    assert parsed.dropped_count == 8
    assert len(parsed.entries) == 4
