"""Extraction of observables from whole alerts, family by family and skip by skip."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iocscope.config import ScopeSettings
from iocscope.errors import InvalidIndicatorError
from iocscope.indicators.parse import parse_indicator
from iocscope.indicators.scope import ScopePolicy, classify_scope
from iocscope.observables.extract import MAX_ERRORS, MAX_VALUES, extract_observables
from iocscope.observables.fields import FAMILIES
from iocscope.observables.model import Extraction, Role

FIXTURES = Path(__file__).parent / "fixtures"
POLICY = ScopePolicy.from_settings(ScopeSettings())

SOURCE, DESTINATION, FILE, QUERY, URL, RELATED = (
    Role.SOURCE,
    Role.DESTINATION,
    Role.FILE,
    Role.QUERY,
    Role.URL,
    Role.RELATED,
)


def fixture(name: str, line: int) -> dict[str, Any]:
    """Return alert number ``line`` (from 0) of fixtures/<name>.jsonl."""
    lines = (FIXTURES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    alert: dict[str, Any] = json.loads(lines[line])
    return alert


def found(extraction: Extraction) -> set[tuple[Role, str, str]]:
    return {(item.role, item.field, item.indicator.value) for item in extraction.observables}


def alert_with(data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "timestamp": "2024-06-03T07:12:44.118+0000",
        "rule": {"level": 5, "id": "100100", "groups": ["test"]},
        "agent": {"id": "001", "name": "host01", "ip": "198.18.0.9"},
        "manager": {"name": "wazuh-manager-01"},
        "id": "1717398764.1",
        "location": "/var/log/app.log",
        "data": data,
        **extra,
    }


# --- families -----------------------------------------------------------------

FAMILY_CASES = [
    ("linux", 0, {(SOURCE, "data.srcip", "45.155.205.233")}),
    ("linux", 1, {(SOURCE, "data.srcip", "2a01:4f8:c17:1a2b::1")}),
    ("linux", 2, {(SOURCE, "data.srcip", "9.9.9.9")}),
    (
        "linux",
        3,
        {
            (SOURCE, "data.srcip", "10.40.8.41"),
            (SOURCE, "data.srcip", "1.1.1.1"),
            (URL, "data.url", "http://downloads.example.net:8080/payload.bin?id=7"),
        },
    ),
    ("windows", 0, {(SOURCE, "data.win.eventdata.ipAddress", "8.8.4.4")}),
    ("windows", 1, set()),
    (
        "windows",
        2,
        {
            (FILE, "data.win.eventdata.hashes", "0a1b2c3d4e5f60718293a4b5c6d7e8f9"),
            (
                FILE,
                "data.win.eventdata.hashes",
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            ),
        },
    ),
    (
        "windows",
        3,
        {
            (SOURCE, "data.win.eventdata.sourceIp", "10.40.8.41"),
            (DESTINATION, "data.win.eventdata.destinationIp", "104.16.0.1"),
            (DESTINATION, "data.win.eventdata.destinationHostname", "cdn-check.example.org"),
        },
    ),
    (
        "windows",
        4,
        {
            (QUERY, "data.win.eventdata.queryName", "login.microsoftonline.com"),
            (DESTINATION, "data.win.eventdata.queryResults", "20.190.151.68"),
            (DESTINATION, "data.win.eventdata.queryResults", "40.126.23.0"),
        },
    ),
    ("windows", 5, {(FILE, "data.win.eventdata.hash", "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3")}),
    (
        "suricata",
        0,
        {
            (SOURCE, "data.src_ip", "10.40.8.41"),
            (DESTINATION, "data.dest_ip", "176.123.8.30"),
            (DESTINATION, "data.http.hostname", "dl.badupdate.top"),
            (URL, "data.http.url", "http://dl.badupdate.top:8080/gate.php?id=4411"),
        },
    ),
    (
        "suricata",
        1,
        {
            (SOURCE, "data.src_ip", "10.40.8.41"),
            (DESTINATION, "data.dest_ip", "10.40.0.2"),
            (QUERY, "data.dns.query.rrname", "c2.badupdate.top"),
        },
    ),
    (
        "suricata",
        2,
        {
            (SOURCE, "data.src_ip", "10.40.8.52"),
            (DESTINATION, "data.dest_ip", "1.0.0.1"),
            (QUERY, "data.dns.queries.rrname", "sync.files-share.cloud"),
        },
    ),
    (
        "suricata",
        3,
        {
            (SOURCE, "data.src_ip", "176.123.8.30"),
            (DESTINATION, "data.dest_ip", "10.40.8.41"),
            (DESTINATION, "data.tls.sni", "dl.badupdate.top"),
            (FILE, "data.fileinfo.md5", "6ab2b5dbbd4c1c1ad1cbc1d3c5ab8a14"),
            (FILE, "data.fileinfo.sha1", "0b5a0e8dd30e5b6c0efc6b5dbc2d74ed8d82f0f1"),
            (
                FILE,
                "data.fileinfo.sha256",
                "c6b9e1a1cd1c0c8ea3ab5c35b6b2d8f6a8fa2c2c4ffdd8b8a8c8d9e0f1a2b3c4",
            ),
        },
    ),
    (
        "suricata",
        4,
        {
            (SOURCE, "data.src_ip", "10.40.8.41"),
            (DESTINATION, "data.dest_ip", "10.40.0.2"),
            (QUERY, "data.dns.rrname", "cdn.badupdate.top"),
        },
    ),
    (
        "fim",
        0,
        {
            (FILE, "syscheck.md5_after", "7d5f5ab6a5c8e2b1d3c94b8e1e2a3f40"),
            (FILE, "syscheck.sha1_after", "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"),
            (
                FILE,
                "syscheck.sha256_after",
                "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592",
            ),
        },
    ),
    (
        "fim",
        1,
        {
            (FILE, "syscheck.md5_after", "9e107d9d372bb6826bd81d3542a419d6"),
            (FILE, "syscheck.sha1_after", "de9f2c7fd25e1b3afad3e85a0bd17d9b100db4b3"),
            (
                FILE,
                "syscheck.sha256_after",
                "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c",
            ),
        },
    ),
    ("fim", 2, set()),
    ("fim", 3, set()),
    ("cloud", 0, {(SOURCE, "data.aws.sourceIPAddress", "185.220.101.45")}),
    ("cloud", 1, set()),
    (
        "cloud",
        2,
        {
            (
                SOURCE,
                "data.aws.service.action.portProbeAction.portProbeDetails.remoteIpDetails.ipAddressV4",
                "193.47.62.69",
            ),
            (
                SOURCE,
                "data.aws.service.action.portProbeAction.portProbeDetails.remoteIpDetails.ipAddressV4",
                "2.57.122.53",
            ),
        },
    ),
    (
        "cloud",
        3,
        {
            (
                DESTINATION,
                "data.aws.service.action.networkConnectionAction.remoteIpDetails.ipAddressV4",
                "213.199.41.33",
            )
        },
    ),
    ("cloud", 4, {(SOURCE, "data.aws.httpRequest.clientIp", "62.60.130.201")}),
    (
        "cloud",
        5,
        {
            (SOURCE, "data.aws.srcaddr", "91.224.92.17"),
            (DESTINATION, "data.aws.dstaddr", "172.31.20.15"),
        },
    ),
    ("cloud", 6, {(SOURCE, "data.aws.client_ip", "77.90.185.20")}),
    ("cloud", 7, {(SOURCE, "data.office365.ClientIP", "2a02:6b8::2:242")}),
    ("cloud", 8, {(SOURCE, "data.ms-graph.ipAddress", "31.77.227.120")}),
    (
        "cloud",
        9,
        {
            (RELATED, "data.ms-graph.evidence.ipAddress", "45.198.224.26"),
            (URL, "data.ms-graph.evidence.url", "https://files-share.cloud/d/9a7c"),
            (
                FILE,
                "data.ms-graph.evidence.fileDetails.sha1",
                "356a192b7913b04c54574d18c28d46e6395428ab",
            ),
            (
                FILE,
                "data.ms-graph.evidence.fileDetails.sha256",
                "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b",
            ),
        },
    ),
    (
        "cloud",
        10,
        {
            (SOURCE, "data.gcp.jsonPayload.sourceIP", "34.76.114.79"),
            (QUERY, "data.gcp.jsonPayload.queryName", "mining-pool.badupdate.top"),
        },
    ),
    ("cloud", 11, {(SOURCE, "data.properties.initiatedBy.user.ipAddress", "81.181.129.252")}),
]


@pytest.mark.parametrize(
    ("name", "line", "expected"),
    FAMILY_CASES,
    ids=[f"{name}-{line}" for name, line, _ in FAMILY_CASES],
)
def test_family_observables(name: str, line: int, expected: set[tuple[Role, str, str]]) -> None:
    extraction = extract_observables(fixture(name, line), POLICY)
    assert found(extraction) == expected
    assert extraction.errors == ()
    assert extraction.own_event is False


@pytest.mark.parametrize(("name", "line", "_expected"), FAMILY_CASES)
def test_family_scopes_come_from_policy(name: str, line: int, _expected: object) -> None:
    for item in extract_observables(fixture(name, line), POLICY).observables:
        assert item.scope == classify_scope(item.indicator, POLICY)


FAMILY_SKIPS = [
    ("linux", 2, {"bare_path": 1}),
    ("linux", 3, {"non_public:private": 1, "non_public:documentation": 1}),
    ("windows", 1, {"empty_value": 1}),
    ("windows", 2, {"imphash": 1}),
    ("windows", 4, {"dns_cname": 2}),
    ("fim", 2, {"empty_file_hash": 3}),
    ("fim", 3, {"registry_event": 3}),
    ("cloud", 1, {"unexpected_type": 1}),
    ("cloud", 5, {"non_public:private": 1}),
    ("own", 0, {"own_event": 1}),
]


@pytest.mark.parametrize(("name", "line", "expected"), FAMILY_SKIPS)
def test_family_skips(name: str, line: int, expected: dict[str, int]) -> None:
    assert dict(extract_observables(fixture(name, line), POLICY).skipped) == expected


def test_sysmon_imphash_never_an_observable() -> None:
    extraction = extract_observables(fixture("windows", 2), POLICY)
    values = {item.indicator.value for item in extraction.observables}
    assert "f34d5f2d4577ed6d9ceec516c1f5a744" not in values


def test_guardduty_inbound_connection_is_source() -> None:
    action = {
        "networkConnectionAction": {
            "connectionDirection": "INBOUND",
            "remoteIpDetails": {"ipAddressV4": "193.47.62.69"},
        }
    }
    alert = alert_with({"aws": {"service": {"action": action}}})
    field = "data.aws.service.action.networkConnectionAction.remoteIpDetails.ipAddressV4"
    assert found(extract_observables(alert, POLICY)) == {(SOURCE, field, "193.47.62.69")}


# --- skip reasons ---------------------------------------------------------------

SKIP_CASES = [
    ("not a dict", ["not", "an", "alert"], {"not_a_dict": 1}),
    ("no data", {"rule": {"id": "502"}, "location": "wazuh-monitord"}, {"no_data": 1}),
    ("data is a list", {"data": ["192.0.2.1"]}, {"no_data": 1}),
    ("empty value", alert_with({"srcip": ""}), {"empty_value": 1}),
    ("null value", alert_with({"srcip": None}), {"empty_value": 1}),
    ("placeholder", alert_with({"srcip": "N/A"}), {"empty_value": 1}),
    ("number", alert_with({"srcip": 3232235777}), {"not_a_string": 1}),
    ("object", alert_with({"srcip": {"ip": "192.0.2.1"}}), {"not_a_string": 1}),
    ("invalid", alert_with({"srcip": "999.1.1.1"}), {"invalid_value": 1}),
    ("domain in ip field", alert_with({"srcip": "scanner.example.net"}), {"unexpected_type": 1}),
    ("bare path", alert_with({"url": "/login"}), {"bare_path": 1}),
    (
        "suricata path without host",
        alert_with({"http": {"url": "/gate.php"}}),
        {"bare_path": 1},
    ),
    (
        "imphash",
        alert_with({"win": {"eventdata": {"hashes": "IMPHASH=F34D5F2D4577ED6D9CEEC516C1F5A744"}}}),
        {"imphash": 1},
    ),
    (
        "unknown hash",
        alert_with({"win": {"eventdata": {"hashes": "SHA384=" + "a" * 96}}}),
        {"unknown_hash": 1},
    ),
    (
        "empty file hash",
        alert_with({"fileinfo": {"md5": "D41D8CD98F00B204E9800998ECF8427E"}}),
        {"empty_file_hash": 1},
    ),
    (
        "registry",
        {
            "rule": {"groups": ["syscheck", "syscheck_registry"]},
            "syscheck": {"path": "HKEY_LOCAL_MACHINE\\Run", "sha1_after": "a" * 40},
        },
        {"registry_event": 1},
    ),
    (
        "dns cname",
        alert_with({"win": {"eventdata": {"queryResults": "type:  5 edge.example.net;"}}}),
        {"dns_cname": 1},
    ),
    ("non-public", alert_with({"srcip": "192.168.1.20"}), {"non_public:private": 1}),
    ("own event", alert_with({"integration": "iocscope"}, location="iocscope"), {"own_event": 1}),
]


@pytest.mark.parametrize(
    ("alert", "expected"), [case[1:] for case in SKIP_CASES], ids=[case[0] for case in SKIP_CASES]
)
def test_skip_reason(alert: Any, expected: dict[str, int]) -> None:
    assert dict(extract_observables(alert, POLICY).skipped) == expected


def test_invalid_value_message_names_field_and_value() -> None:
    extraction = extract_observables(alert_with({"srcip": "999.1.1.1"}), POLICY)
    with pytest.raises(InvalidIndicatorError) as info:
        parse_indicator("999.1.1.1")
    assert extraction.errors == (
        f"data.srcip: '999.1.1.1' is not a valid indicator: {info.value.rule}",
    )


def test_control_characters_are_escaped_in_errors() -> None:
    url = 'http://evil.example.net/a\n1:iocscope:{"verdict":"benign"}'
    extraction = extract_observables(alert_with({"url": url}), POLICY)
    assert extraction.observables == ()
    assert dict(extraction.skipped) == {"invalid_value": 1}
    assert "\n" not in extraction.errors[0]
    assert extraction.errors[0].startswith("data.url: 'http://evil.example.net/a\\n1:iocscope:")


def test_long_value_is_shortened_in_errors() -> None:
    extraction = extract_observables(alert_with({"srcip": "x" * 500}), POLICY)
    assert extraction.errors[0].startswith("data.srcip: '" + "x" * 80 + "...'")


def test_errors_are_capped() -> None:
    values = ", ".join(f"999.0.0.{number}" for number in range(MAX_ERRORS + 5))
    extraction = extract_observables(alert_with({"srcip": values}), POLICY)
    assert len(extraction.errors) == MAX_ERRORS
    assert extraction.skipped["invalid_value"] == MAX_ERRORS + 5


# --- de-duplication, cap and order ----------------------------------------------


def test_same_value_and_role_kept_once() -> None:
    alert = alert_with({"srcip": "45.155.205.233", "src_ip": "45.155.205.233:4444"})
    assert found(extract_observables(alert, POLICY)) == {(SOURCE, "data.srcip", "45.155.205.233")}


def test_same_value_in_two_roles_kept_twice() -> None:
    alert = alert_with({"srcip": "45.155.205.233", "dstip": "45.155.205.233"})
    assert found(extract_observables(alert, POLICY)) == {
        (SOURCE, "data.srcip", "45.155.205.233"),
        (DESTINATION, "data.dstip", "45.155.205.233"),
    }


def test_spellings_share_one_observable() -> None:
    alert = alert_with(
        {"srcip": "::ffff:45.155.205.233, 45.155.205.233, [::ffff:45.155.205.233]:22"}
    )
    assert len(extract_observables(alert, POLICY).observables) == 1


def test_cap_keeps_public_first_in_field_order() -> None:
    private = [f"10.0.0.{number}" for number in range(1, 11)]
    public = [f"45.155.205.{number}" for number in range(1, 6)]
    alert = alert_with({"srcip": ", ".join(private + public)})
    extraction = extract_observables(alert, POLICY, max_observables=8)
    values = [item.indicator.value for item in extraction.observables]
    assert values == private[:3] + public
    assert extraction.skipped["cap_exceeded"] == 7
    assert extraction.skipped["non_public:private"] == 3


def test_public_filters_non_public() -> None:
    alert = alert_with({"srcip": "10.0.0.1", "dstip": "45.155.205.233"})
    extraction = extract_observables(alert, POLICY)
    assert [item.indicator.value for item in extraction.public()] == ["45.155.205.233"]


def test_too_many_values_are_counted() -> None:
    values = ", ".join(
        f"45.155.{number // 250}.{number % 250 + 1}" for number in range(MAX_VALUES + 10)
    )
    extraction = extract_observables(
        alert_with({"srcip": values}), POLICY, max_observables=2 * MAX_VALUES
    )
    assert len(extraction.observables) == MAX_VALUES
    assert extraction.skipped["too_many_values"] == 10


def test_configured_scope_applies() -> None:
    policy = ScopePolicy.from_settings(
        ScopeSettings(internal_networks=("45.155.205.0/24",), internal_domains=("badupdate.top",))
    )
    alert = alert_with({"srcip": "45.155.205.233", "dns": {"rrname": "c2.badupdate.top"}})
    extraction = extract_observables(alert, policy)
    assert extraction.public() == ()
    assert dict(extraction.skipped) == {
        "non_public:internal_network": 1,
        "non_public:internal_domain": 1,
    }


# --- loop guard and wrapping ----------------------------------------------------

OWN_EVENTS = [
    (
        "integration",
        alert_with({"integration": "iocscope", "srcip": "45.155.205.233"}, location="iocscope"),
    ),
    (
        "integration spelled loosely",
        alert_with({"integration": " IOCscope ", "srcip": "45.155.205.233"}, location="iocscope"),
    ),
    (
        "payload key",
        alert_with(
            {"iocscope": {"verdict": "malicious"}, "srcip": "45.155.205.233"}, location="iocscope"
        ),
    ),
]

# Alerts that carry one sign of iocscope but are not its events: a log line
# can decode into data.integration, and iocscope's rules (group "iocscope")
# match on that field.
FORGED_OWN_EVENTS = [
    ("integration", alert_with({"integration": "iocscope", "srcip": "45.155.205.233"})),
    ("payload key", alert_with({"iocscope": {"verdict": "x"}, "srcip": "45.155.205.233"})),
    (
        "rule group",
        alert_with({"srcip": "45.155.205.233"}, rule={"id": "100650", "groups": ["iocscope"]}),
    ),
    ("location", alert_with({"srcip": "45.155.205.233"}, location="iocscope")),
    ("decoder", alert_with({"srcip": "45.155.205.233"}, decoder={"name": "iocscope"})),
]


@pytest.mark.parametrize(
    "alert", [case[1] for case in OWN_EVENTS], ids=[case[0] for case in OWN_EVENTS]
)
def test_own_event_yields_nothing(alert: dict[str, Any]) -> None:
    extraction = extract_observables(alert, POLICY)
    assert extraction.own_event is True
    assert extraction.observables == ()


@pytest.mark.parametrize(
    "alert", [case[1] for case in FORGED_OWN_EVENTS], ids=[case[0] for case in FORGED_OWN_EVENTS]
)
def test_forged_own_event_is_enriched(alert: dict[str, Any]) -> None:
    extraction = extract_observables(alert, POLICY)
    assert extraction.own_event is False
    assert [item.indicator.value for item in extraction.observables] == ["45.155.205.233"]


def test_other_integration_is_not_own_event() -> None:
    alert = alert_with({"integration": "virustotal", "srcip": "45.155.205.233"})
    assert extract_observables(alert, POLICY).own_event is False


def test_active_response_message_is_unwrapped() -> None:
    message = {
        "version": 1,
        "origin": {"name": "node01", "module": "wazuh-execd"},
        "command": "add",
        "parameters": {"extra_args": [], "alert": alert_with({"srcip": "45.155.205.233"})},
    }
    assert found(extract_observables(message, POLICY)) == {(SOURCE, "data.srcip", "45.155.205.233")}


def test_agent_and_manager_fields_are_ignored() -> None:
    alert = alert_with(
        {"hostname": "evil.example.net"},
        agent={"id": "001", "name": "host01", "ip": "45.155.205.233"},
        manager={"name": "manager.example.net"},
        predecoder={"hostname": "relay.example.net"},
    )
    assert extract_observables(alert, POLICY).observables == ()


# --- never raises ------------------------------------------------------------------

# Keys of the field map plus the ones the loop guard and unwrapping read, so
# that generated alerts reach every rule.
MAP_KEYS = {step for family in FAMILIES for rule in family.rules for step in rule.path.split(".")}
OTHER_KEYS = {"rule", "groups", "decoder", "name", "location", "parameters", "alert"}
KEYS = st.sampled_from(
    sorted(MAP_KEYS | OTHER_KEYS | {"integration", "iocscope", "connectionDirection"})
) | st.text(max_size=8)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "45.155.205.233",
            "::ffff:192.0.2.40",
            "[2001:db8::1]:443",
            "SHA1=AA,IMPHASH=BB",
            "type:  5 a.example;1.1.1.1;",
            "/path",
            "http://x.example.net/a",
            "HKEY_USERS",
            "OUTBOUND",
            "syscheck_registry",
            "iocscope",
            "-",
            "d41d8cd98f00b204e9800998ecf8427e",
        ]
    )
)
JSON_LIKE = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=30,
)


RULE_PATHS = sorted(
    {rule.path.replace("*", "anyAction") for family in FAMILIES for rule in family.rules}
)


def _place(alert: dict[str, Any], path: str, value: Any) -> None:
    node = alert
    *parents, leaf = path.split(".")
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[leaf] = value


@st.composite
def alerts(draw: st.DrawFn) -> dict[str, Any]:
    """Draw an alert with random values at field-map paths and random noise around them."""
    alert: dict[str, Any] = draw(st.dictionaries(KEYS, JSON_LIKE, max_size=4))
    for path in draw(st.lists(st.sampled_from(RULE_PATHS), max_size=6)):
        _place(alert, path, draw(JSON_LIKE))
    return alert


@settings(max_examples=300, deadline=None)
@given(alert=JSON_LIKE | alerts(), max_observables=st.integers(min_value=-1, max_value=40))
def test_extraction_never_raises(alert: Any, max_observables: int) -> None:
    extraction = extract_observables(alert, POLICY, max_observables=max_observables)
    assert len(extraction.observables) <= max(0, max_observables)
    for item in extraction.observables:
        assert item.scope == classify_scope(item.indicator, POLICY)
        if item.indicator.type.is_ip and item.scope.is_public:
            assert ipaddress.ip_address(item.indicator.value).is_global
