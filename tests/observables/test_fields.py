"""The field map: path walking, splitters, guards and the map's own invariants."""

from __future__ import annotations

from typing import Any

import pytest

from iocscope.indicators.model import IndicatorType
from iocscope.observables.fields import (
    FAMILIES,
    Candidate,
    first_value,
    is_outbound,
    is_registry_event,
    split_dns_results,
    split_full_url,
    split_list,
    split_single,
    split_suricata_http_url,
    split_sysmon_hashes,
    values_at,
)
from iocscope.observables.model import SkipReason

NESTED: dict[str, Any] = {
    "data": {
        "srcip": "192.0.2.1",
        "list": ["a", ["b", ["c"]]],
        "evidence": [{"ipAddress": "192.0.2.7"}, {"url": "x"}, {"ipAddress": ["192.0.2.8"]}],
        "action": {
            "one": {"remoteIpDetails": {"ipAddressV4": "192.0.2.10"}},
            "two": {"remoteIpDetails": {"ipAddressV4": "192.0.2.11"}},
            "three": "not an object",
        },
        "scalar": 5,
    }
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("data.srcip", [("data.srcip", "192.0.2.1")]),
        ("data.missing", []),
        ("data.srcip.deeper", []),
        ("data.scalar", [("data.scalar", 5)]),
        ("data.list", [("data.list", "a"), ("data.list", "b"), ("data.list", "c")]),
        (
            "data.evidence.ipAddress",
            [("data.evidence.ipAddress", "192.0.2.7"), ("data.evidence.ipAddress", "192.0.2.8")],
        ),
        (
            "data.action.*.remoteIpDetails.ipAddressV4",
            [
                ("data.action.one.remoteIpDetails.ipAddressV4", "192.0.2.10"),
                ("data.action.two.remoteIpDetails.ipAddressV4", "192.0.2.11"),
            ],
        ),
    ],
)
def test_values_at(path: str, expected: list[tuple[str, Any]]) -> None:
    assert list(values_at(NESTED, path)) == expected


def test_values_at_stops_at_deep_list_nesting() -> None:
    deep: Any = "192.0.2.1"
    for _ in range(10):
        deep = [deep]
    assert list(values_at({"data": {"srcip": deep}}, "data.srcip")) == []


def test_first_value_missing_is_none() -> None:
    assert first_value(NESTED, "data.nothing") is None


@pytest.mark.parametrize(
    ("value", "texts"),
    [
        ("203.0.113.9", ["203.0.113.9"]),
        ("203.0.113.9, 10.0.0.1", ["203.0.113.9", "10.0.0.1"]),
        ("203.0.113.9;198.51.100.2", ["203.0.113.9", "198.51.100.2"]),
        ('"203.0.113.9"', ["203.0.113.9"]),
        ("'[2001:db8::1]:443'", ["[2001:db8::1]:443"]),
        (" , ", []),
    ],
)
def test_split_list(value: str, texts: list[str]) -> None:
    assert [candidate.text for candidate in split_list(value, {})] == texts


def test_split_single_strips_quotes() -> None:
    assert list(split_single(' "abc" ', {})) == [Candidate("abc")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "SHA1=AA,MD5=BB,SHA256=CC,IMPHASH=DD",
            [
                Candidate("AA", IndicatorType.SHA1),
                Candidate("BB", IndicatorType.MD5),
                Candidate("CC", IndicatorType.SHA256),
                Candidate("DD", skip=SkipReason.IMPHASH),
            ],
        ),
        ("md5=bb", [Candidate("bb", IndicatorType.MD5)]),
        ("SHA384=EE", [Candidate("EE", skip=SkipReason.UNKNOWN_HASH)]),
        ("44D88612FEA8A8F36DE82E1278ABB02F", [Candidate("44D88612FEA8A8F36DE82E1278ABB02F")]),
        ("SHA1=AA,,", [Candidate("AA", IndicatorType.SHA1)]),
    ],
)
def test_split_sysmon_hashes(value: str, expected: list[Candidate]) -> None:
    assert list(split_sysmon_hashes(value, {})) == expected


