"""Typed values for indicators and their scope."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class IndicatorType(StrEnum):
    """The kinds of indicator iocscope can parse and look up."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"
    DOMAIN = "domain"
    URL = "url"
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA512 = "sha512"
    EMAIL = "email"

    @property
    def is_ip(self) -> bool:
        return self in (IndicatorType.IPV4, IndicatorType.IPV6)

    @property
    def is_hash(self) -> bool:
        return self in HASH_TYPES


HASH_TYPES = frozenset(
    {IndicatorType.MD5, IndicatorType.SHA1, IndicatorType.SHA256, IndicatorType.SHA512}
)


@dataclass(frozen=True, slots=True)
class Indicator:
    """One normalised indicator.

    ``value`` is the canonical form used for lookups and cache keys (for a
    domain, the lower-case A-label); ``display`` is what an analyst reads (the
    Unicode form of a domain); ``original`` is the text as received. ``host``
    is the canonical host of a URL or e-mail address, so that scope rules and
    host-based sources can use it.
    """

    type: IndicatorType
    value: str
    original: str
    display: str
    host: str | None = None


class ScopeReason(StrEnum):
    """Why an indicator is public or not."""

    PUBLIC = "public"
    PUBLIC_OVERRIDE = "public_override"
    PRIVATE = "private"
    LOOPBACK = "loopback"
    LINK_LOCAL = "link_local"
    CGNAT = "cgnat"
    DOCUMENTATION = "documentation"
    BENCHMARK = "benchmark"
    MULTICAST = "multicast"
    RESERVED = "reserved"
    UNSPECIFIED = "unspecified"
    BROADCAST = "broadcast"
    EMBEDDED_NON_PUBLIC = "embedded_non_public"
    SINGLE_LABEL = "single_label"
    INTERNAL_SUFFIX = "internal_suffix"
    INTERNAL_DOMAIN = "internal_domain"
    INTERNAL_NETWORK = "internal_network"


@dataclass(frozen=True, slots=True)
class Scope:
    """The scope decision for one indicator: may it leave the host?"""

    reason: ScopeReason
    detail: str = ""

    @property
    def is_public(self) -> bool:
        return self.reason in (ScopeReason.PUBLIC, ScopeReason.PUBLIC_OVERRIDE)
