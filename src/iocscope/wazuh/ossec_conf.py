"""Idempotent edits of Wazuh's ``ossec.conf`` through marked blocks.

``ossec.conf`` is not a well-formed XML document: a manager's file contains
several top-level ``<ossec_config>`` elements plus comments, and Wazuh merges
them when it starts. So this module never parses and re-serialises the whole
file. It finds elements by their tags outside comments and inserts, replaces
or removes text between two marker comments::

    <!-- iocscope:begin integration -->
    ...
    <!-- iocscope:end integration -->

Everything outside the markers is left byte for byte as it was, and writing
the same block twice leaves the file unchanged, so a second install makes no
backup. The block renderers build the ``<integration>``, ``<list>``,
``<command>`` and ``<active-response>`` elements that the installer needs.
"""

from __future__ import annotations

import difflib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from iocscope.errors import ConfigError

INTEGRATION_BLOCK = "integration"
LISTS_BLOCK = "lists"
ACTIVE_RESPONSE_BLOCK = "active-response"
BLOCK_NAMES = (INTEGRATION_BLOCK, LISTS_BLOCK, ACTIVE_RESPONSE_BLOCK)

INTEGRATION_NAME = "custom-iocscope"
AR_COMMAND = "iocscope-ar"
MANAGED_NOTE = "<!-- Managed by iocscope: edits between these markers are overwritten. -->"

_INDENT = "  "
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_GROUP_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_MIN_LEVEL = 0
_MAX_LEVEL = 16


def begin_marker(name: str) -> str:
    """Return the comment that opens the marked block ``name``."""
    return f"<!-- iocscope:begin {name} -->"


def end_marker(name: str) -> str:
    """Return the comment that closes the marked block ``name``."""
    return f"<!-- iocscope:end {name} -->"


@dataclass(frozen=True, slots=True)
class IntegrationOptions:
    """What the ``<integration>`` block filters on.

    integratord (Wazuh 4.x ``src/os_integrator/integrator.c``) passes an
    alert when its level is at least ``level``, one of its rule groups is in
    ``groups`` and its rule ID is in ``rule_ids``. An empty filter is left
    out. ``<api_key>`` and ``<hook_url>`` are never written: integratord puts
    them on the script's command line, where every local user can read them
    with ``ps``, and the forwarder needs neither.
    """

    level: int = 3
    groups: tuple[str, ...] = ()
    rule_ids: tuple[int, ...] = ()
    name: str = INTEGRATION_NAME

    def __post_init__(self) -> None:
        if not self.name.startswith("custom-"):
            raise ConfigError(
                f"invalid integration name {self.name!r}: integratord only runs custom "
                "integrations whose name starts with 'custom-'"
            )
        if not _MIN_LEVEL <= self.level <= _MAX_LEVEL:
            raise ConfigError(f"invalid alert level {self.level}: expected 0 to 16")
        for group in self.groups:
            if not _GROUP_NAME.match(group):
                raise ConfigError(
                    f"invalid rule group {group!r}: use letters, digits, '_', '.' and '-' only"
                )
        _check_rule_ids(self.rule_ids, "integration rule ID")


@dataclass(frozen=True, slots=True)
class ActiveResponseOptions:
    """The rules whose alerts run ``iocscope-ar`` on the manager.

    The response is always bound to explicit rule IDs and never to a bare
    level, so iocscope's own events or Wazuh's active-response alerts
    cannot trigger it by accident.
    """

    rule_ids: tuple[int, ...]
    command: str = AR_COMMAND

    def __post_init__(self) -> None:
        if not self.rule_ids:
            raise ConfigError("an active response needs at least one rule ID")
        _check_rule_ids(self.rule_ids, "active-response rule ID")


def _check_rule_ids(rule_ids: Iterable[int], what: str) -> None:
    for rule_id in rule_ids:
        if not 1 <= rule_id <= 999999:
            raise ConfigError(f"invalid {what} {rule_id}: expected 1 to 999999")


def render_integration(options: IntegrationOptions) -> str:
    """Return the ``<integration>`` element, one tag a line, without indentation."""
    lines = ["<integration>", f"{_INDENT}<name>{options.name}</name>"]
    if options.level:
        lines.append(f"{_INDENT}<level>{options.level}</level>")
    if options.groups:
        lines.append(f"{_INDENT}<group>{','.join(options.groups)}</group>")
    if options.rule_ids:
        lines.append(f"{_INDENT}<rule_id>{','.join(map(str, options.rule_ids))}</rule_id>")
    lines += [f"{_INDENT}<alert_format>json</alert_format>", "</integration>"]
    return "\n".join(lines)


