"""The analysisd emulation: queue header parsing, unescaping and JSON flattening.

The header cases are the ones Wazuh's own unit tests for OS_CleanMSG use
(src/unit_tests/analysisd/test_cleanevent.c), so the emulation is checked
against the manager's behaviour and not only against iocscope's writer.
"""

from __future__ import annotations

from typing import Any

import pytest

from iocscope.wazuh.analysisd import (
    QueueMessage,
    QueueMessageError,
    find_unescaped,
    flatten_json_like_wazuh,
    parse_queue_message,
    static_fields_in,
    unescape,
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"1:a:b", QueueMessage("1", "000", None, None, "a", "b")),
        (
            b"1:location test:payload test",
            QueueMessage("1", "000", None, None, "location test", "payload test"),
        ),
        (
            b"5:[015] (DESKTOP) any->fim_registry:payload",
            QueueMessage("5", "015", "DESKTOP", "any", "fim_registry", "payload"),
        ),
        (
            b"2:0000|:0000|:0000|:0000|:0000|:0000|:0000|:0001:payload test",
            QueueMessage(
                "2", "000", None, None, "0000:0000:0000:0000:0000:0000:0000:0001", "payload test"
            ),
        ),
        (
            b"1:[003] (RHEL7) FE80|:0000|:0000|:0000|:ECBF|:3082|:B8EB|:1CB8->virustotal:{}",
            QueueMessage(
                "1", "003", "RHEL7", "FE80:0000:0000:0000:ECBF:3082:B8EB:1CB8", "virustotal", "{}"
            ),
        ),
        (
            b"1:[001] (host01) 198.51.100.32->/var/log/a||b|:c.log:x:y",
            QueueMessage("1", "001", "host01", "198.51.100.32", "/var/log/a|b:c.log", "x:y"),
        ),
        (
            b'1:iocscope:{"a":1}\0trailing',
            QueueMessage("1", "000", None, None, "iocscope", '{"a":1}'),
        ),
    ],
)
def test_parse_queue_message(data: bytes, expected: QueueMessage) -> None:
    assert parse_queue_message(data) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"1:a", "queue message '1:a' is shorter than 4 characters"),
        (b"fail message", "queue message 'fail message' has no ':' after its location"),
        (b"1:abc|:def", "queue message '1:abc|:def' has no ':' after its location"),
        (b"1:[001 (h) any->x:y", "agent header '[001 (h) any->x' has no ']' after the agent ID"),
    ],
)
def test_parse_rejects_malformed(data: bytes, message: str) -> None:
    with pytest.raises(QueueMessageError) as caught:
        parse_queue_message(data)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("a||b", "a|b"),
        ("a|:b", "a:b"),
        ("|x", "x"),
        ("end|", "end|"),
        ("|||:", "|:"),
    ],
)
def test_unescape(text: str, expected: str) -> None:
    assert unescape(text) == expected


@pytest.mark.parametrize(
    ("text", "index"),
    [("a:b", 1), ("a|:b:c", 4), ("a||:b", 3), ("none", -1), ("|:", -1)],
)
def test_find_unescaped_colon(text: str, index: int) -> None:
    assert find_unescaped(text, ":") == index


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"a": {"b": {"c": "x"}}}, {"a.b.c": "x"}),
        ({"n": 87, "neg": -4}, {"n": "87", "neg": "-4"}),
        ({"f": 12.5, "whole": 3.0}, {"f": "12.500000", "whole": "3"}),
        ({"big": 2**40}, {"big": "1099511627776.000000"}),
        ({"yes": True, "no": False}, {"yes": "true", "no": "false"}),
        ({"list": ["ipsum", "feodo"]}, {"list": "ipsum,feodo,"}),
        ({"mixed": [1, True, None, "x"]}, {"mixed": "1,true,null,x,"}),
        ({"objects": [{"a": 1}, ["b"], "c"]}, {"objects": "c,"}),
        ({"empty": [], "only_objects": [{"a": 1}]}, {}),
        ({"gone": None}, {}),
    ],
)
def test_flatten_like_wazuh(obj: dict[str, Any], expected: dict[str, str]) -> None:
    assert flatten_json_like_wazuh(obj) == expected


def test_flatten_null_as_text() -> None:
    assert flatten_json_like_wazuh({"a": None}, null_as="null") == {"a": "null"}


def test_flatten_non_object_is_empty() -> None:
    assert flatten_json_like_wazuh(["a", "b"]) == {}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"srcip": "203.0.113.9", "integration": "x"}, {"srcip"}),
        ({"data": "x", "url": "/a", "user": "root"}, {"data", "url", "user"}),
        ({"data": {"srcip": "203.0.113.9"}}, set()),
        ({"iocscope": {"status": "ok", "id": "1"}}, set()),
        ({"status": None}, {"status"}),
    ],
)
def test_static_fields_in(obj: dict[str, Any], expected: set[str]) -> None:
    assert static_fields_in(obj) == expected
