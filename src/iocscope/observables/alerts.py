"""Read Wazuh alerts from alerts.json and recognise iocscope's own events.

Wazuh writes ``/var/ossec/logs/alerts/alerts.json`` as NDJSON: one JSON
object per line. Real files are not always clean: a file edited on Windows
has CRLF line ends and a byte order mark, old agents send Latin-1 text,
and a line cut by a rotation is not valid JSON. ``read_alerts`` reports
each bad line with its number and carries on with the next one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

ORIGIN = "iocscope"
_BOM = "\ufeff"
_REPLACEMENT = "\ufffd"
_FORMAT_HINT = "alerts.json holds one JSON object per line"


@dataclass(frozen=True, slots=True)
class AlertLine:
    """One non-blank input line: the alert, or the reason it is not one.

    Exactly one of ``alert`` and ``error`` is set. ``number`` counts from 1
    and includes blank lines. ``decode_errors`` counts the invalid UTF-8
    sequences that were replaced with U+FFFD.
    """

    number: int
    alert: dict[str, Any] | None = None
    error: str | None = None
    decode_errors: int = 0


def read_alerts(lines: Iterable[str | bytes]) -> Iterator[AlertLine]:
    """Parse alerts.json lines, yielding one ``AlertLine`` per non-blank line.

    Accepts text or bytes, with or without line ends. Never raises for bad
    content: a line that is not JSON, or JSON that is not an object, yields
    an ``AlertLine`` whose ``error`` says so.
    """
    for number, raw in enumerate(lines, start=1):
        text, decode_errors = _decode(raw)
        text = text.strip().lstrip(_BOM).strip()
        if not text:
            continue
        yield _parse_line(number, text, decode_errors)


def _decode(raw: str | bytes) -> tuple[str, int]:
    if isinstance(raw, str):
        return raw, 0
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        already = raw.count(_REPLACEMENT.encode("utf-8"))
        return text, text.count(_REPLACEMENT) - already


def _parse_line(number: int, text: str, decode_errors: int) -> AlertLine:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        message = f"line {number} is not valid JSON: {exc}; {_FORMAT_HINT}"
        return AlertLine(number, error=message, decode_errors=decode_errors)
    if not isinstance(value, dict):
        kind = _json_kind(value)
        message = f"line {number} is a JSON {kind}, not an object; {_FORMAT_HINT}"
        return AlertLine(number, error=message, decode_errors=decode_errors)
    return AlertLine(number, alert=value, decode_errors=decode_errors)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def unwrap_alert(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the alert inside an active-response message, or ``message`` itself.

    Wazuh 4.2 and later hand active-response scripts a JSON message whose
    ``parameters.alert`` is the alert that triggered them.
    """
    if "rule" in message or "data" in message:
        return message
    parameters = message.get("parameters")
    if isinstance(parameters, Mapping):
        alert = parameters.get("alert")
        if isinstance(alert, Mapping):
            return alert
    return message


def is_own_event(alert: Mapping[str, Any]) -> bool:
    """Return True when iocscope itself produced this event.

    An enrichment event must never be enriched again, or every verdict would
    trigger another lookup. iocscope sends every event under the location
    "iocscope", with ``data.integration`` "iocscope" and a ``data.iocscope``
    object. An event is iocscope's own when its location is "iocscope" and
    it has either marker. A marker alone is no proof: a log line can decode
    into ``data.integration``, and the rule group "iocscope" comes from
    iocscope's rules, which match on that field. Such an alert is enriched.
    """
    if not _is_origin(alert.get("location")):
        return False
    data = alert.get("data")
    return isinstance(data, Mapping) and (_is_origin(data.get("integration")) or ORIGIN in data)


def _is_origin(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == ORIGIN
