"""Public bug cases of enrichment results missing from Wazuh, and of header injection.

Each test reads its case from the shared case file (skipped when absent)
and checks the behaviour the case's ``expected`` text asks of the events,
the queue header or the rules.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import orjson
import pytest

from iocscope.indicators.model import IndicatorType
from iocscope.wazuh.analysisd import flatten_json_like_wazuh, parse_queue_message
from iocscope.wazuh.events import build_event, encode_event
from iocscope.wazuh.queue import build_message
from iocscope.wazuh.rules import DEFAULT_BASE_ID, RULE_LEVELS, render_rules
from tests.support.corpus import cases_of
from tests.wazuh.ruleengine import Field, evaluate, field_matches, parse_rule, parse_rules
from tests.wazuh.test_events import ALERT, clean, failed, flagged, record_for

# Cases of the dashboard_missing family that are about something other than
# the events, the queue header or the rules, and where they are tested.
OTHER_AREAS = {
    "B18": "observable field paths: tests/observables",
    "B19": "MISP query filters and per-provider hit reports: not a Wazuh output concern",
}
COVERED_HERE = {"B12", "B15", "B16", "B17"}


def case(case_id: str, family: str = "dashboard_missing") -> dict[str, Any]:
    for item in cases_of(family):
        if item["id"] == case_id:
            return item
    pytest.skip(f"public bug case {case_id} is absent from the shared case file")


def fields_of(message: bytes) -> dict[str, str]:
    return flatten_json_like_wazuh(orjson.loads(parse_queue_message(message).payload))


def rule_id_for(offset_name: str) -> int:
    return DEFAULT_BASE_ID + RULE_LEVELS[offset_name].offset


def shape_problems(event: dict[str, Any], namespace: str) -> list[str]:
    """List what makes an event hard to index and query, in the terms of case B15."""
    problems = [f"top-level key {key!r}" for key in event if key not in ("integration", namespace)]

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else key)
        elif isinstance(node, list) and not node:
            problems.append(f"empty array {path}")
        elif isinstance(node, str) and path.endswith("score") and node.isdigit():
            problems.append(f"number as string {path}")

    walk(event, "")
    return problems


def test_family_cases_all_accounted_for() -> None:
    ids = {item["id"] for item in cases_of("dashboard_missing")}
    if not ids:
        pytest.skip("the shared case file is absent")
    assert ids <= COVERED_HERE | set(OTHER_AREAS)


def test_b12_every_event_carries_marker() -> None:
    item = case("B12")
    theirs = parse_queue_message(item["input"]["queue_message"].encode())
    expects = item["input"]["rule_expects"]
    # The case's message lacks the field its rule anchors on, so the rule never fires.
    assert expects["field"] not in flatten_json_like_wazuh(orjson.loads(theirs.payload))
    # The same agent's alert, enriched by iocscope: same header shape, iocscope's marker.
    agent = {"id": theirs.agent_id, "name": theirs.agent_name, "ip": theirs.agent_ip}
    alert = dict(ALERT, agent=agent)
    record = record_for(value="malicious.example", kind=IndicatorType.DOMAIN)
    ours = parse_queue_message(
        build_message(alert, build_event(record, alert, role="query", field="data.dns.question"))
    )
    assert (ours.agent_id, ours.agent_name, ours.agent_ip) == (
        theirs.agent_id,
        theirs.agent_name,
        theirs.agent_ip,
    )
    assert flatten_json_like_wazuh(orjson.loads(ours.payload))[expects["field"]] == "iocscope"


def test_b12_rule_id_asserted_per_message_shape() -> None:
    item = case("B12")
    rules = parse_rules(render_rules())
    theirs = fields_of(item["input"]["queue_message"].encode())
    assert evaluate(rules, theirs) is None
    record = record_for(value="malicious.example", kind=IndicatorType.DOMAIN)
    for alert in (ALERT, dict(ALERT, agent={"id": "000", "name": "wazuh-manager"})):
        event = build_event(record, alert, role="query", field="data.dns.question")
        reached = evaluate(rules, fields_of(build_message(alert, event)))
        assert reached is not None
        assert reached.id == rule_id_for("malicious")


def test_b15_fields_namespaced_numbers_no_empty_arrays() -> None:
    item = case("B15")
    assert shape_problems(item["input"], "ioc") == [
        "top-level key 'data'",
        "number as string ioc.score",
        "empty array ioc.tags",
    ]
    record = record_for("unknown", 0, results=[], reasons=())
    event = build_event(record, ALERT, role="source", field="data.srcip")
    assert shape_problems(event, "iocscope") == []
    assert set(event) == {"integration", "iocscope"}
    assert b'"risk_score":0' in encode_event(event)


def test_b16_or_pattern_positive_and_negative_samples() -> None:
    item = case("B16")
    samples: dict[str, bool] = item["input"]["samples"]
    theirs = parse_rule(ET.fromstring(item["input"]["rule_xml"]), [])  # noqa: S314 (case text)
    # The case's "malicious||suspicious" has an empty alternative: benign fires too.
    assert field_matches(theirs.fields[0], "benign") is True
    assert samples["benign"] is False
    rules = {rule.id: rule for rule in parse_rules(render_rules())}
    for name in ("malicious", "suspicious", "benign"):
        verdict_field: Field = rules[rule_id_for(name)].fields[0]
        for sample in samples:
            assert field_matches(verdict_field, sample) == (sample == name)


def test_b17_distinct_rule_per_outcome() -> None:
    case("B17")
    rules = parse_rules(render_rules())
    outcomes = {
        "positives": record_for("malicious", 95, results=[flagged("vt")]),
        "clean": record_for("benign", 0, results=[clean("vt")]),
        "not found": record_for("unknown", 0, results=[]),
        "error": record_for("unknown", 0, results=[failed("vt")]),
    }
    reached = {}
    for outcome, record in outcomes.items():
        event = build_event(record, ALERT, role="file", field="syscheck.sha256_after")
        rule = evaluate(rules, fields_of(build_message(ALERT, event)))
        assert rule is not None
        reached[outcome] = rule
    assert len({rule.id for rule in reached.values()}) == len(outcomes)
    assert reached["positives"].level >= 12
    others = [rule.level for outcome, rule in reached.items() if outcome != "positives"]
    assert max(others) < reached["positives"].level
    assert reached["error"].level > reached["not found"].level


def test_b60_attacker_newline_makes_one_event() -> None:
    item = case("B60", family="security")
    alert = item["input"]
    url = alert["data"]["url"]
    record = record_for("malicious", 91, value=url, kind=IndicatorType.URL, results=[flagged("x")])
    message = build_message(alert, build_event(record, alert, role="url", field="data.url"))
    assert b"\n" not in message
    parsed = parse_queue_message(message)
    assert (parsed.agent_id, parsed.location) == ("003", "iocscope")
    event = orjson.loads(parsed.payload)
    assert set(event) == {"integration", "iocscope"}
    assert event["iocscope"]["verdict"] == "malicious"
    assert event["iocscope"]["indicator"]["value"] == url
    rules = parse_rules(render_rules())
    reached = evaluate(rules, flatten_json_like_wazuh(event))
    assert reached is not None
    assert reached.id == rule_id_for("malicious")
