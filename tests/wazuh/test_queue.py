"""The queue header and the writer, against a real Unix datagram socket.

The receiving socket plays analysisd: it is bound in tmp_path and every
datagram it gets is split with the analysisd emulation.
"""

from __future__ import annotations

import os
import re
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from iocscope.errors import AlertError
from iocscope.wazuh.analysisd import QueueMessage, parse_queue_message
from iocscope.wazuh.queue import (
    MAX_DATAGRAM_BYTES,
    MAX_MESSAGE_BYTES,
    QueueWriter,
    build_message,
    escape_location,
    format_header,
)
from tests.wazuh.analysisd_socket import Analysisd

EVENT = {"integration": "iocscope", "iocscope": {"verdict": "malicious", "risk_score": 87}}


def alert_of(agent: dict[str, Any] | None) -> dict[str, Any]:
    alert: dict[str, Any] = {"id": "1714557600.1000", "location": "/var/log/auth.log"}
    if agent is not None:
        alert["agent"] = agent
    return alert


@pytest.fixture
def queue_path(tmp_path: Path) -> Path:
    # Unix socket paths are limited to about 100 bytes; tmp_path stays below it.
    return tmp_path / "q"


@pytest.fixture
def analysisd(queue_path: Path) -> Iterator[Analysisd]:
    server = Analysisd(queue_path)
    yield server
    server.close()


@pytest.fixture
def writers() -> Iterator[list[QueueWriter]]:
    """Writers a test creates; their sockets are closed afterwards."""
    created: list[QueueWriter] = []
    yield created
    for writer in created:
        writer.close()


@pytest.fixture
def writer(queue_path: Path, writers: list[QueueWriter]) -> QueueWriter:
    created = QueueWriter(queue_path)
    writers.append(created)
    return created


@pytest.mark.parametrize(
    ("agent", "header"),
    [
        (
            {"id": "001", "name": "host01", "ip": "198.51.100.32"},
            "1:[001] (host01) 198.51.100.32->iocscope:",
        ),
        ({"id": "002", "name": "web-02.example"}, "1:[002] (web-02.example) any->iocscope:"),
        ({"id": "003", "name": "db_3", "ip": "any"}, "1:[003] (db_3) any->iocscope:"),
        ({"id": "004", "name": "h", "ip": "10.0.0.0/24"}, "1:[004] (h) 10.0.0.0/24->iocscope:"),
        ({"id": "005", "name": "h6", "ip": "fe80::1"}, "1:[005] (h6) fe80|:|:1->iocscope:"),
        ({"id": "000", "name": "wazuh-manager"}, "1:iocscope:"),
        (None, "1:iocscope:"),
    ],
)
def test_format_header(agent: dict[str, Any] | None, header: str) -> None:
    assert format_header(alert_of(agent)) == header


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ({"id": "1]", "name": "h"}, "invalid agent ID '1]' in alert: expected 3 to 8 digits"),
        (
            {"id": "001", "name": "h) x->y"},
            "invalid agent name 'h) x->y' in alert: expected letters, digits, '-', '_' or '.'",
        ),
        (
            {"id": "001", "name": "h", "ip": "1.2.3.4->x"},
            "invalid agent IP '1.2.3.4->x' in alert: expected an address or 'any'",
        ),
    ],
)
def test_format_header_rejects_forged_agent(agent: dict[str, Any], message: str) -> None:
    with pytest.raises(AlertError, match=f"^{re.escape(message)}$"):
        format_header(alert_of(agent))


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("id", "invalid agent ID {value}... (5000 characters) in alert: expected 3 to 8 digits"),
        (
            "name",
            "invalid agent name {value}... (5000 characters) in alert: "
            "expected letters, digits, '-', '_' or '.'",
        ),
        (
            "ip",
            "invalid agent IP {value}... (5000 characters) in alert: expected an address or 'any'",
        ),
    ],
)
def test_forged_agent_value_cut_in_message(field: str, message: str) -> None:
    agent = {"id": "001", "name": "h", field: "]" * 5000}
    with pytest.raises(AlertError) as raised:
        format_header(alert_of(agent))
    assert str(raised.value) == message.format(value=repr("]" * 80))


@pytest.mark.parametrize(
    ("text", "escaped"),
    [("iocscope", "iocscope"), ("a|b", "a||b"), ("C:\\log", "C|:\\log"), ("|:", "|||:")],
)
def test_escape_location(text: str, escaped: str) -> None:
    assert escape_location(text) == escaped


def test_agent_message_reaches_socket(writer: QueueWriter, analysisd: Analysisd) -> None:
    agent = {"id": "001", "name": "host01", "ip": "198.51.100.32"}
    assert writer.send(build_message(alert_of(agent), EVENT))
    parsed = parse_queue_message(analysisd.receive())
    assert parsed == QueueMessage(
        "1", "001", "host01", "198.51.100.32", "iocscope", orjson.dumps(EVENT).decode()
    )
    assert writer.stats_dict() == {
        "sent": 1,
        "buffered": 0,
        "spilled": 0,
        "dropped": 0,
        "oversized": 0,
        "pending": 0,
    }


def test_manager_message_reaches_socket(writer: QueueWriter, analysisd: Analysisd) -> None:
    writer.send(build_message(alert_of({"id": "000"}), EVENT))
    parsed = parse_queue_message(analysisd.receive())
    assert parsed.agent_id == "000"
    assert parsed.agent_name is None
    assert parsed.location == "iocscope"
    assert orjson.loads(parsed.payload) == EVENT


