"""Typed results of pulling observables out of one Wazuh alert."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from iocscope.indicators.model import Indicator, Scope


class Role(StrEnum):
    """The part an indicator plays in the event the alert describes.

    The role follows the field the value came from, not the traffic
    direction a human would infer. DNS answers (the addresses a query
    resolved to) are ``destination`` because they are where the client is
    about to connect. ``related`` marks values that an upstream product lists
    as evidence without naming their side (Microsoft Graph alert evidence).
    An active response must never block them as if they were the source.
    """

    SOURCE = "source"
    DESTINATION = "destination"
    FILE = "file"
    QUERY = "query"
    URL = "url"
    RELATED = "related"


class SkipReason(StrEnum):
    """The reason a value found in an alert did not become an observable to look up.

    Non-public observables are counted as ``non_public:<scope reason>``
    (see ``non_public_reason``); that key is built, not a member here.
    """

    NOT_A_DICT = "not_a_dict"  # the alert itself is not a JSON object
    NO_DATA = "no_data"  # neither ``data`` nor ``syscheck`` is an object
    OWN_EVENT = "own_event"  # an event written by iocscope (loop guard)
    EMPTY_VALUE = "empty_value"  # "", "-", "N/A" and similar placeholders
    NOT_A_STRING = "not_a_string"  # a number, boolean or object where text belongs
    INVALID_VALUE = "invalid_value"  # parse_indicator rejected the value
    UNEXPECTED_TYPE = "unexpected_type"  # valid, but not a type the field contains
    BARE_PATH = "bare_path"  # a URL field without scheme and host
    IMPHASH = "imphash"  # Sysmon import hash: not a file hash
    UNKNOWN_HASH = "unknown_hash"  # a Sysmon hash algorithm iocscope does not know
    EMPTY_FILE_HASH = "empty_file_hash"  # MD5/SHA-1/SHA-256 of zero bytes
    REGISTRY_EVENT = "registry_event"  # FIM hashes of a registry value, not a file
    DNS_CNAME = "dns_cname"  # a CNAME record in Sysmon queryResults
    TOO_MANY_VALUES = "too_many_values"  # values beyond the per-alert scan limit
    CAP_EXCEEDED = "cap_exceeded"  # observables beyond ``max_observables``


def non_public_reason(scope: Scope) -> str:
    """Return the skip key for an observable that must not leave the host."""
    return f"non_public:{scope.reason.value}"


@dataclass(frozen=True, slots=True)
class Observable:
    """One indicator found in an alert, with where it came from and its scope.

    ``field`` is the dotted path of the value in the alerts.json object (list
    positions are not part of it).
    """

    indicator: Indicator
    role: Role
    field: str
    scope: Scope


def _no_skips() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Extraction:
    """Everything extraction found in one alert.

    ``observables`` keeps non-public observables too, with their scope, so a
    report can show them; the engine sends only ``public()`` ones to third
    parties. Each non-public observable is also counted in ``skipped`` as
    ``non_public:<reason>``. ``skipped`` maps a ``SkipReason`` value (or that
    ``non_public:`` key) to how many values it stopped. ``errors`` holds one
    message per rejected value, naming the field and the value. ``own_event``
    is True for events written by iocscope, which yield nothing.
    """

    observables: tuple[Observable, ...] = ()
    skipped: Mapping[str, int] = field(default_factory=_no_skips, hash=False)
    errors: tuple[str, ...] = ()
    own_event: bool = False

    def public(self) -> tuple[Observable, ...]:
        """Return the observables that may be sent to third-party sources."""
        return tuple(item for item in self.observables if item.scope.is_public)
