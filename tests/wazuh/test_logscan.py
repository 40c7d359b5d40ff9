"""Known ossec.log messages, in the formats Wazuh 4.x writes them, and their redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from iocscope.wazuh import logscan
from iocscope.wazuh.logscan import Severity, mask_secret, redact_command, scan_lines

SECRET = "PLACEHOLDER-SECRET-1234"

# Lines written for these tests in the plain format and in the debug format
# (daemon[pid] file:line at function()) that ossec.log uses.
SAMPLES = [
    (
        "2024/05/01 10:00:00 wazuh-integratord: ERROR: Invalid integration: 'ioc-enrich'. "
        "Not currently supported.",
        "invalid_integration",
        Severity.FAIL,
    ),
    (
        "2024/05/01 10:00:00 wazuh-integratord: ERROR: Unable to enable integration for: "
        "'custom-iocscope'. File not found inside 'integrations'.",
        "integration_file_missing",
        Severity.FAIL,
    ),
    (
        "2024/05/01 10:00:01 wazuh-integratord[812] exec_op.c:142 at wpopenv(): ERROR: "
        "At wpopenv(): file '/var/ossec/integrations/custom-iocscope' has write permissions.",
        "write_permissions",
        Severity.FAIL,
    ),
    (
        "2024/05/01 10:00:01 wazuh-integratord[812] integrator.c:408 at OS_IntegratorD(): "
        "ERROR: Couldn't execute command (/var/ossec/integrations/custom-iocscope "
        "/tmp/custom-iocscope-1714557600-1.alert  debug). Check file and permissions.",
        "cannot_execute",
        Severity.FAIL,
    ),
    (
        "2024/05/01 10:00:02 wazuh-integratord: ERROR: Unable to run integration for "
        "custom-iocscope -> integrations/custom-iocscope",
        "integration_failed",
        Severity.FAIL,
    ),
    (
        "2024/05/01 10:00:03 wazuh-integratord: WARNING: Overlong JSON alert read from "
        "'logs/alerts/alerts.json'",
        "overlong_alert",
        Severity.WARN,
    ),
    (
        "2024/05/01 10:00:03 wazuh-integratord: WARNING: Invalid JSON alert read from "
        "'logs/alerts/alerts.json': '{\"timestamp\":'",
        "invalid_alert",
        Severity.WARN,
    ),
    (
        "2024/05/01 10:00:04 wazuh-analysisd: ERROR: Too many fields for JSON decoder.",
        "too_many_fields",
        Severity.WARN,
    ),
    (
        "2024/05/01 10:00:05 wazuh-analysisd: CRITICAL: (1220): Error loading the rules: "
        "'etc/rules/iocscope_rules.xml'.",
        "rules_failed",
        Severity.FAIL,
    ),
    (
        "2024/05/01 10:00:05 wazuh-analysisd: CRITICAL: (1221): Error loading the list: "
        "'etc/lists/iocscope-ip'.",
        "list_failed",
        Severity.FAIL,
    ),
    (
        "2024/05/01 10:00:05 wazuh-analysisd: ERROR: (1226): Error reading XML file "
        "'etc/ossec.conf': XMLERR: Element 'integration' not closed. (line 340).",
        "xml_error",
        Severity.FAIL,
    ),
    (
        "2024/05/01 10:00:05 wazuh-analysisd: ERROR: (1103): Could not open file "
        "'etc/lists/iocscope-ip' due to [(2)-(No such file or directory)].",
        "cannot_open",
        Severity.WARN,
    ),
    (
        "2024/05/01 10:00:05 wazuh-analysisd: ERROR: (1230): Invalid element in the "
        "configuration: 'integratio'.",
        "invalid_element",
        Severity.FAIL,
    ),
    (
        "2024/05/01 10:00:06 wazuh-analysisd: WARNING: (7616): List 'etc/lists/iocscope-ip' "
        "could not be loaded. Rule '100900' will be ignored.",
        "list_not_loaded",
        Severity.FAIL,
    ),
    (
        "2024/05/01 10:00:06 wazuh-analysisd: ERROR: Invalid configuration. 'group' is not a "
        "valid element.",
        "invalid_rule_config",
        Severity.FAIL,
    ),
]


@pytest.mark.parametrize(("line", "key", "severity"), SAMPLES, ids=[s[1] for s in SAMPLES])
def test_known_message(line: str, key: str, severity: Severity) -> None:
    findings = scan_lines([line])
    assert [finding.pattern.key for finding in findings] == [key]
    assert findings[0].severity is severity
    assert findings[0].last_time == line[:19]


def test_meaning_names_values() -> None:
    finding = scan_lines([SAMPLES[0][0]])[0]
    assert finding.meaning == (
        "integratord disabled the integration 'ioc-enrich': names of custom integrations "
        "must start with 'custom-'"
    )


def test_write_permission_fix() -> None:
    finding = scan_lines([SAMPLES[2][0]])[0]
    assert finding.fix == (
        "chown root:wazuh /var/ossec/integrations/custom-iocscope && "
        "chmod 750 /var/ossec/integrations/custom-iocscope"
    )


def test_other_lines_ignored() -> None:
    lines = [
        "2024/05/01 10:00:00 wazuh-integratord: INFO: Enabling integration for: 'custom-iocscope'.",
        "not a log line: Invalid integration: 'x'. Not currently supported.",
        "",
    ]
    assert scan_lines(lines) == []


def test_counts_and_last_time() -> None:
    first = SAMPLES[2][0]
    later = first.replace("2024/05/01 10:00:01", "2024/05/02 08:30:00")
    finding = scan_lines([first, later])[0]
    assert finding.count == 2
    assert finding.last_time == "2024/05/02 08:30:00"


def test_command_line_secret_redacted() -> None:
    line = (
        "2024/05/01 10:00:01 wazuh-integratord: ERROR: Couldn't execute command "
        f"(/var/ossec/integrations/custom-ioc-enrich /tmp/custom-ioc-enrich-1.alert {SECRET} "
        "http://127.0.0.1:8088 debug). Check file and permissions."
    )
    finding = scan_lines([line])[0]
    assert SECRET not in finding.example
    assert SECRET not in finding.meaning
    assert "/tmp/custom-ioc-enrich-1.alert ****1234 ****8088 debug" in finding.example


@pytest.mark.parametrize(
    ("value", "masked"),
    [(SECRET, "****1234"), ("abcd", "****"), ("", "****"), ("abcde", "****bcde")],
)
def test_mask_secret(value: str, masked: str) -> None:
    assert mask_secret(value) == masked


def test_redact_keeps_empty_arguments() -> None:
    command = "/var/ossec/integrations/custom-iocscope /tmp/a.alert   > /dev/null 2>&1"
    assert redact_command(command) == command


def test_read_tail_drops_cut_line(tmp_path: Path) -> None:
    log = tmp_path / "ossec.log"
    log.write_text("first line that is cut\n" + SAMPLES[0][0] + "\n", encoding="utf-8")
    lines = logscan.read_tail(log, max_bytes=len(SAMPLES[0][0]) + 5)
    assert lines == [SAMPLES[0][0]]


def test_scan_log_reads_file(tmp_path: Path) -> None:
    log = tmp_path / "ossec.log"
    log.write_text("\n".join(line for line, _, _ in SAMPLES) + "\n", encoding="utf-8")
    keys = [finding.pattern.key for finding in logscan.scan_log(log)]
    assert keys == [pattern.key for pattern in logscan.PATTERNS]