def render_list_declarations(list_paths: Sequence[str], *, wrap_in_ruleset: bool) -> str:
    """Return ``<list>`` lines, wrapped in a ``<ruleset>`` when the file has none."""
    lines = [f"<list>{path}</list>" for path in list_paths]
    if not wrap_in_ruleset:
        return "\n".join(lines)
    return "\n".join(["<ruleset>", *(_INDENT + line for line in lines), "</ruleset>"])


def render_active_response(options: ActiveResponseOptions) -> str:
    """Return the ``<command>`` and ``<active-response>`` elements for iocscope-ar.

    ``location`` is ``server`` because the script writes into the spool on
    the manager. ``timeout_allowed`` is ``no``: handing an alert over has no
    undo step. ``<disabled>no</disabled>`` is explicit because current Wazuh
    documentation requires it in every ``<active-response>`` block.
    """
    rule_ids = ",".join(map(str, options.rule_ids))
    return "\n".join(
        [
            "<command>",
            f"{_INDENT}<name>{options.command}</name>",
            f"{_INDENT}<executable>{options.command}</executable>",
            f"{_INDENT}<timeout_allowed>no</timeout_allowed>",
            "</command>",
            "<active-response>",
            f"{_INDENT}<disabled>no</disabled>",
            f"{_INDENT}<command>{options.command}</command>",
            f"{_INDENT}<location>server</location>",
            f"{_INDENT}<rules_id>{rule_ids}</rules_id>",
            "</active-response>",
        ]
    )


def mask_comments(text: str) -> str:
    """Return ``text`` with every comment replaced by spaces, keeping all offsets."""
    return _COMMENT.sub(lambda match: re.sub(r"[^\n]", " ", match.group()), text)


def _first_element(masked: str, tag: str) -> tuple[int, int] | None:
    """Return (start of the opening tag, start of the closing tag) of the first ``tag``."""
    opening = re.search(rf"<{tag}(?:\s[^>]*)?>", masked)
    if opening is None:
        return None
    closing = re.compile(rf"</{tag}\s*>").search(masked, opening.end())
    if closing is None:
        raise ConfigError(f"ossec.conf has <{tag}> without </{tag}>: fix the file by hand")
    return opening.start(), closing.start()


def _marked_span(text: str, name: str) -> tuple[int, int, str] | None:
    """Return (start, end, indentation) of the marked block's lines, or None."""
    begin = re.search(rf"^([ \t]*){re.escape(begin_marker(name))}[ \t]*\n?", text, re.MULTILINE)
    if begin is None:
        if end_marker(name) in text:
            raise ConfigError(
                f"ossec.conf has {end_marker(name)!r} without {begin_marker(name)!r}: "
                "remove the rest of the block by hand or restore a backup"
            )
        return None
    end = re.compile(rf"^[ \t]*{re.escape(end_marker(name))}[ \t]*(?:\n|$)", re.MULTILINE).search(
        text, begin.end()
    )
    if end is None:
        line = text.count("\n", 0, begin.start()) + 1
        raise ConfigError(
            f"ossec.conf line {line} has {begin_marker(name)!r} without {end_marker(name)!r}: "
            "remove the partial block by hand or restore a backup"
        )
    return begin.start(), end.end(), begin.group(1)


def _render_marked(name: str, body: str, indent: str) -> str:
    lines = [begin_marker(name), MANAGED_NOTE, *body.split("\n"), end_marker(name)]
    return "".join(f"{indent}{line}\n" for line in lines)


def find_block(text: str, name: str) -> str | None:
    """Return the text of the marked block ``name`` (markers included), or None."""
    span = _marked_span(text, name)
    return None if span is None else text[span[0] : span[1]]


def remove_block(text: str, name: str) -> str:
    """Return ``text`` without the marked block ``name``; unchanged when absent."""
    span = _marked_span(text, name)
    if span is None:
        return text
    return text[: span[0]] + text[span[1] :]