def test_split_dns_results() -> None:
    value = "type:  5 cdn.example.net;::ffff:192.0.2.40;203.0.113.5;"
    assert list(split_dns_results(value, {})) == [
        Candidate("type:  5 cdn.example.net", skip=SkipReason.DNS_CNAME),
        Candidate("::ffff:192.0.2.40"),
        Candidate("203.0.113.5"),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://evil.example/a", Candidate("https://evil.example/a")),
        ("/index.php?id=1", Candidate("/index.php?id=1", skip=SkipReason.BARE_PATH)),
        ("evil.example/a", Candidate("evil.example/a", skip=SkipReason.BARE_PATH)),
        ("/a\nb://c", Candidate("/a\nb://c", skip=SkipReason.BARE_PATH)),
    ],
)
def test_split_full_url(value: str, expected: Candidate) -> None:
    assert list(split_full_url(value, {})) == [expected]


def _http(**fields: str) -> dict[str, Any]:
    return {"data": {"http": fields}}


@pytest.mark.parametrize(
    ("alert", "value", "expected"),
    [
        (
            _http(hostname="dl.example.net"),
            "/gate.php",
            Candidate("http://dl.example.net/gate.php"),
        ),
        (
            _http(hostname="dl.example.net", http_port="8080"),
            "/gate.php",
            Candidate("http://dl.example.net:8080/gate.php"),
        ),
        (
            _http(hostname="dl.example.net", http_port="80"),
            "/",
            Candidate("http://dl.example.net/"),
        ),
        (_http(hostname="2001:db8::5"), "/x", Candidate("http://[2001:db8::5]/x")),
        (_http(), "/gate.php", Candidate("/gate.php", skip=SkipReason.BARE_PATH)),
        (_http(hostname="dl.example.net"), "*", Candidate("*", skip=SkipReason.BARE_PATH)),
        (_http(), "http://proxy.example.net/a", Candidate("http://proxy.example.net/a")),
    ],
)
def test_split_suricata_http_url(alert: dict[str, Any], value: str, expected: Candidate) -> None:
    assert list(split_suricata_http_url(value, alert)) == [expected]


@pytest.mark.parametrize(
    ("alert", "expected"),
    [
        (
            {"rule": {"groups": ["ossec", "syscheck", "syscheck_registry"]}},
            SkipReason.REGISTRY_EVENT,
        ),
        ({"syscheck": {"path": "HKEY_LOCAL_MACHINE\\Software\\Run"}}, SkipReason.REGISTRY_EVENT),
        ({"syscheck": {"path": "hkey_users\\S-1-5-18"}}, SkipReason.REGISTRY_EVENT),
        ({"decoder": {"name": "syscheck_registry_value_added"}}, SkipReason.REGISTRY_EVENT),
        ({"rule": {"groups": ["syscheck_file"]}, "syscheck": {"path": "/etc/hosts"}}, None),
        ({"rule": {"groups": "syscheck_registry"}}, SkipReason.REGISTRY_EVENT),
        ({"rule": "not an object", "syscheck": ["not", "an", "object"]}, None),
    ],
)
def test_is_registry_event(alert: dict[str, Any], expected: SkipReason | None) -> None:
    assert is_registry_event(alert) == expected


@pytest.mark.parametrize(
    ("direction", "expected"),
    [("OUTBOUND", True), ("outbound", True), ("INBOUND", False), (None, False)],
)
def test_is_outbound(direction: str | None, expected: bool) -> None:
    action = {"networkConnectionAction": {"connectionDirection": direction}}
    alert = {"data": {"aws": {"service": {"action": action}}}}
    assert is_outbound(alert) is expected


ALL_RULES = [rule for family in FAMILIES for rule in family.rules]


@pytest.mark.parametrize("rule", ALL_RULES, ids=[rule.path for rule in ALL_RULES])
def test_rule_reads_event_fields_only(rule: Any) -> None:
    assert rule.path.startswith(("data.", "syscheck."))
    assert rule.path != "data.hostname"


def test_rules_are_unique() -> None:
    keys = [(rule.path, rule.role, rule.condition) for rule in ALL_RULES]
    assert len(keys) == len(set(keys))


def test_families_have_unique_names() -> None:
    names = [family.name for family in FAMILIES]
    assert len(names) == len(set(names))
