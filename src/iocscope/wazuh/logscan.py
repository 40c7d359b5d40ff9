"""Find the ossec.log messages that break a Wazuh integration, each with its fix.

The patterns are the texts the Wazuh 4.x daemons write, as found in the
wazuh/wazuh sources and in issue reports that quote real log lines:

- ``src/os_integrator/integrator.c`` (4.x): "Invalid integration: '%s'. Not
  currently supported.", "Unable to enable integration for: '%s'. File not
  found inside '%s'.", "Couldn't execute command (%s). Check file and
  permissions.", "Unable to run integration for %s -> %s";
- ``src/shared/exec_op.c`` (``wpopenv``, 4.x): "At wpopenv(): file '%s' has
  write permissions.";
- ``src/shared/json-queue.c`` (4.3.4 and later): "Overlong JSON alert read
  from '%s'" and "Invalid JSON alert read from '%s'";
- analysisd's JSON decoder: "Too many fields for JSON decoder.";
- ``src/error_messages/error_messages.h``: (1103) "Could not open file",
  (1220) "Error loading the rules", (1221) "Error loading the list", (1226)
  "Error reading XML file", (1230) "Invalid element in the configuration";
- analysisd 4.12 to 4.14, quoted in wazuh/wazuh issues: (7616) "List '%s'
  could not be loaded. Rule '%s' will be ignored." and "Invalid
  configuration. '%s' is not a valid element."

integratord logs the whole command line of a failing integration, and the
command line carries ``<api_key>`` and ``<hook_url>``. Example lines are
therefore redacted before they are shown: those two arguments keep at most
their last four characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

# A line of ossec.log in the plain format, with or without the debug
# details Wazuh adds when debug logging is on:
#   2024/05/01 10:00:00 wazuh-integratord: ERROR: message
#   2024/05/01 10:00:00 wazuh-integratord[123] exec_op.c:142 at wpopenv(): ERROR: message
LOG_LINE = re.compile(
    r"^(?P<time>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) (?P<daemon>[\w-]+)(?:\[\d+\])?"
    r"(?: \S+:\d+ at \S+\(\))?:? (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL): (?P<message>.*)$"
)
# Only the end of a large log is read; older lines are history.
DEFAULT_TAIL_BYTES = 4 * 1024 * 1024
MAX_EXAMPLE_CHARS = 300
_KEEP_CHARS = 4


class Severity(StrEnum):
    """Severity of a finding: ``fail`` stops the integration, ``warn`` loses or degrades data."""

    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Pattern:
    """One known message: its regular expression, what it means and how to fix it.

    ``meaning`` and ``fix`` are format strings over the pattern's named
    groups, so a finding can name the file or integration concerned.
    """

    key: str
    regex: re.Pattern[str]
    severity: Severity
    meaning: str
    fix: str
    redact_command: bool = False


def _pattern(
    key: str, regex: str, severity: Severity, meaning: str, fix: str, *, redact: bool = False
) -> Pattern:
    return Pattern(key, re.compile(regex), severity, meaning, fix, redact)


PATTERNS: tuple[Pattern, ...] = (
    _pattern(
        "invalid_integration",
        r"Invalid integration: '(?P<name>[^']*)'\. Not currently supported\.",
        Severity.FAIL,
        "integratord disabled the integration {name!r}: names of custom integrations "
        "must start with 'custom-'",
        "name the integration custom-<name> in ossec.conf and the file "
        "integrations/custom-<name>; `iocscope wazuh install` writes custom-iocscope",
    ),
    _pattern(
        "integration_file_missing",
        r"Unable to enable integration for: '(?P<name>[^']*)'\. "
        r"File not found inside '(?P<directory>[^']*)'\.",
        Severity.FAIL,
        "integratord found no file {directory}/{name}, so the integration is disabled",
        "place the script under exactly that name (no extension) or rerun `iocscope wazuh install`",
    ),
    _pattern(
        "write_permissions",
        r"file '(?P<path>[^']*)' has write permissions\.",
        Severity.FAIL,
        "integratord refuses to run {path} because the wazuh user can write it",
        "chown root:wazuh {path} && chmod 750 {path}",
    ),
    _pattern(
        "cannot_execute",
        r"Couldn't execute command \((?P<command>.*)\)\. Check file and permissions\.",
        Severity.FAIL,
        "the integration script could not be started (exit status 127): it is not "
        "executable by the wazuh group, its interpreter is missing, it has CRLF line "
        "endings, or the wazuh user can write it",
        "run `iocscope wazuh check` for the script's mode, owner and line endings",
        redact=True,
    ),
    _pattern(
        "integration_failed",
        r"Unable to run integration for (?P<name>\S+) -> (?P<path>\S+)",
        Severity.FAIL,
        "the script of {name} exited with an error status",
        "read the exit status and output on the following lines of ossec.log; "
        "set integrator.debug=2 in local_internal_options.conf for details",
    ),
    _pattern(
        "overlong_alert",
        r"Overlong JSON alert read from '(?P<path>[^']*)'",
        Severity.WARN,
        "integratord skipped an alert longer than 64 KiB, so it was never enriched",
        "enable the daemon's alerts.json follower (wazuh.follow_alerts) or shorten "
        "the alerts of that rule (options no_full_log)",
    ),
    _pattern(
        "invalid_alert",
        r"Invalid JSON alert read from '(?P<path>[^']*)'",
        Severity.WARN,
        "integratord read a line of {path} that is not JSON and skipped it",
        "check the disk space and the writer of {path}",
    ),
    _pattern(
        "too_many_fields",
        r"Too many fields for JSON decoder",
        Severity.WARN,
        "analysisd dropped the fields of a JSON event beyond its limit",
        "raise analysisd.decoder_order_size (up to 1024) in local_internal_options.conf; "
        "iocscope's events stay well under the default",
    ),
    _pattern(
        "rules_failed",
        r"\(1220\): Error loading the rules: '(?P<file>[^']*)'\.",
        Severity.FAIL,
        "analysisd could not load {file} and the manager stops",
        "run /var/ossec/bin/wazuh-analysisd -t to see the error; for iocscope's own "
        "files rerun `iocscope wazuh install` or `iocscope wazuh cdb`",
    ),
    _pattern(
        "list_failed",
        r"\(1221\): Error loading the list: '(?P<list>[^']*)'\.",
        Severity.FAIL,
        "analysisd could not load the CDB list {list}",
        "check that the file exists, is readable by the wazuh group and has key:value lines",
    ),
    _pattern(
        "xml_error",
        r"\(1226\): Error reading XML file '(?P<file>[^']*)': "
        r"(?P<reason>.*?) \(line (?P<line>\d+)\)",
        Severity.FAIL,
        "{file} is not valid XML at line {line}: {reason}",
        "fix the line, or restore the latest ossec.conf.iocscope-*.bak backup",
    ),
    _pattern(
        "cannot_open",
        r"\(1103\): Could not open file '(?P<file>[^']*)' "
        r"due to \[\((?P<errno>\d+)\)-\((?P<error>[^)]*)\)\]",
        Severity.WARN,
        "a Wazuh daemon could not open {file}: {error}",
        "create the file or give the wazuh group read access to it",
    ),
    _pattern(
        "invalid_element",
        r"\(1230\): Invalid element in the configuration: '(?P<element>[^']*)'\.",
        Severity.FAIL,
        "ossec.conf has an element Wazuh does not know: {element}",
        "remove or correct the element; `iocscope wazuh check` shows iocscope's blocks",
    ),
    _pattern(
        "list_not_loaded",
        r"\(7616\): List '(?P<list>[^']*)' could not be loaded\. "
        r"Rule '(?P<rule>\d+)' will be ignored\.",
        Severity.FAIL,
        "rule {rule} is ignored because the CDB list {list} is not declared or missing",
        "declare it in ossec.conf (<ruleset><list>{list}</list>) and restart; "
        "`iocscope wazuh cdb` does both for iocscope's lists",
    ),
    _pattern(
        "invalid_rule_config",
        r"Invalid configuration\. (?P<detail>.*)",
        Severity.FAIL,
        "a rule or configuration element is invalid: {detail}",
        "correct the rule file named in the next lines of ossec.log",
    ),
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One kind of problem found in the log: how often, when last, and what to do."""

    pattern: Pattern
    count: int
    last_time: str
    example: str
    meaning: str
    fix: str

    @property
    def severity(self) -> Severity:
        return self.pattern.severity


