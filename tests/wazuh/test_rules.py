"""The rules file, checked against the events the daemon really emits.

Every event shape (each verdict, status, severity band and role) is built
with build_event, put on the queue with its header, split and flattened as
analysisd would, and run through an emulation of the rule tree: the base
rule, then children by if_sid, each <field> evaluated with the wazuhregex
emulation of OS_Regex (or PCRE2 / OS_Match where a rule asks for them).
Each event must reach exactly the rule and level that rules.expected_rule
promises, and no two sibling rules may match the same event.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from wazuhregex import WazuhRegex  # type: ignore[import-untyped]

from iocscope.errors import ConfigError
from iocscope.indicators.model import IndicatorType
from iocscope.sources.contract import SourceResult, Status
from iocscope.wazuh.analysisd import STATIC_FIELDS, flatten_json_like_wazuh, parse_queue_message
from iocscope.wazuh.events import build_event
from iocscope.wazuh.queue import build_message
from iocscope.wazuh.rules import (
    CUSTOM_ID_FIRST,
    CUSTOM_ID_LAST,
    DEFAULT_BASE_ID,
    REPEAT_FREQUENCY,
    RULE_COUNT,
    RULE_LEVELS,
    expected_rule,
    render_rules,
)
from tests.wazuh.ruleengine import Rule, evaluate, field_matches, parse_rules
from tests.wazuh.test_events import ALERT, failed, flagged, record_for


def event_shapes() -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (name, event) for every verdict, status, severity band and role the daemon emits."""
    healthy = [flagged("ipsum")]
    degraded = [flagged("ipsum"), failed("abuseipdb")]
    scores = [0, 1, 39, 40, 69, 70, 89, 90, 100]
    for verdict, score, results in itertools.product(
        ("malicious", "suspicious", "benign", "unknown"), scores, (healthy, degraded)
    ):
        record = record_for(verdict, score, results=results)
        yield (
            f"{verdict}-{score}-{len(results)}",
            build_event(record, ALERT, role="destination", field="data.dstip"),
        )
    all_failed = [failed("abuseipdb"), failed("otx", Status.RATE_LIMITED)]
    yield (
        "all-failed",
        build_event(
            record_for("unknown", 0, results=all_failed), ALERT, role="source", field="data.srcip"
        ),
    )
    yield (
        "not-public",
        build_event(
            record_for("unknown", 0, value="10.0.0.5", public=False),
            ALERT,
            role="source",
            field="data.srcip",
        ),
    )
    yield from role_shapes()


def role_shapes() -> Iterator[tuple[str, dict[str, Any]]]:
    values = {
        IndicatorType.IPV4: "203.0.113.9",
        IndicatorType.IPV6: "2001:db8::9",
        IndicatorType.DOMAIN: "malicious.example",
        IndicatorType.URL: "http://malicious.example/a",
        IndicatorType.SHA256: "a" * 64,
    }
    roles = ("source", "destination", "file", "query", "url")
    for (kind, value), role in itertools.product(values.items(), roles):
        for verdict in ("malicious", "suspicious"):
            record = record_for(verdict, 95, value=value, kind=kind, results=[flagged("x")])
            event = build_event(record, ALERT, role=role, field="data.x")
            yield f"{verdict}-{kind.value}-{role}", event


SHAPES = list(event_shapes())


@pytest.fixture(scope="module")
def rules() -> list[Rule]:
    return parse_rules(render_rules())


def fields_seen_by_wazuh(event: dict[str, Any]) -> dict[str, str]:
    """Send the event through the header and the decoder, as analysisd would see it."""
    message = parse_queue_message(build_message(ALERT, event))
    return flatten_json_like_wazuh(orjson.loads(message.payload))


@pytest.mark.parametrize(("name", "event"), SHAPES, ids=[name for name, _ in SHAPES])
def test_event_reaches_promised_rule(rules: list[Rule], name: str, event: dict[str, Any]) -> None:
    reached = evaluate(rules, fields_seen_by_wazuh(event))
    rule_id, level = expected_rule(event)
    assert reached is not None
    assert reached.id == rule_id
    assert reached.level == level


@pytest.mark.parametrize(
    ("name", "offset", "level"),
    [
        ("malicious-90-1", 1, 12),
        ("suspicious-40-1", 2, 7),
        ("benign-0-1", 3, 3),
        ("unknown-0-1", 4, 3),
        ("unknown-0-2", 5, 5),
        ("all-failed", 5, 5),
        ("not-public", 6, 0),
        ("malicious-ipv4-source", 7, 12),
        ("malicious-ipv6-source", 7, 12),
        ("malicious-ipv4-destination", 1, 12),
        ("malicious-domain-source", 1, 12),
        ("suspicious-ipv4-source", 2, 7),
    ],
)
def test_rule_table(rules: list[Rule], name: str, offset: int, level: int) -> None:
    event = dict(SHAPES)[name]
    reached = evaluate(rules, fields_seen_by_wazuh(event))
    assert reached is not None
    assert reached.id == DEFAULT_BASE_ID + offset
    assert reached.level == level


def test_other_integrations_do_not_match(rules: list[Rule]) -> None:
    for integration in ("virustotal", "iocscope2", "xiocscope", "misp"):
        fields = {"integration": integration, "iocscope.verdict": "malicious"}
        assert evaluate(rules, fields) is None


def test_field_patterns_valid_os_regex(rules: list[Rule]) -> None:
    for rule in rules:
        for item in rule.fields:
            assert item.engine == "osregex"
            assert WazuhRegex(item.pattern).validation_errors() == {}
            # An empty alternative ("a||b") matches every value in OS_Regex.
            assert "" not in item.pattern.split("|"), item.pattern
            assert "[" not in item.pattern, "OS_Regex has no character classes"


