"""An emulation of how Wazuh evaluates iocscope's rules, for tests.

Rules are parsed from the generated XML; each <field> is evaluated with the
wazuhregex emulation of OS_Regex (or PCRE2 / OS_Match where a rule asks for
them), and an event walks the tree from the base rule down by if_sid.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field

from wazuhregex import WazuhRegex  # type: ignore[import-untyped]


@dataclass
class Field:
    name: str
    pattern: str
    engine: str
    negate: bool


@dataclass
class Rule:
    id: int
    level: int
    groups: list[str]
    if_sid: list[int] = field(default_factory=list)
    decoded_as: str | None = None
    fields: list[Field] = field(default_factory=list)
    frequency: int | None = None
    timeframe: int | None = None
    if_matched_sid: int | None = None
    if_matched_group: str | None = None
    description: str = ""


def parse_rules(text: str) -> list[Rule]:
    # A rules file contains several top-level <group> elements; a root makes it XML.
    root = ET.fromstring(f"<root>{text}</root>")  # noqa: S314 (iocscope's own generated text)
    rules = []
    for group in root.findall("group"):
        group_names = [name for name in group.get("name", "").split(",") if name]
        for element in group.findall("rule"):
            rules.append(parse_rule(element, group_names))
    return rules


def parse_rule(element: ET.Element, group_names: list[str]) -> Rule:
    rule = Rule(id=int(element.get("id", "0")), level=int(element.get("level", "-1")), groups=[])
    rule.groups = group_names + [
        name for child in element.findall("group") for name in (child.text or "").split(",") if name
    ]
    if element.get("frequency") is not None:
        rule.frequency = int(element.get("frequency", "0"))
        rule.timeframe = int(element.get("timeframe", "0"))
    for child in element:
        text = (child.text or "").strip()
        if child.tag == "if_sid":
            rule.if_sid = [int(sid) for sid in re.split(r"[,\s]+", text) if sid]
        elif child.tag == "decoded_as":
            rule.decoded_as = text
        elif child.tag == "field":
            engine = child.get("type", "osregex")
            negate = child.get("negate", "no") == "yes"
            rule.fields.append(Field(child.get("name", ""), child.text or "", engine, negate))
        elif child.tag == "if_matched_sid":
            rule.if_matched_sid = int(text)
        elif child.tag == "if_matched_group":
            rule.if_matched_group = text
        elif child.tag == "description":
            rule.description = text
    return rule


def field_matches(item: Field, value: str) -> bool:
    regex = WazuhRegex(item.pattern)
    engines = {"osregex": regex.os_regex, "pcre2": regex.pcre2_regex, "osmatch": regex.os_match}
    matched = bool(engines[item.engine](value)[0])
    return matched != item.negate


def rule_matches(rule: Rule, fields: Mapping[str, str]) -> bool:
    # Every event is valid JSON, so the "json" decoder is the one that decoded it.
    if rule.decoded_as is not None and rule.decoded_as != "json":
        return False
    for item in rule.fields:
        value = fields.get(item.name)
        if value is None or not field_matches(item, value):
            return False
    return True


def evaluate(rules: list[Rule], fields: Mapping[str, str]) -> Rule | None:
    """Return the rule a single event ends on; frequency rules need several events."""
    tree = [rule for rule in rules if rule.frequency is None]
    current = None
    candidates = [rule for rule in tree if not rule.if_sid]
    while True:
        matching = [rule for rule in candidates if rule_matches(rule, fields)]
        assert len(matching) <= 1, f"sibling rules overlap: {[rule.id for rule in matching]}"
        if not matching:
            return current
        current = matching[0]
        candidates = [rule for rule in tree if current.id in rule.if_sid]