def test_ipv6_agent_round_trip(writer: QueueWriter, analysisd: Analysisd) -> None:
    agent = {"id": "003", "name": "RHEL7", "ip": "fe80:0:0:0:ecbf:3082:b8eb:1cb8"}
    writer.send(build_message(alert_of(agent), EVENT))
    parsed = parse_queue_message(analysisd.receive())
    assert parsed.agent_ip == "fe80:0:0:0:ecbf:3082:b8eb:1cb8"
    assert parsed.location == "iocscope"
    assert orjson.loads(parsed.payload) == EVENT


@pytest.mark.parametrize("location", ["a|b:c", "C:\\Windows|x", "||::", "EventChannel"])
def test_location_escaping_round_trip(
    writer: QueueWriter, analysisd: Analysisd, location: str
) -> None:
    agent = {"id": "001", "name": "host01", "ip": "198.51.100.32"}
    header = format_header(alert_of(agent), location=location)
    writer.send(header.encode() + orjson.dumps(EVENT))
    parsed = parse_queue_message(analysisd.receive())
    assert parsed.location == location
    assert parsed.agent_id == "001"
    assert orjson.loads(parsed.payload) == EVENT


def test_absent_socket_buffers_then_flushes_in_order(writer: QueueWriter, queue_path: Path) -> None:
    messages = [f'1:iocscope:{{"n":{index}}}'.encode() for index in range(5)]
    results = [writer.send(message) for message in messages]
    assert results == [False] * 5
    assert writer.pending == 5
    server = Analysisd(queue_path)
    try:
        assert writer.flush() == 5
        assert server.receive_all() == messages
    finally:
        server.close()
    assert writer.pending == 0
    assert writer.stats.buffered == 5
    assert writer.stats.sent == 5


def test_new_message_waits_behind_kept_ones(writer: QueueWriter, queue_path: Path) -> None:
    writer.send(b"1:iocscope:first")
    server = Analysisd(queue_path)
    try:
        writer.send(b"1:iocscope:second")
        assert server.receive_all() == [b"1:iocscope:first", b"1:iocscope:second"]
    finally:
        server.close()
    assert writer.pending == 0


def test_refusing_socket_buffers(writer: QueueWriter, queue_path: Path) -> None:
    # A socket file with no reader, as a stopped analysisd leaves behind.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(queue_path))
    stale.close()
    assert not writer.send(b"1:iocscope:x")
    assert writer.pending == 1
    queue_path.unlink()
    server = Analysisd(queue_path)
    try:
        assert writer.flush() == 1
        assert server.receive() == b"1:iocscope:x"
    finally:
        server.close()


def test_spill_survives_restart(
    queue_path: Path, tmp_path: Path, writers: list[QueueWriter]
) -> None:
    spill = tmp_path / "pending"
    messages = [f"1:iocscope:{index}".encode() for index in range(3)]
    with QueueWriter(queue_path, spill_dir=spill) as first:
        for message in messages:
            first.send(message)
    assert len(list(spill.glob("*.msg"))) == 3
    assert first.stats.dropped == 0
    server = Analysisd(queue_path)
    try:
        second = QueueWriter(queue_path, spill_dir=spill)
        writers.append(second)
        assert second.pending == 3
        second.send(b"1:iocscope:new")
        assert server.receive_all() == [*messages, b"1:iocscope:new"]
    finally:
        server.close()
    assert list(spill.iterdir()) == []


def test_spill_is_private(queue_path: Path, tmp_path: Path, writers: list[QueueWriter]) -> None:
    spill = tmp_path / "data" / "queue-buffer"
    old_umask = os.umask(0o022)
    try:
        writer = QueueWriter(queue_path, spill_dir=spill)
        writers.append(writer)
        writer.send(b"1:iocscope:kept")
    finally:
        os.umask(old_umask)
    (kept,) = spill.glob("*.msg")
    assert stat.S_IMODE(spill.stat().st_mode) == 0o700
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600


def test_spill_dir_of_older_run_made_private(
    queue_path: Path, tmp_path: Path, writers: list[QueueWriter]
) -> None:
    spill = tmp_path / "queue-buffer"
    spill.mkdir(mode=0o755)
    spill.chmod(0o755)
    writer = QueueWriter(queue_path, spill_dir=spill)
    writers.append(writer)
    writer.send(b"1:iocscope:kept")
    assert stat.S_IMODE(spill.stat().st_mode) == 0o700


def test_memory_buffer_limit_counts_drops(queue_path: Path, writers: list[QueueWriter]) -> None:
    writer = QueueWriter(queue_path, buffer_limit=2)
    writers.append(writer)
    for index in range(3):
        writer.send(f"1:iocscope:{index}".encode())
    assert writer.pending == 2
    assert writer.stats.dropped == 1


def test_close_counts_unsent_memory_messages(writer: QueueWriter) -> None:
    writer.send(b"1:iocscope:x")
    writer.close()
    assert writer.stats.dropped == 1
    assert writer.pending == 0


def test_oversized_message_rejected(writer: QueueWriter, analysisd: Analysisd) -> None:
    assert not writer.send(b"1:iocscope:" + b"x" * MAX_DATAGRAM_BYTES)
    assert writer.stats.oversized == 1
    assert writer.pending == 0
    assert analysisd.receive_all() == []


def test_huge_event_fits_one_datagram(writer: QueueWriter, analysisd: Analysisd) -> None:
    url = "http://203.0.113.9/" + "%41" * 100_000
    event = {
        "integration": "iocscope",
        "iocscope": {"verdict": "malicious", "indicator": {"type": "url", "value": url}},
    }
    agent = {"id": "001", "name": "host01", "ip": "198.51.100.32"}
    message = build_message(alert_of(agent), event)
    assert len(message) <= MAX_MESSAGE_BYTES
    assert writer.send(message)
    received = analysisd.receive()
    assert received == message
    payload = orjson.loads(parse_queue_message(received).payload)
    assert url.startswith(payload["iocscope"]["indicator"]["value"])
