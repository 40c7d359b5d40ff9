"""Pull observables out of one Wazuh alert with the field map.

Extraction is pure: it reads the alert, parses every candidate value with
``parse_indicator`` and attaches a scope with ``classify_scope``, and it
never raises for any input. Everything that did not become an observable is
counted with a reason, so an operator can see why an alert produced nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from iocscope.indicators.model import IndicatorType
from iocscope.indicators.parse import parse_indicator
from iocscope.indicators.scope import ScopePolicy, classify_scope
from iocscope.observables.alerts import is_own_event, unwrap_alert
from iocscope.observables.fields import FAMILIES, Candidate, FieldRule, values_at
from iocscope.observables.model import (
    Extraction,
    Observable,
    SkipReason,
    non_public_reason,
)

logger = logging.getLogger(__name__)

# Values parsed from one alert before the rest are counted as too many. An
# alert normally contains a few dozen at most, so the limit only bounds the
# work that one crafted alert with a huge list can cause.
MAX_VALUES = 1024
# Error messages kept per alert; later errors are still counted in ``skipped``.
MAX_ERRORS = 16
# Error messages quote at most this many characters of a value.
_QUOTE_LENGTH = 80

# Wazuh and its log sources write these where a field has no value.
_PLACEHOLDERS = frozenset({"-", "--", "n/a", "na", "none", "null", "unknown", "(null)"})

# Digests of zero bytes: every empty file has them, so they identify no file.
EMPTY_FILE_HASHES = frozenset(
    {
        "d41d8cd98f00b204e9800998ecf8427e",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    }
)


def extract_observables(
    alert: Mapping[str, Any], policy: ScopePolicy, *, max_observables: int = 32
) -> Extraction:
    """Return the observables of one alert, with their roles and scopes.

    ``alert`` is one alerts.json object; an active-response message is
    unwrapped to the alert it carries. Observables are unique per canonical
    value, type and role. When more than ``max_observables`` are found,
    public ones take the places first, the kept ones stay in field-map
    order, and the rest are counted as ``cap_exceeded``. Events written by
    iocscope give ``own_event=True`` and no observables. Input that is not an
    alert gives an empty ``Extraction`` with a skip reason; nothing raises.
    """
    if not isinstance(alert, Mapping):
        return _skipped_only(SkipReason.NOT_A_DICT)
    alert = unwrap_alert(alert)
    if is_own_event(alert):
        return Extraction(skipped=MappingProxyType({SkipReason.OWN_EVENT.value: 1}), own_event=True)
    if not any(isinstance(alert.get(key), Mapping) for key in ("data", "syscheck")):
        return _skipped_only(SkipReason.NO_DATA)
    collector = _Collector(alert, policy)
    for family in FAMILIES:
        for rule in family.rules:
            collector.apply(rule)
    return collector.finish(max(0, max_observables))


def _skipped_only(reason: SkipReason) -> Extraction:
    return Extraction(skipped=MappingProxyType({reason.value: 1}))


class _Collector:
    """The state of one extraction: what was found, skipped and rejected."""

    def __init__(self, alert: Mapping[str, Any], policy: ScopePolicy) -> None:
        self._alert = alert
        self._policy = policy
        self._found: list[Observable] = []
        self._seen: set[tuple[IndicatorType, str, str]] = set()
        self._skipped: Counter[str] = Counter()
        self._errors: list[str] = []
        self._read = 0

    def apply(self, rule: FieldRule) -> None:
        if rule.condition is not None and not rule.condition(self._alert):
            return
        for path, value in values_at(self._alert, rule.path):
            self._read_value(rule, path, value)

    def _read_value(self, rule: FieldRule, path: str, value: Any) -> None:
        if value is None or (isinstance(value, str) and not value.strip()):
            self._skip(SkipReason.EMPTY_VALUE)
            return
        if not isinstance(value, str):
            self._skip(SkipReason.NOT_A_STRING)
            return
        reason = rule.guard(self._alert) if rule.guard is not None else None
        if reason is not None:
            self._skip(reason)
            return
        for candidate in rule.splitter(value, self._alert):
            if self._read >= MAX_VALUES:
                self._skip(SkipReason.TOO_MANY_VALUES)
                continue
            self._read += 1
            self._add(rule, path, candidate)

    def _add(self, rule: FieldRule, path: str, candidate: Candidate) -> None:
        text = candidate.text.strip()
        if candidate.skip is not None:
            self._skip(candidate.skip)
            return
        if not text or text.lower() in _PLACEHOLDERS:
            self._skip(SkipReason.EMPTY_VALUE)
            return
        try:
            indicator = parse_indicator(text, candidate.type_hint or rule.type_hint)
        except ValueError as exc:
            # InvalidIndicatorError is a ValueError; catching the base keeps a
            # parser bug on one value from failing the whole alert.
            rule_text = getattr(exc, "rule", str(exc))
            self._reject(f"{path}: {_quote(text)} is not a valid indicator: {rule_text}")
            return
        if indicator.type not in rule.accepts:
            self._skip(SkipReason.UNEXPECTED_TYPE)
            return
        if indicator.type.is_hash and indicator.value in EMPTY_FILE_HASHES:
            self._skip(SkipReason.EMPTY_FILE_HASH)
            return
        key = (indicator.type, indicator.value, rule.role.value)
        if key in self._seen:
            return
        self._seen.add(key)
        scope = classify_scope(indicator, self._policy)
        self._found.append(Observable(indicator, rule.role, path, scope))

    def _skip(self, reason: SkipReason | str) -> None:
        self._skipped[str(reason)] += 1

    def _reject(self, message: str) -> None:
        self._skip(SkipReason.INVALID_VALUE)
        if len(self._errors) < MAX_ERRORS:
            self._errors.append(message)

    def finish(self, max_observables: int) -> Extraction:
        # Public observables win the places under the cap because only they
        # are looked up; the kept ones stay in field-map order.
        by_priority = sorted(
            range(len(self._found)), key=lambda index: not self._found[index].scope.is_public
        )
        kept_indexes = set(by_priority[:max_observables])
        kept = [item for index, item in enumerate(self._found) if index in kept_indexes]
        dropped = len(self._found) - len(kept)
        if dropped:
            self._skipped[SkipReason.CAP_EXCEEDED.value] += dropped
            logger.debug("kept %d of %d observables of one alert", len(kept), len(self._found))
        for item in kept:
            if not item.scope.is_public:
                self._skip(non_public_reason(item.scope))
        return Extraction(
            observables=tuple(kept),
            skipped=MappingProxyType(dict(self._skipped)),
            errors=tuple(self._errors),
        )


def _quote(text: str) -> str:
    short = text if len(text) <= _QUOTE_LENGTH else text[:_QUOTE_LENGTH] + "..."
    return repr(short)
