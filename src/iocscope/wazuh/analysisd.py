"""A small emulation of how analysisd reads a queue message and decodes JSON.

The tests and ``iocscope wazuh check`` use it to read an event as a Wazuh
4.x manager parses it, without a manager: the header rules of
``OS_CleanMSG`` (src/analysisd/cleanevent.c), the location unescaping of
``wstr_chr_escape``/``wstr_unescape`` (src/shared/string_op.c, 4.4.0 and
later) and the field flattening of ``readJSON``/``fillData``
(src/analysisd/decoders/plugins/json_decoder.c). Only the parts iocscope's
events depend on are emulated; syslog header detection is not.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from iocscope.errors import IocscopeError

ESCAPE = "|"

# Top-level JSON keys that the decoder stores as static fields instead of
# dynamic ones (json_decoder.c, fillData). "user" is an alias of dstuser,
# "command" exists in older 4.x releases and "system_name" is the rule option.
STATIC_FIELDS = frozenset(
    {
        "srcip",
        "dstip",
        "srcport",
        "dstport",
        "protocol",
        "action",
        "srcuser",
        "dstuser",
        "user",
        "id",
        "status",
        "command",
        "url",
        "data",
        "extra_data",
        "systemname",
        "system_name",
    }
)

# OS_MAXSTR: the decoder gives up on arrays whose joined text reaches it.
_OS_MAXSTR = 65_536
# The C decoder prints integers with "%i" when they fit a C int, else "%f".
_C_INT_MIN = -(2**31)
_C_INT_MAX = 2**31 - 1


class QueueMessageError(IocscopeError, ValueError):
    """A datagram is not a message analysisd would accept."""


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """One queue message as analysisd splits it.

    ``agent_id`` is ``000`` for the manager's own events, whose
    ``agent_name`` and ``agent_ip`` are None. ``location`` is the unescaped
    part after ``->`` (the alert's ``location``), ``payload`` the event text.
    """

    queue_id: str
    agent_id: str
    agent_name: str | None
    agent_ip: str | None
    location: str
    payload: str


def parse_queue_message(data: bytes) -> QueueMessage:
    """Split a datagram into header fields and payload as analysisd does.

    Raises ``QueueMessageError`` where analysisd logs "String not correctly
    formatted" and drops the message.
    """
    # analysisd handles the datagram as a C string.
    text = data.split(b"\0", 1)[0].decode("utf-8", errors="replace")
    if len(text) < 4:
        raise QueueMessageError(f"queue message {text!r} is shorter than 4 characters")
    queue_id, rest = text[0], text[2:]
    end = find_unescaped(rest, ":")
    if end < 0:
        raise QueueMessageError(f"queue message {text[:80]!r} has no ':' after its location")
    location = unescape(rest[:end])
    payload = rest[end + 1 :]
    if not location.startswith("["):
        return QueueMessage(queue_id, "000", None, None, location, payload)
    return _agent_message(queue_id, location, payload)


def _agent_message(queue_id: str, location: str, payload: str) -> QueueMessage:
    close = location.find("]")
    if close < 0:
        raise QueueMessageError(f"agent header {location[:80]!r} has no ']' after the agent ID")
    agent_id = location[1:close]
    # "[001] (name) ip->location": analysisd skips "] " after the ID.
    remainder = location[close + 2 :] if len(location) > close + 1 else ""
    name: str | None = None
    if remainder.startswith("("):
        end_name = remainder.find(")")
        name = remainder[1:end_name] if end_name >= 0 else ""
    address, arrow, origin = remainder.partition("->")
    if not arrow:
        return QueueMessage(queue_id, agent_id, name, None, remainder, payload)
    ip = address[address.find(")") + 2 :] if ")" in address else None
    return QueueMessage(queue_id, agent_id, name, ip, origin, payload)


def find_unescaped(text: str, character: str) -> int:
    """Return the index of the first ``character`` not escaped by ``|``, or -1."""
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == character:
            return index
        elif char == ESCAPE:
            escaped = True
    return -1


def unescape(text: str) -> str:
    """Undo ``|`` escaping: ``||`` becomes ``|``, ``|x`` becomes ``x``, a final ``|`` stays."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        # A lone "|" at the very end is kept as it is.
        if char != ESCAPE or index + 1 == len(text):
            out.append(char)
            index += 1
        else:
            out.append(text[index + 1])
            index += 2
    return "".join(out)


def flatten_json_like_wazuh(obj: Any, *, null_as: str | None = None) -> dict[str, str]:
    """Flatten a decoded JSON object into the fields Wazuh's JSON decoder produces.

    Keys of nested objects are joined with dots and strings stay as they are.
    Booleans become ``true`` or ``false``. Integers that fit a C int print as
    integers, other numbers with six decimals (``12.500000``). An array of
    plain values becomes their texts each followed by a comma (``a,b,``);
    objects and arrays inside arrays are skipped, and an array that yields no
    text yields no field. ``null`` values are skipped unless ``null_as`` names
    their text (the decoder's ``json_null_field`` option). A top-level value
    that is not an object yields no fields. Static fields are included under
    their key; see ``static_fields_in``.
    """
    if not isinstance(obj, Mapping):
        return {}
    return dict(_walk(obj, "", null_as))


def static_fields_in(obj: Any) -> set[str]:
    """Return the keys of ``obj`` that Wazuh's JSON decoder stores as static fields."""
    return {key for key in flatten_json_like_wazuh(obj, null_as="") if key in STATIC_FIELDS}


def _walk(obj: Mapping[str, Any], prefix: str, null_as: str | None) -> Iterator[tuple[str, str]]:
    for raw_key, value in obj.items():
        key = f"{prefix}{raw_key}"
        if isinstance(value, Mapping):
            yield from _walk(value, f"{key}.", null_as)
        elif isinstance(value, list):
            joined = _join_array(value)
            if joined:
                yield key, joined
        elif value is None:
            if null_as is not None:
                yield key, null_as
        else:
            yield key, _scalar_text(value)


def _join_array(items: list[Any]) -> str:
    parts: list[str] = []
    size = 0
    for item in items:
        if isinstance(item, Mapping | list):
            continue
        text = "null" if item is None else _scalar_text(item)
        size += len(text.encode("utf-8")) + 1
        if size >= _OS_MAXSTR:
            return ""
        parts.append(text + ",")
    return "".join(parts)


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if _C_INT_MIN <= value <= _C_INT_MAX:
            return str(value)
        return f"{float(value):f}"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and _C_INT_MIN <= value <= _C_INT_MAX:
            return str(int(value))
        return f"{value:f}"
    return str(value)