def set_block(text: str, name: str, body: str, *, container: str = "ossec_config") -> str:
    """Return ``text`` with the marked block ``name`` holding ``body``.

    An existing block is replaced where it is, keeping its indentation. A
    new block goes right before the closing tag of the first ``container``
    element outside comments. Raises ConfigError when the file has no such
    element or a block has only one of its two markers.
    """
    span = _marked_span(text, name)
    if span is not None:
        start, end, indent = span
        return text[:start] + _render_marked(name, body, indent) + text[end:]
    found = _first_element(mask_comments(text), container)
    if found is None:
        raise ConfigError(
            f"ossec.conf has no <{container}> element outside comments: "
            "is this a Wazuh manager configuration?"
        )
    closing = found[1]
    line_start = text.rfind("\n", 0, closing) + 1
    before = text[line_start:closing]
    if before.strip():
        # The closing tag shares its line with other content: start a new line.
        return text[:closing] + "\n" + _render_marked(name, body, _INDENT) + text[closing:]
    return text[:line_start] + _render_marked(name, body, before + _INDENT) + text[line_start:]


def has_element_outside_block(text: str, tag: str, block: str) -> bool:
    """Return whether ``tag`` occurs outside comments and outside the marked ``block``."""
    masked = mask_comments(remove_block(text, block))
    return re.search(rf"<{tag}(?:\s[^>]*)?>", masked) is not None


def set_lists_block(text: str, list_paths: Sequence[str]) -> str:
    """Declare ``list_paths`` inside the first ``<ruleset>``; remove the block when empty.

    The declarations go into the existing ``<ruleset>`` element instead of a
    second one, because in Wazuh 3.x the lists of a later ``<ruleset>``
    replaced those of an earlier one, and one element works in every version.
    """
    if not list_paths:
        return remove_block(text, LISTS_BLOCK)
    if not has_element_outside_block(text, "ruleset", LISTS_BLOCK):
        body = render_list_declarations(list_paths, wrap_in_ruleset=True)
        return set_block(text, LISTS_BLOCK, body)
    existing = find_block(text, LISTS_BLOCK)
    if existing is not None and "<ruleset" in existing:
        # An earlier run found no <ruleset> and wrapped the lists in one;
        # the file has one now, so the lists move into it.
        text = remove_block(text, LISTS_BLOCK)
    body = render_list_declarations(list_paths, wrap_in_ruleset=False)
    return set_block(text, LISTS_BLOCK, body, container="ruleset")


def remove_all_blocks(text: str) -> str:
    """Return ``text`` without any iocscope block."""
    for name in BLOCK_NAMES:
        text = remove_block(text, name)
    return text


def unified_diff(old: str, new: str, path: str) -> str:
    """Return a unified diff from ``old`` to ``new``, empty when they are equal."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"{path} (current)",
        tofile=f"{path} (new)",
    )
    return "".join(lines)


@dataclass(frozen=True, slots=True)
class Element:
    """One element found in ``ossec.conf``: its parsed tree or why it did not parse."""

    tag: str
    line: int
    node: ET.Element | None
    error: str | None = None

    def child_text(self, name: str) -> str | None:
        """Return the stripped text of the first child ``name``, or None."""
        if self.node is None:
            return None
        child = self.node.find(name)
        if child is None or child.text is None:
            return None
        return child.text.strip()

    def children_text(self, name: str) -> list[str]:
        """Return the stripped texts of every child ``name``."""
        if self.node is None:
            return []
        return [child.text.strip() for child in self.node.iter(name) if child.text]


def find_elements(text: str, tag: str) -> list[Element]:
    """Return every ``tag`` element outside comments, parsed one at a time.

    Each element is parsed on its own, so one broken element does not hide
    the others. The ``error`` of a broken element describes the parse error.
    """
    masked = mask_comments(text)
    found: list[Element] = []
    pattern = re.compile(rf"<{tag}(?:\s[^>]*)?>.*?</{tag}\s*>", re.DOTALL)
    for match in pattern.finditer(masked):
        line = text.count("\n", 0, match.start()) + 1
        try:
            node = ET.fromstring(match.group())  # noqa: S314 - local admin-owned file
        except ET.ParseError as exc:
            found.append(Element(tag, line, None, str(exc)))
            continue
        found.append(Element(tag, line, node))
    return found


def declared_lists(text: str) -> set[str]:
    """Return the list paths declared in every ``<ruleset>`` of the file."""
    paths: set[str] = set()
    for ruleset in find_elements(text, "ruleset"):
        paths.update(ruleset.children_text("list"))
    return paths
