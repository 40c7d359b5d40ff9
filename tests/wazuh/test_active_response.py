"""The iocscope-ar active response, run as wazuh-execd 4.2+ runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from iocscope.wazuh.spool import SpoolReader
from tests.wazuh.harness import (
    ACTIVE_RESPONSE,
    WazuhTree,
    execd_message,
    load_script,
    make_tree,
    run_execd,
    sample_alert,
)

active_response = load_script(ACTIVE_RESPONSE)

LOG_LINE = re.compile(r"\A\d{4}/\d\d/\d\d \d\d:\d\d:\d\d active-response/bin/iocscope-ar: (.+)\Z")


@pytest.fixture
def tree(tmp_path: Path) -> WazuhTree:
    return make_tree(tmp_path)


def log_messages(tree: WazuhTree) -> list[str]:
    """Return the messages of active-responses.log, checking each line's format."""
    messages = []
    for line in (tree.logs / "active-responses.log").read_text("utf-8").splitlines():
        match = LOG_LINE.match(line)
        assert match is not None, line
        messages.append(match.group(1))
    return messages


def test_add_spools_alert(tree: WazuhTree) -> None:
    alert = sample_alert()
    run, requests = run_execd(tree, execd_message("add", alert))
    assert (run.returncode, run.stderr) == (active_response.EXIT_OK, "")
    [path] = tree.spooled()
    item = SpoolReader(tree.spool).read(path)
    assert item is not None
    assert (item.kind, item.alert) == ("ar", alert)
    assert requests == [
        {
            "version": 1,
            "origin": {"name": "active-response/bin/iocscope-ar", "module": "active-response"},
            "command": "check_keys",
            "parameters": {"keys": ["203.0.113.50"]},
        }
    ]
    assert log_messages(tree) == ["Starting", f"Alert 1714557600.1000 spooled as {path.name}"]


def test_add_keeps_unicode(tree: WazuhTree) -> None:
    alert = sample_alert(full_log="Anmeldung fehlgeschlagen für Jürgen \u2713")
    run_execd(tree, execd_message("add", alert))
    [path] = tree.spooled()
    assert json.loads(path.read_bytes()) == alert


@pytest.mark.parametrize(
    ("alert", "keys"),
    [
        (sample_alert(data={"dstuser": "root"}), ["1714557600.1000"]),
        (sample_alert(data={"srcip": ""}), ["1714557600.1000"]),
        (sample_alert(data="203.0.113.50"), ["1714557600.1000"]),
    ],
    ids=["no-srcip", "empty-srcip", "data-not-an-object"],
)
def test_handshake_falls_back_to_alert_id(
    tree: WazuhTree, alert: dict[str, Any], keys: list[str]
) -> None:
    run, requests = run_execd(tree, execd_message("add", alert))
    assert run.returncode == active_response.EXIT_OK
    assert requests[0]["parameters"]["keys"] == keys


def test_no_key_skips_handshake(tree: WazuhTree) -> None:
    alert = sample_alert(data={})
    del alert["id"]
    run, requests = run_execd(tree, execd_message("add", alert))
    assert run.returncode == active_response.EXIT_OK
    assert requests == []
    assert len(tree.spooled()) == 1


def test_abort_spools_nothing(tree: WazuhTree) -> None:
    run, _ = run_execd(tree, execd_message("add", sample_alert()), reply="abort")
    assert run.returncode == active_response.EXIT_OK
    assert tree.spooled() == []
    assert log_messages(tree)[-1] == "Aborted by execd for alert 1714557600.1000"


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (None, "no reply to check_keys"),
        ("restart", "reply to check_keys has command 'restart'"),
    ],
)
def test_bad_handshake_reply(tree: WazuhTree, reply: str | None, reason: str) -> None:
    run, _ = run_execd(tree, execd_message("add", sample_alert()), reply=reply)
    assert run.returncode == active_response.EXIT_HANDSHAKE_FAILED
    assert "Traceback" not in run.stderr
    assert tree.spooled() == []
    assert log_messages(tree)[-1] == f"Handshake failed for alert 1714557600.1000: {reason}"


