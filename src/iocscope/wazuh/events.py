"""The enrichment event iocscope writes to analysisd, and its size limit.

One event describes one indicator found in one Wazuh alert. Everything lives
under the ``iocscope`` object next to ``"integration": "iocscope"``, which the
rules anchor on. No other top-level key is ever emitted, because analysisd's
JSON decoder turns top-level keys such as ``srcip``, ``url``, ``id``,
``status`` or ``data`` into static fields that other rules and integrations
act on.

Wazuh's JSON decoder turns numbers and booleans into strings and joins arrays,
so the rules match words (verdict, status), never numbers. Empty lists, empty
objects and ``None`` values are left out, so every field that appears in an
alert carries a value.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from iocscope.observables.model import Role

INTEGRATION = "iocscope"

# Severity bands of the 0-100 risk score, highest first. The verdict comes
# from the configurable scoring thresholds. The severity is a fixed band of
# the score, so dashboards sort and colour events alike on every installation.
SEVERITY_BANDS: tuple[tuple[int, str], ...] = (
    (90, "critical"),
    (70, "high"),
    (40, "medium"),
    (1, "low"),
    (0, "info"),
)

VERDICTS = frozenset({"malicious", "suspicious", "benign", "unknown"})
ROLES = frozenset(role.value for role in Role)

STATUS_OK = "ok"
STATUS_DEGRADED = "degraded"
STATUS_ALL_FAILED = "all_sources_failed"
STATUS_NOT_PUBLIC = "not_public"
STATUSES = frozenset({STATUS_OK, STATUS_DEGRADED, STATUS_ALL_FAILED, STATUS_NOT_PUBLIC})

# Source statuses (iocscope.sources.contract.Status values) that count as a
# query, and the ones among them that count as failed.
_QUERIED_STATUSES = frozenset({"ok", "error", "rate_limited"})
_FAILED_STATUSES = frozenset({"error", "rate_limited"})

# The smallest limit fit_event accepts: the fallback event, with every string
# cut to _SKELETON_TEXT_CHARS characters, always fits in it.
MIN_EVENT_BYTES = 512
_SKELETON_TEXT_CHARS = 32

# Entries of the lists and the context that fit_event keeps in its first
# step. The scoring puts the strongest reasons first.
LIST_CAPS: Mapping[str, int] = {"reasons": 5, "flagged_by": 20, "sources_failed": 20, "context": 10}
REASON_CHARS = 512
_LISTS = ("reasons", "flagged_by", "sources_failed")

# Fields the rules match on; fit_event never shortens them.
_RULE_FIELDS = frozenset({"verdict", "severity", "status", "role", "indicator.type"})


def severity_for(score: int) -> str:
    """Return the severity band of a risk score (scores below 1 are ``info``)."""
    for floor, name in SEVERITY_BANDS:
        if score >= floor:
            return name
    return "info"


def build_event(
    record: Mapping[str, Any], alert: Mapping[str, Any], *, role: str, field: str
) -> dict[str, Any]:
    """Build the enrichment event of one enrichment record found in one alert.

    ``record`` is the output of ``iocscope.engine.report.enrichment_record``;
    ``alert`` is the Wazuh alert (alerts.json format) the indicator came from.
    ``role`` is the part the indicator played in the alert (one of ``ROLES``)
    and ``field`` the alert field it was read from (``data.srcip``). Raises
    ``ValueError`` for an unknown role or verdict, which are programming errors.
    """
    if role not in ROLES:
        raise ValueError(f"invalid event role {role!r}: expected one of {sorted(ROLES)}")
    verdict = str(record["verdict"])
    if verdict not in VERDICTS:
        raise ValueError(f"invalid verdict {verdict!r}: expected one of {sorted(VERDICTS)}")
    score = _clamp_score(record.get("risk_score", 0))
    queried, failed = _queried_and_failed(record)
    status = _status(record, queried, failed)
    body: dict[str, Any] = {
        "verdict": verdict,
        "severity": severity_for(score),
        "risk_score": score,
        "status": status,
        "indicator": {
            "type": str(record["type"]),
            "value": str(record["value"]),
            "display": str(record.get("display") or record["value"]),
        },
        "role": role,
        "field": field,
        "source_rule": _source_rule(alert),
        "source_alert": _source_alert(alert),
        "sources_queried": _as_int(record.get("sources_queried", len(queried))),
        "sources_flagged": _as_int(record.get("sources_flagged", 0)),
        "flagged_by": [str(name) for name in record.get("flagged_by") or ()],
        "sources_failed": failed,
        "reasons": _reasons(record, status, queried),
        "context": _context(record.get("context")),
        "reference": _reference(record),
    }
    return {"integration": INTEGRATION, "iocscope": _without_empty(body)}


def encode_event(event: Mapping[str, Any]) -> bytes:
    """Encode an event as one line of compact UTF-8 JSON.

    JSON escapes every control character, so a newline or NUL byte that an
    attacker placed in an alert field stays inside its string. It cannot end
    analysisd's C string early, and no line-based reader can take the rest
    for a second event.
    """
    return orjson.dumps(event)


def fit_event(event: Mapping[str, Any], limit: int) -> bytes:
    """Encode an event in at most ``limit`` bytes, shortening it when needed.

    Each step runs only while the event is still too large:

    1. trim the lists and the context to their first entries (``LIST_CAPS``)
       and each reason to ``REASON_CHARS`` characters;
    2. cut the longest strings, such as a huge URL or a long rule description;
    3. drop list entries and context keys altogether;
    4. fall back to a minimal event with the verdict, severity, score, status
       and a cut indicator.

    A shortened event lists what was cut in ``iocscope.truncated``. The
    result is always valid JSON. Raises ``ValueError`` when ``limit`` is
    below ``MIN_EVENT_BYTES``.
    """
    if limit < MIN_EVENT_BYTES:
        raise ValueError(f"event size limit {limit} is below the minimum of {MIN_EVENT_BYTES}")
    encoded = encode_event(event)
    if len(encoded) <= limit:
        return encoded
    work = copy.deepcopy(dict(event))
    body = work.get("iocscope")
    if not isinstance(body, dict):
        return _fit_skeleton(work, limit)
    body["truncated"] = []
    steps: tuple[Callable[[dict[str, Any], dict[str, Any], int], bytes], ...] = (
        _cap_lists,
        _cut_strings,
        _drop_lists,
    )
    for step in steps:
        encoded = step(work, body, limit)
        if len(encoded) <= limit:
            return encoded
    return _fit_skeleton(work, limit)


def _clamp_score(value: object) -> int:
    return min(100, max(0, _as_int(value)))


def _as_int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _queried_and_failed(record: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    queried: list[str] = []
    failed: list[str] = []
    for source in record.get("sources") or ():
        status = str(source.get("status", ""))
        if status in _QUERIED_STATUSES:
            queried.append(str(source.get("source", "")))
        if status in _FAILED_STATUSES:
            failed.append(str(source.get("source", "")))
    return queried, failed


def _status(record: Mapping[str, Any], queried: list[str], failed: list[str]) -> str:
    # NOTE: context sources (GeoIP) count as queried. An enrichment where every
    # intelligence source failed but the offline database returned context is
    # therefore "degraded", not "all_sources_failed", because the record does
    # not say which sources are context sources.
    if record.get("public") is False:
        return STATUS_NOT_PUBLIC
    if queried and len(failed) == len(queried):
        return STATUS_ALL_FAILED
    if failed:
        return STATUS_DEGRADED
    return STATUS_OK


def _reasons(record: Mapping[str, Any], status: str, queried: list[str]) -> list[str]:
    reasons = [str(reason) for reason in record.get("reasons") or ()]
    if status == STATUS_ALL_FAILED:
        # The verdict is "unknown" because no source returned a result, not
        # because the indicator is clean. The first reason states this.
        names = ", ".join(queried)
        reasons.insert(0, f"all {len(queried)} queried sources failed ({names}); no verdict")
    return reasons


def _source_rule(alert: Mapping[str, Any]) -> dict[str, Any]:
    rule = alert.get("rule")
    if not isinstance(rule, Mapping):
        return {}
    found: dict[str, Any] = {}
    if rule.get("id") is not None:
        found["id"] = str(rule["id"])
    if rule.get("level") is not None:
        found["level"] = _as_int(rule["level"])
    if rule.get("description"):
        found["description"] = str(rule["description"])
    return found


def _source_alert(alert: Mapping[str, Any]) -> dict[str, Any]:
    return {key: str(alert[key]) for key in ("id", "timestamp") if alert.get(key) not in (None, "")}


def _context(context: object) -> dict[str, Any]:
    if not isinstance(context, Mapping):
        return {}
    kept: dict[str, Any] = {}
    for key, value in context.items():
        # Wazuh's JSON decoder drops objects inside arrays; plain values only.
        if isinstance(value, str | int | float | bool) and value != "":
            kept[str(key)] = value
    return kept


def _reference(record: Mapping[str, Any]) -> str | None:
    sources = [source for source in record.get("sources") or () if source.get("reference")]
    flagged = [source for source in sources if source.get("flagged")]
    for source in flagged or sources:
        return str(source["reference"])
    return None


def _without_empty(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value not in (None, "", [], {})}


def _largest_fitting(upper: int, fits: Callable[[int], bool]) -> int:
    """Return the largest n in 0..upper with fits(n), for a monotone fits; -1 if none."""
    low, high = 0, upper
    if not fits(0):
        return -1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _note_cut(body: dict[str, Any], name: str) -> None:
    if name not in body["truncated"]:
        body["truncated"].append(name)


def _cap_lists(work: dict[str, Any], body: dict[str, Any], limit: int) -> bytes:
    for key in (*_LISTS, "context"):
        value = body.get(key)
        if isinstance(value, list | dict) and len(value) > LIST_CAPS[key]:
            _note_cut(body, key)
            kept = list(value.items() if isinstance(value, dict) else value)[: LIST_CAPS[key]]
            body[key] = dict(kept) if isinstance(value, dict) else kept
    reasons = body.get("reasons")
    if isinstance(reasons, list) and any(len(str(reason)) > REASON_CHARS for reason in reasons):
        _note_cut(body, "reasons")
        body["reasons"] = [str(reason)[:REASON_CHARS] for reason in reasons]
    return encode_event(work)


def _drop_lists(work: dict[str, Any], body: dict[str, Any], limit: int) -> bytes:
    for key in (*_LISTS, "context"):
        encoded = _shrink_collection(work, body, key, limit)
        if len(encoded) <= limit:
            return encoded
    return encode_event(work)


def _shrink_collection(work: dict[str, Any], body: dict[str, Any], key: str, limit: int) -> bytes:
    """Keep the longest prefix of a list or dict entry of body with which the event fits."""
    value = body.get(key)
    if not isinstance(value, list | dict) or not value:
        return encode_event(work)
    _note_cut(body, key)
    items = list(value.items() if isinstance(value, dict) else value)

    def rebuild(count: int) -> list[Any] | dict[str, Any]:
        return dict(items[:count]) if isinstance(value, dict) else items[:count]

    def fits(count: int) -> bool:
        body[key] = rebuild(count)
        return len(encode_event(work)) <= limit

    keep = max(0, _largest_fitting(len(items), fits))
    if keep:
        body[key] = rebuild(keep)
    else:
        del body[key]
    return encode_event(work)


def _string_leaves(node: dict[str, Any], prefix: str = "") -> list[tuple[dict[str, Any], str, str]]:
    """List (parent, key, dotted name) of every string value under node."""
    leaves: list[tuple[dict[str, Any], str, str]] = []
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            leaves += _string_leaves(value, f"{name}.")
        elif isinstance(value, str) and name not in _RULE_FIELDS:
            leaves.append((node, key, name))
    return leaves


def _cut_strings(work: dict[str, Any], body: dict[str, Any], limit: int) -> bytes:
    leaves = _string_leaves(body)
    leaves.sort(key=lambda leaf: -len(orjson.dumps(leaf[0][leaf[1]])))
    for parent, key, name in leaves:
        encoded = encode_event(work)
        if len(encoded) <= limit:
            return encoded
        text: str = parent[key]
        _note_cut(body, name)

        def fits(
            chars: int, parent: dict[str, Any] = parent, key: str = key, text: str = text
        ) -> bool:
            parent[key] = text[:chars]
            return len(encode_event(work)) <= limit

        keep = max(0, _largest_fitting(len(text), fits))
        parent[key] = text[:keep]
    return encode_event(work)


def _fit_skeleton(work: Mapping[str, Any], limit: int) -> bytes:
    body = work.get("iocscope")
    body = body if isinstance(body, Mapping) else {}
    indicator = body.get("indicator")
    indicator = indicator if isinstance(indicator, Mapping) else {}
    skeleton_body: dict[str, Any] = {
        key: _short(body[key]) for key in ("verdict", "severity", "status", "role") if key in body
    }
    skeleton_body["risk_score"] = _clamp_score(body.get("risk_score", 0))
    skeleton_body["indicator"] = {"type": _short(indicator.get("type", "")), "value": ""}
    skeleton_body["truncated"] = ["all"]
    skeleton = {"integration": INTEGRATION, "iocscope": skeleton_body}
    value = str(indicator.get("value", ""))

    def fits(chars: int) -> bool:
        skeleton_body["indicator"]["value"] = value[:chars]
        return len(encode_event(skeleton)) <= limit

    keep = max(0, _largest_fitting(len(value), fits))
    skeleton_body["indicator"]["value"] = value[:keep]
    encoded = encode_event(skeleton)
    if len(encoded) > limit:
        # Unreachable: every skeleton string is at most _SKELETON_TEXT_CHARS
        # plain ASCII characters, which MIN_EVENT_BYTES allows for.
        raise RuntimeError(f"minimal event of {len(encoded)} bytes exceeds {limit} bytes")
    return encoded


def _short(value: object) -> str:
    """Keep the plain ASCII name characters of a value, so it encodes 1 byte per character."""
    kept = "".join(
        char for char in str(value) if char.isascii() and (char.isalnum() or char in "_-.")
    )
    return kept[:_SKELETON_TEXT_CHARS]
