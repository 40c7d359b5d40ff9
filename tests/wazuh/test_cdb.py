"""CDB list export: octet-prefix expansion, key quoting, rules and the written files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from iocscope.cli.wazuh import wazuh_group
from iocscope.errors import ConfigError
from iocscope.indicators.model import IndicatorType
from iocscope.sources.feeds.index import parse_ip_key
from iocscope.sources.feeds.parsers import FeedEntry
from iocscope.wazuh import cdb, ossec_conf
from iocscope.wazuh.cdb import (
    LIST_DOMAIN,
    LIST_HASH,
    LIST_IP,
    LIST_URL,
    CdbBuilder,
    build_export,
    format_key,
    ipv4_keys,
    render_cdb_rules,
    write_export,
)
from iocscope.wazuh.check import CheckOptions, Status, run_checks
from tests.support.corpus import cases_of
from tests.wazuh.test_install import GROUP, wazuh_tree

NOW = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


@pytest.mark.parametrize(
    ("network", "keys"),
    [
        ("203.0.113.7", ["203.0.113.7"]),
        ("203.0.113.0/24", ["203.0.113."]),
        ("172.16.0.0/16", ["172.16."]),
        ("10.0.0.0/8", ["10."]),
        ("198.51.100.0/22", ["198.51.100.", "198.51.101.", "198.51.102.", "198.51.103."]),
        ("10.1.2.4/30", ["10.1.2.4", "10.1.2.5", "10.1.2.6", "10.1.2.7"]),
        ("192.0.2.128/31", ["192.0.2.128", "192.0.2.129"]),
        ("100.64.0.0/10", [f"100.{second}." for second in range(64, 128)]),
    ],
)
def test_ipv4_keys(network: str, keys: list[str]) -> None:
    assert ipv4_keys(parse_ip_key(network)) == keys


def test_ipv4_keys_large_counts() -> None:
    keys = ipv4_keys(parse_ip_key("192.0.2.0/25"))
    assert len(keys) == 128
    assert (keys[0], keys[-1]) == ("192.0.2.0", "192.0.2.127")
    assert ipv4_keys(parse_ip_key("64.0.0.0/2")) == [f"{first}." for first in range(64, 128)]


@pytest.mark.parametrize(
    ("key", "written"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8::1", '"2001:db8::1"'),
        ("https://evil.example/a", '"https://evil.example/a"'),
        ("evil.example", "evil.example"),
        ('https://x.example/"q"', None),
        ("bad\nkey", None),
        ("tab\tkey", None),
    ],
)
def test_format_key(key: str, written: str | None) -> None:
    assert format_key(key) == written


def _builder(values: list[tuple[str, str]], max_keys: int = 1024) -> CdbBuilder:
    builder = CdbBuilder(max_keys)
    for feed, value in values:
        entry = FeedEntry(value, IndicatorType.IPV6 if ":" in value else IndicatorType.IPV4)
        builder.add(feed, entry)
    return builder


B39 = [case for case in cases_of("observable_extraction") if case["id"] == "B39"]


@pytest.mark.parametrize("case", B39, ids=lambda case: case["id"])
def test_b39_expansion(case: dict[str, object]) -> None:
    feed_lines = case["input"]["feed_lines"]  # type: ignore[index]
    builder = _builder([("et_compromised", line) for line in feed_lines])
    text = builder.render()[LIST_IP]
    keys = [line.rsplit(":", 1)[0] for line in text.splitlines()]
    assert keys == [
        "198.51.100.",
        "198.51.101.",
        "198.51.102.",
        "198.51.103.",
        "203.0.113.7",
    ]
    assert "2001:db8:abcd" not in text
    assert builder.report.ipv6_networks_skipped == 1
    assert builder.report.networks_expanded == 1
    assert builder.report.expansion_keys == 4


def test_ipv6_address_quoted() -> None:
    builder = _builder([("feodo", "2001:db8:0:0::1"), ("feodo", "2001:db8::/32")])
    assert builder.render()[LIST_IP] == '"2001:db8::1":feodo\n'
    assert builder.report.ipv6_networks_skipped == 1


def test_key_bound_skips() -> None:
    builder = _builder([("dshield", "198.51.100.0/22"), ("dshield", "203.0.113.0/24")], max_keys=2)
    assert builder.render()[LIST_IP] == "203.0.113.:dshield\n"
    assert builder.report.networks_over_bound == 1


def test_invalid_bound() -> None:
    with pytest.raises(ConfigError) as raised:
        CdbBuilder(0)
    assert str(raised.value) == "invalid key bound 0: expected at least 1 key per network"


def test_feed_names_merged() -> None:
    builder = _builder(
        [("ipsum", "203.0.113.7"), ("feodo", "203.0.113.7"), ("ipsum", "203.0.113.7")]
    )
    assert builder.render()[LIST_IP] == "203.0.113.7:feodo,ipsum\n"


def test_kinds_go_to_their_lists() -> None:
    builder = CdbBuilder()
    builder.add("urlhaus_hosts", FeedEntry("evil.example", IndicatorType.DOMAIN))
    builder.add("openphish", FeedEntry("https://evil.example/login", IndicatorType.URL))
    builder.add("custom", FeedEntry(SHA256.upper(), IndicatorType.SHA256))
    lists = builder.render()
    assert lists[LIST_DOMAIN] == "evil.example:urlhaus_hosts\n"
    assert lists[LIST_URL] == '"https://evil.example/login":openphish\n'
    assert lists[LIST_HASH] == f"{SHA256}:custom\n"
    assert builder.report.keys == {LIST_IP: 0, LIST_DOMAIN: 1, LIST_HASH: 1, LIST_URL: 1}


def test_rules_only_for_present_lists() -> None:
    text = render_cdb_rules(100900, [LIST_IP])
    tree = ET.fromstring(f"<rules>{text}</rules>")  # noqa: S314 - text built by the test
    rules = {rule.get("id", ""): rule for rule in tree.iter("rule")}
    assert sorted(rules) == ["100900", "100901"]
    lookup = rules["100900"].find("list")
    assert lookup is not None
    assert lookup.attrib == {"field": "srcip", "lookup": "address_match_key"}
    assert lookup.text == "etc/lists/iocscope-ip"


def test_hash_rules_use_fim() -> None:
    text = render_cdb_rules(100900, [LIST_HASH])
    tree = ET.fromstring(f"<rules>{text}</rules>")  # noqa: S314 - text built by the test
    fields = [node.get("field") for node in tree.iter("list")]
    assert fields == ["md5", "sha1", "sha256"]
    assert {node.text for node in tree.iter("if_sid")} == {"550, 554"}


@pytest.mark.parametrize("base_id", [99999, 119994])
def test_base_id_out_of_range(base_id: int) -> None:
    with pytest.raises(ConfigError) as raised:
        render_cdb_rules(base_id, [LIST_IP])
    assert str(raised.value) == (
        f"invalid CDB rule base ID {base_id}: the CDB rules need 7 IDs "
        f"({base_id}-{base_id + 6}) within Wazuh's custom range 100000-119999"
    )


def write_feed(data_dir: Path, feed: str, filename: str, text: str) -> None:
    directory = data_dir / "feeds" / feed
    directory.mkdir(parents=True, exist_ok=True)
    (directory / filename).write_text(text, encoding="utf-8")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_feed(root, "et_compromised", "compromised-ips.txt", "198.51.100.0/22\n203.0.113.7\n")
    write_feed(root, "urlhaus_hosts", "hostfile.txt", "127.0.0.1\tevil.example\n")
    # An allowlist: its entries must never reach a blocklist.
    write_feed(
        root,
        "misp_top_sites",
        "tranco10k.json",
        '{"name": "top", "type": "hostname", "list": ["good.example"]}',
    )
    return root


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Path]:
    with wazuh_tree(tmp_path / "ossec") as root:
        yield root


def test_export_reads_blocklists_only(data_dir: Path) -> None:
    export = build_export(data_dir)
    assert sorted(export.lists) == [LIST_DOMAIN, LIST_IP]
    assert "good.example" not in export.lists[LIST_DOMAIN]
    assert export.report.entries_read == {"et_compromised": 2, "urlhaus_hosts": 1}


def test_write_export_into_manager(data_dir: Path, manager: Path) -> None:
    write_export(build_export(data_dir), wazuh_dir=manager, group=GROUP, clock=lambda: NOW)
    conf = (manager / "etc/ossec.conf").read_text(encoding="utf-8")
    assert ossec_conf.declared_lists(conf) == {
        "etc/lists/audit-keys",
        "etc/lists/iocscope-domain",
        "etc/lists/iocscope-ip",
    }
    assert (
        (manager / "etc/lists/iocscope-ip")
        .read_text(encoding="utf-8")
        .startswith("198.51.100.:et_compromised\n")
    )
    assert (manager / "etc/rules/iocscope_cdb_rules.xml").exists()
    results = run_checks(CheckOptions(manager, group=GROUP))
    lists = [item for item in results if item.name.startswith("list ")]
    assert [item.status for item in lists] == [Status.OK, Status.OK]


def test_write_export_idempotent(data_dir: Path, manager: Path) -> None:
    export = build_export(data_dir)
    write_export(export, wazuh_dir=manager, group=GROUP, clock=lambda: NOW)
    again = write_export(export, wazuh_dir=manager, group=GROUP, clock=lambda: NOW)
    assert not again.changed
    assert len(list((manager / "etc").glob("ossec.conf.iocscope-*.bak"))) == 1


def test_emptied_list_removed(data_dir: Path, manager: Path) -> None:
    write_export(build_export(data_dir), wazuh_dir=manager, group=GROUP, clock=lambda: NOW)
    (manager / "etc/lists/iocscope-domain.cdb").write_bytes(b"compiled")
    (data_dir / "feeds/urlhaus_hosts/hostfile.txt").unlink()
    write_export(build_export(data_dir), wazuh_dir=manager, group=GROUP, clock=lambda: NOW)
    assert not (manager / "etc/lists/iocscope-domain").exists()
    assert not (manager / "etc/lists/iocscope-domain.cdb").exists()
    conf = (manager / "etc/ossec.conf").read_text(encoding="utf-8")
    assert "etc/lists/iocscope-domain" not in conf


def test_out_dir_leaves_conf(data_dir: Path, manager: Path, tmp_path: Path) -> None:
    before = (manager / "etc/ossec.conf").read_bytes()
    out = tmp_path / "export"
    write_export(build_export(data_dir), wazuh_dir=manager, out_dir=out)
    assert sorted(path.name for path in out.iterdir()) == [
        "iocscope-domain",
        "iocscope-ip",
        "iocscope_cdb_rules.xml",
    ]
    assert (manager / "etc/ossec.conf").read_bytes() == before


def test_cli_cdb(data_dir: Path, manager: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IOCSCOPE_CONFIG", raising=False)
    monkeypatch.setenv("IOCSCOPE_DATA_DIR", str(data_dir))
    result = CliRunner().invoke(
        wazuh_group, ["cdb", "--wazuh-dir", str(manager), "--group", GROUP, "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "iocscope-ip: 5 keys\n" in result.output
    assert "1 IPv4 networks off an octet boundary expanded into 4 keys\n" in result.output
    assert "+    <list>etc/lists/iocscope-ip</list>\n" in result.output
    assert not (manager / "etc/lists/iocscope-ip").exists()


def test_rules_file_path(manager: Path) -> None:
    assert cdb.rules_file_path(manager) == manager / "etc/rules/iocscope_cdb_rules.xml"