def mask_secret(value: str) -> str:
    """Return ``value`` masked to at most its last four characters."""
    if len(value) <= _KEEP_CHARS:
        return "****"
    return f"****{value[-_KEEP_CHARS:]}"


def redact_command(command: str) -> str:
    """Mask the API key and hook URL in an integratord command line.

    integratord 4.x builds ``<script> <alert file> <api_key> <hook_url>
    <debug> ...`` with single spaces, so the third and fourth
    space-separated pieces are the secrets; empty ones stay empty.
    """
    parts = command.split(" ")
    for index in (2, 3):
        if index < len(parts) and parts[index]:
            parts[index] = mask_secret(parts[index])
    return " ".join(parts)


def _redact_line(line: str, pattern: Pattern, match: re.Match[str]) -> str:
    if pattern.redact_command:
        start, end = match.span("command")
        line = line[:start] + redact_command(match.group("command")) + line[end:]
    return line[:MAX_EXAMPLE_CHARS]


def scan_lines(lines: Iterable[str]) -> list[Finding]:
    """Return one finding per known message kind found in ``lines``, in pattern order."""
    seen: dict[str, tuple[int, str, str, re.Match[str]]] = {}
    for raw in lines:
        parsed = LOG_LINE.match(raw.rstrip("\n"))
        if parsed is None:
            continue
        message = parsed.group("message")
        for pattern in PATTERNS:
            match = pattern.regex.search(message)
            if match is None:
                continue
            count = seen[pattern.key][0] + 1 if pattern.key in seen else 1
            example = _redact_line(message, pattern, match)
            seen[pattern.key] = (count, parsed.group("time"), example, match)
            break
    findings = []
    for pattern in PATTERNS:
        if pattern.key not in seen:
            continue
        count, last_time, example, match = seen[pattern.key]
        values = {name: value or "" for name, value in match.groupdict().items()}
        if pattern.redact_command:
            values["command"] = redact_command(values["command"])
        findings.append(
            Finding(
                pattern,
                count,
                last_time,
                example,
                pattern.meaning.format(**values),
                pattern.fix.format(**values),
            )
        )
    return findings


def read_tail(path: Path, max_bytes: int = DEFAULT_TAIL_BYTES) -> list[str]:
    """Return the lines of the last ``max_bytes`` of a log file (OSError when unreadable)."""
    with path.open("rb") as stream:
        stream.seek(0, 2)
        size = stream.tell()
        stream.seek(max(0, size - max_bytes))
        data = stream.read()
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first line is probably cut
    return lines


def scan_log(path: Path, max_bytes: int = DEFAULT_TAIL_BYTES) -> list[Finding]:
    """Scan the end of ossec.log; raises OSError when it cannot be read."""
    return scan_lines(read_tail(path, max_bytes))