def test_delete_is_acknowledged(tree: WazuhTree) -> None:
    run, requests = run_execd(tree, execd_message("delete", sample_alert()))
    assert run.returncode == active_response.EXIT_OK
    assert requests == []
    assert tree.spooled() == []
    assert log_messages(tree)[-1] == (
        "Ignored delete for alert 1714557600.1000: there is nothing to undo"
    )


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"", "Invalid input format: no message on standard input"),
        (
            b"add 203.0.113.50",
            "Invalid input format: not JSON (Expecting value: line 1 column 1 (char 0))",
        ),
        (b"[1]", "Invalid input format: not a JSON object"),
        (
            b'{"version": 1, "command": "add", "parameters": {"alert": {"score": NaN}}}',
            "Invalid input format: not JSON (NaN is not a JSON value)",
        ),
        (b'{"version": 1, "parameters": {"alert": {}}}', "Invalid input format: no command"),
        (b'{"version": 1, "command": "add"}', "Invalid input format: no parameters.alert object"),
        (
            b'{"version": 1, "command": "add", "parameters": {"alert": "x"}}',
            "Invalid input format: no parameters.alert object",
        ),
        (
            json.dumps(execd_message("restart", sample_alert())).encode(),
            "Invalid command 'restart': expected add or delete",
        ),
    ],
    ids=[
        "empty",
        "text",
        "array",
        "nan",
        "no-command",
        "no-parameters",
        "alert-not-object",
        "unknown-command",
    ],
)
def test_invalid_input_rejected(tree: WazuhTree, message: bytes, reason: str) -> None:
    run, requests = run_execd(tree, message)
    assert run.returncode == active_response.EXIT_INVALID_INPUT
    assert "Traceback" not in run.stderr
    assert requests == []
    assert log_messages(tree)[-1] == reason


@pytest.mark.parametrize(
    "alert",
    [
        sample_alert(location="iocscope", data={"integration": "iocscope", "srcip": "203.0.113.9"}),
        sample_alert(location="iocscope", data={"iocscope": {"verdict": "malicious"}}),
        sample_alert(rule={"level": 3, "id": "657", "groups": ["ossec", "active_response"]}),
    ],
    ids=["marker", "payload-key", "active-response"],
)
def test_own_event_dropped(tree: WazuhTree, alert: dict[str, Any]) -> None:
    run, requests = run_execd(tree, execd_message("add", alert))
    assert run.returncode == active_response.EXIT_OK
    assert requests == []
    assert tree.spooled() == []
    assert log_messages(tree)[-1] == (
        "Dropped alert 1714557600.1000: iocscope's own event or an active response"
    )


@pytest.mark.parametrize(
    "alert",
    [
        sample_alert(
            location="/var/log/app.log", data={"integration": "iocscope", "srcip": "203.0.113.9"}
        ),
        sample_alert(rule={"level": 12, "id": "100210", "groups": ["iocscope"]}),
        sample_alert(location="iocscope"),
    ],
    ids=["marker-from-log-line", "rule-group", "location-without-marker"],
)
def test_forged_own_event_spooled(tree: WazuhTree, alert: dict[str, Any]) -> None:
    run, _ = run_execd(tree, execd_message("add", alert))
    assert run.returncode == active_response.EXIT_OK
    assert len(tree.spooled()) == 1


def test_log_holds_no_alert_content(tree: WazuhTree) -> None:
    run_execd(tree, execd_message("add", sample_alert()))
    text = (tree.logs / "active-responses.log").read_text("utf-8")
    assert "Failed password" not in text
    assert "203.0.113.50" not in text


def test_unwritable_spool_fails(tree: WazuhTree) -> None:
    tree.spool.rmdir()
    tree.spool.write_text("a file where the spool directory belongs", "utf-8")
    run, _ = run_execd(tree, execd_message("add", sample_alert()))
    assert run.returncode == active_response.EXIT_SPOOL_FAILED
    assert log_messages(tree)[-1].startswith("Alert 1714557600.1000 not spooled in ")