def test_field_patterns_match_only_their_words(rules: list[Rule]) -> None:
    emitted: dict[str, set[str]] = {}
    for _, event in SHAPES:
        for key, value in fields_seen_by_wazuh(event).items():
            emitted.setdefault(key, set()).add(value)
    for rule in rules:
        for item in rule.fields:
            words = {word.strip("^$") for word in item.pattern.split("|")}
            seen = emitted[item.name]
            assert words <= seen, f"{item.name}: {words - seen} never emitted"
            for value in seen:
                assert field_matches(item, value) == (value in words), (item.pattern, value)


def test_no_static_field_in_rules(rules: list[Rule]) -> None:
    for rule in rules:
        for item in rule.fields:
            assert item.name not in STATIC_FIELDS


def test_rule_ids_unique_and_in_range(rules: list[Rule]) -> None:
    ids = [rule.id for rule in rules]
    assert len(ids) == len(set(ids)) == RULE_COUNT
    assert ids == list(range(DEFAULT_BASE_ID, DEFAULT_BASE_ID + RULE_COUNT))
    assert all(CUSTOM_ID_FIRST <= rule_id <= CUSTOM_ID_LAST for rule_id in ids)


def test_rule_levels_match_table(rules: list[Rule]) -> None:
    by_id = {rule.id: rule for rule in rules}
    for level in RULE_LEVELS.values():
        assert by_id[DEFAULT_BASE_ID + level.offset].level == level.level
    assert all(0 <= rule.level <= 16 for rule in rules)


def test_parents_defined_before_children(rules: list[Rule]) -> None:
    seen: set[int] = set()
    for rule in rules:
        assert set(rule.if_sid) <= seen, rule.id
        seen.add(rule.id)


def test_frequency_rule_valid(rules: list[Rule]) -> None:
    frequency_rules = [rule for rule in rules if rule.frequency is not None]
    assert len(frequency_rules) == 1
    repeated = frequency_rules[0]
    assert repeated.frequency == REPEAT_FREQUENCY
    assert repeated.frequency is not None
    assert 2 <= repeated.frequency <= 9999
    assert repeated.timeframe is not None
    assert 1 <= repeated.timeframe <= 99999
    assert repeated.if_matched_group is not None or repeated.if_matched_sid is not None
    members = [rule for rule in rules if repeated.if_matched_group in rule.groups]
    assert {rule.id for rule in members} == {
        DEFAULT_BASE_ID + RULE_LEVELS["malicious"].offset,
        DEFAULT_BASE_ID + RULE_LEVELS["malicious_source_ip"].offset,
    }
    assert repeated.level > max(rule.level for rule in members)


def test_every_rule_reachable(rules: list[Rule]) -> None:
    reached = set()
    for _, event in SHAPES:
        rule = evaluate(rules, fields_seen_by_wazuh(event))
        assert rule is not None
        reached.add(rule.id)
    # The base rule only decides whether the children are tried; it never ends an event.
    tree = {rule.id for rule in rules if rule.frequency is None and rule.id != DEFAULT_BASE_ID}
    assert tree <= reached
    assert DEFAULT_BASE_ID not in reached


def test_descriptions_name_indicator(rules: list[Rule]) -> None:
    for rule in rules:
        if rule.frequency is None:
            assert "$(iocscope.indicator.value)" in rule.description


def test_groups_on_every_rule(rules: list[Rule]) -> None:
    for rule in rules:
        assert rule.groups[:2] == ["iocscope", "threat_intel"]


def test_custom_base_id_and_group() -> None:
    rules = parse_rules(render_rules(110000, group="intel"))
    assert [rule.id for rule in rules] == list(range(110000, 110000 + RULE_COUNT))
    assert all(rule.groups[:2] == ["intel", "threat_intel"] for rule in rules)


@pytest.mark.parametrize("base_id", [99_999, 119_999 - RULE_COUNT + 2, 120_000, 5712])
def test_base_id_out_of_range(base_id: int) -> None:
    last = base_id + RULE_COUNT - 1
    message = (
        f"invalid rule base ID {base_id}: iocscope needs {RULE_COUNT} rule IDs "
        f"({base_id}-{last}) within Wazuh's custom range 100000-119999; "
        f"choose a base ID from 100000 to {119_999 - RULE_COUNT + 1}"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        render_rules(base_id)


def test_highest_base_id_accepted() -> None:
    rules = parse_rules(render_rules(119_999 - RULE_COUNT + 1))
    assert rules[-1].id == 119_999


@pytest.mark.parametrize("group", ["", "a,b", "with space", "x" * 65])
def test_invalid_group_rejected(group: str) -> None:
    message = f"invalid rule group {group!r}: use 1 to 64 letters, digits, '-' or '_'"
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        render_rules(group=group)


def test_expected_rule_uses_base_id() -> None:
    event = build_event(record_for("suspicious", 50), ALERT, role="source", field="data.srcip")
    assert expected_rule(event, 110000) == (110002, 7)


def test_source_failure_shapes_differ_from_clean_unknown(rules: list[Rule]) -> None:
    clean = build_event(record_for("unknown", 0, results=[]), ALERT, role="url", field="data.url")
    broken = build_event(
        record_for("unknown", 0, results=[failed("otx"), SourceResult("vt", Status.SKIPPED)]),
        ALERT,
        role="url",
        field="data.url",
    )
    clean_rule = evaluate(rules, fields_seen_by_wazuh(clean))
    broken_rule = evaluate(rules, fields_seen_by_wazuh(broken))
    assert clean_rule is not None
    assert broken_rule is not None
    assert clean_rule.id != broken_rule.id
    assert broken_rule.level > clean_rule.level
