"""Reading alerts.json lines and recognising alerts inside other messages."""

from __future__ import annotations

from typing import Any

import pytest

from iocscope.observables.alerts import AlertLine, is_own_event, read_alerts, unwrap_alert

HINT = "alerts.json holds one JSON object per line"


def test_reads_text_and_bytes_lines() -> None:
    lines: list[str | bytes] = ['{"id": "1"}\n', b'{"id": "2"}\r\n']
    assert list(read_alerts(lines)) == [
        AlertLine(1, alert={"id": "1"}),
        AlertLine(2, alert={"id": "2"}),
    ]


def test_blank_lines_are_skipped_but_counted() -> None:
    lines = ["\n", "   \r\n", '{"id": "3"}\n']
    assert list(read_alerts(lines)) == [AlertLine(3, alert={"id": "3"})]


@pytest.mark.parametrize("line", ['\ufeff{"id": "1"}\n', b'\xef\xbb\xbf{"id": "1"}\r\n'])
def test_byte_order_mark_is_dropped(line: str | bytes) -> None:
    assert list(read_alerts([line])) == [AlertLine(1, alert={"id": "1"})]


def test_latin1_bytes_are_replaced_and_counted() -> None:
    line = '{"data": {"dstuser": "Jos\xe9 M\xfcller"}}\n'.encode("latin-1")
    (item,) = read_alerts([line])
    assert item.alert == {"data": {"dstuser": "Jos\ufffd M\ufffdller"}}
    assert item.decode_errors == 2


def test_replacement_characters_already_present_are_not_counted() -> None:
    line = '{"a": "\ufffd", "b": "\xe9"}'.encode()[:-4] + b'\xe9"}'
    (item,) = read_alerts([line])
    assert item.decode_errors == 1


def test_invalid_json_names_the_line() -> None:
    lines = ['{"id": "1"}', '{"id": "2", "rule": {"id": "5710"']
    items = list(read_alerts(lines))
    assert items[0].alert == {"id": "1"}
    assert items[1].alert is None
    assert items[1].error is not None
    assert items[1].error.startswith("line 2 is not valid JSON: ")
    assert items[1].error.endswith(f"; {HINT}")


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("[1, 2]", "array"),
        ('"text"', "string"),
        ("42", "number"),
        ("true", "boolean"),
        ("null", "null"),
    ],
)
def test_json_that_is_not_an_object(line: str, kind: str) -> None:
    assert list(read_alerts([line])) == [
        AlertLine(1, error=f"line 1 is a JSON {kind}, not an object; {HINT}")
    ]


def test_reading_continues_after_errors() -> None:
    lines = ["{", "[]", '{"id": "9"}']
    numbers = [(item.number, item.alert is not None) for item in read_alerts(lines)]
    assert numbers == [(1, False), (2, False), (3, True)]


ALERT = {"rule": {"id": "5710"}, "data": {"srcip": "192.0.2.1"}}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (ALERT, ALERT),
        ({"command": "add", "parameters": {"alert": ALERT}}, ALERT),
        ({"command": "check_keys", "parameters": {"keys": ["192.0.2.1"]}}, None),
        ({"parameters": {"alert": "not an object"}}, None),
        ({"parameters": ["not", "an", "object"]}, None),
    ],
)
def test_unwrap_alert(message: dict[str, Any], expected: dict[str, Any] | None) -> None:
    assert unwrap_alert(message) == (message if expected is None else expected)


@pytest.mark.parametrize(
    ("alert", "expected"),
    [
        ({"location": "iocscope", "data": {"integration": "iocscope"}}, True),
        ({"location": "iocscope", "data": {"iocscope": {}}}, True),
        ({"location": " IOCscope", "data": {"integration": "iocscope "}}, True),
        # A log line can decode into the marker; only iocscope writes the location.
        ({"location": "/var/log/app.log", "data": {"integration": "iocscope"}}, False),
        ({"data": {"iocscope": {}}}, False),
        ({"rule": {"groups": ["threat_intel", "iocscope"]}}, False),
        ({"location": "iocscope"}, False),
        ({"location": "iocscope", "data": {"integration": "virustotal"}}, False),
        ({"decoder": {"name": "iocscope"}}, False),
        ({"data": {"integration": "virustotal"}, "location": "virustotal"}, False),
        ({"location": "/var/log/iocscope.log"}, False),
        ({"data": "iocscope", "rule": {"groups": "iocscope"}, "decoder": "iocscope"}, False),
    ],
)
def test_is_own_event(alert: dict[str, Any], expected: bool) -> None:
    assert is_own_event(alert) is expected
