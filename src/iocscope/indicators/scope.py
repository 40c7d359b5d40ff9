"""Decide whether an indicator may be sent to a third party.

An address or name that only has meaning inside a network (private ranges,
loopback, link-local, ``.local`` names, the organisation's own domains and
networks) must never leave the host. Asking a public service about it leaks
the internal layout and returns nothing useful. ``classify_scope`` answers
with a ``Scope`` whose ``reason`` says which rule applied and whose
``detail`` is a short sentence an analyst can read.

The special-purpose ranges are explicit tables taken from the IANA IPv4 and
IPv6 Special-Purpose Address Registries (RFC 6890) and the RFCs named in each
entry. The tables are used instead of ``ipaddress.is_global`` because that
property changed between Python versions and treats some ranges (IPv4
multicast in Python 3.11, for example) as global.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from iocscope.config import ScopeSettings
from iocscope.errors import ConfigError, InvalidIndicatorError
from iocscope.indicators.model import Indicator, IndicatorType, Scope, ScopeReason
from iocscope.indicators.parse import normalise_domain

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class SpecialRange:
    """One special-purpose network, why it is not public, and the sentence saying so."""

    network: IPNetwork
    reason: ScopeReason
    description: str

    @property
    def detail(self) -> str:
        return f"{self.network} {self.description}"


def _ranges(*rows: tuple[str, ScopeReason, str]) -> tuple[SpecialRange, ...]:
    return tuple(
        SpecialRange(ipaddress.ip_network(cidr), reason, text) for cidr, reason, text in rows
    )


# First match wins, so a narrow range comes before a wider one that contains it.
IPV4_RANGES = _ranges(
    ("0.0.0.0/8", ScopeReason.UNSPECIFIED, "is the unspecified 'this network' range (RFC 1122)"),
    ("10.0.0.0/8", ScopeReason.PRIVATE, "is private address space (RFC 1918)"),
    (
        "100.64.0.0/10",
        ScopeReason.CGNAT,
        "is shared address space for carrier-grade NAT (RFC 6598)",
    ),
    ("127.0.0.0/8", ScopeReason.LOOPBACK, "is the loopback range (RFC 1122)"),
    ("169.254.0.0/16", ScopeReason.LINK_LOCAL, "is link-local (RFC 3927)"),
    ("172.16.0.0/12", ScopeReason.PRIVATE, "is private address space (RFC 1918)"),
    ("192.0.0.0/24", ScopeReason.RESERVED, "is reserved for IETF protocol assignments (RFC 6890)"),
    ("192.0.2.0/24", ScopeReason.DOCUMENTATION, "is reserved for documentation (RFC 5737)"),
    ("192.88.99.0/24", ScopeReason.RESERVED, "is the retired 6to4 relay anycast range (RFC 7526)"),
    ("192.168.0.0/16", ScopeReason.PRIVATE, "is private address space (RFC 1918)"),
    ("198.18.0.0/15", ScopeReason.BENCHMARK, "is reserved for benchmarking (RFC 2544)"),
    ("198.51.100.0/24", ScopeReason.DOCUMENTATION, "is reserved for documentation (RFC 5737)"),
    ("203.0.113.0/24", ScopeReason.DOCUMENTATION, "is reserved for documentation (RFC 5737)"),
    ("224.0.0.0/4", ScopeReason.MULTICAST, "is multicast (RFC 5771)"),
    ("255.255.255.255/32", ScopeReason.BROADCAST, "is the limited broadcast address (RFC 919)"),
    ("240.0.0.0/4", ScopeReason.RESERVED, "is reserved for future use (RFC 1112)"),
)

IPV6_RANGES = _ranges(
    ("::/128", ScopeReason.UNSPECIFIED, "is the unspecified address (RFC 4291)"),
    ("::1/128", ScopeReason.LOOPBACK, "is the loopback address (RFC 4291)"),
    ("100::/64", ScopeReason.RESERVED, "is the discard-only prefix (RFC 6666)"),
    ("2001:2::/48", ScopeReason.BENCHMARK, "is reserved for benchmarking (RFC 5180)"),
    ("2001:db8::/32", ScopeReason.DOCUMENTATION, "is reserved for documentation (RFC 3849)"),
    ("2001:10::/28", ScopeReason.RESERVED, "is the retired ORCHID prefix (RFC 4843)"),
    ("3fff::/20", ScopeReason.DOCUMENTATION, "is reserved for documentation (RFC 9637)"),
    ("fc00::/7", ScopeReason.PRIVATE, "is unique local address space (RFC 4193)"),
    ("fe80::/10", ScopeReason.LINK_LOCAL, "is link-local (RFC 4291)"),
    ("fec0::/10", ScopeReason.PRIVATE, "is the retired site-local prefix (RFC 3879)"),
    ("ff00::/8", ScopeReason.MULTICAST, "is multicast (RFC 4291)"),
)

# Global unicast space; every other IPv6 address not matched above is
# reserved by the IETF (RFC 4291, section 2.4).
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

# IPv6 prefixes that carry an IPv4 address. Their scope follows the IPv4
# address they carry, because packets to them travel through that address.
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")  # RFC 3056: bits 16-47
_TEREDO = ipaddress.IPv6Network("2001::/32")  # RFC 4380: server and client
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: last 32 bits
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215

# Name suffixes that never resolve in public DNS, with the sentence saying
# why. A suffix matches the name itself and every name below it.
_PRIVATE_USE = "is a common private-network suffix that public DNS does not delegate"
INTERNAL_SUFFIXES: dict[str, tuple[ScopeReason, str]] = {
    "localhost": (ScopeReason.LOOPBACK, ".localhost is reserved for loopback names (RFC 6761)"),
    "local": (ScopeReason.INTERNAL_SUFFIX, ".local is reserved for multicast DNS (RFC 6762)"),
    "home.arpa": (
        ScopeReason.INTERNAL_SUFFIX,
        ".home.arpa is reserved for home networks (RFC 8375)",
    ),
    "internal": (ScopeReason.INTERNAL_SUFFIX, ".internal is reserved by ICANN for private use"),
    "lan": (ScopeReason.INTERNAL_SUFFIX, f".lan {_PRIVATE_USE}"),
    "corp": (ScopeReason.INTERNAL_SUFFIX, f".corp {_PRIVATE_USE}"),
    "intranet": (ScopeReason.INTERNAL_SUFFIX, f".intranet {_PRIVATE_USE}"),
    "home": (ScopeReason.INTERNAL_SUFFIX, f".home {_PRIVATE_USE}"),
    "private": (ScopeReason.INTERNAL_SUFFIX, f".private {_PRIVATE_USE}"),
    "test": (ScopeReason.RESERVED, ".test is reserved for testing (RFC 6761)"),
    "invalid": (ScopeReason.RESERVED, ".invalid is reserved as a never-valid name (RFC 6761)"),
    "alt": (ScopeReason.RESERVED, ".alt is reserved for names outside DNS (RFC 9476)"),
    "example": (ScopeReason.DOCUMENTATION, ".example is reserved for documentation (RFC 6761)"),
    "example.com": (
        ScopeReason.DOCUMENTATION,
        "example.com is reserved for documentation (RFC 6761)",
    ),
    "example.net": (
        ScopeReason.DOCUMENTATION,
        "example.net is reserved for documentation (RFC 6761)",
    ),
    "example.org": (
        ScopeReason.DOCUMENTATION,
        "example.org is reserved for documentation (RFC 6761)",
    ),
}
_MAX_SUFFIX_LABELS = max(suffix.count(".") + 1 for suffix in INTERNAL_SUFFIXES)


@dataclass(frozen=True, slots=True)
class ScopePolicy:
    """The configured part of the scope decision.

    ``internal_domains`` are canonical A-labels without a trailing dot.
    ``internal_networks`` are the organisation's own ranges, which are never
    sent out even when they are public. ``public_overrides`` are ranges that
    count as public although a table marks them as not public, for labs that simulate
    attackers with documentation or private addresses. When both lists
    contain an address, the more specific network wins, and on a tie the
    internal network wins, because leaking is the worse mistake.
    """

    internal_domains: tuple[str, ...] = ()
    internal_networks: tuple[IPNetwork, ...] = ()
    public_overrides: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: ScopeSettings) -> ScopePolicy:
        """Build a policy from ``[scope]`` settings; raises ``ConfigError`` naming a bad value."""
        return cls(
            internal_domains=tuple(_domain_setting(name) for name in settings.internal_domains),
            internal_networks=_network_settings("internal_networks", settings.internal_networks),
            public_overrides=_network_settings("public_overrides", settings.public_overrides),
        )


def _domain_setting(name: str) -> str:
    # "*.corp.example.com" and ".corp.example.com" mean the same suffix.
    bare = name.strip().removeprefix("*").removeprefix(".")
    try:
        return normalise_domain(bare)
    except InvalidIndicatorError as exc:
        raise ConfigError(f"invalid domain {name!r} in scope.internal_domains: {exc.rule}") from exc


def _network_settings(field: str, values: Iterable[str]) -> tuple[IPNetwork, ...]:
    networks: list[IPNetwork] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip()))
        except ValueError as exc:
            raise ConfigError(
                f"invalid network {value!r} in scope.{field}: {exc}; "
                "write it in CIDR notation such as 203.0.113.0/24"
            ) from exc
    return tuple(networks)


def classify_scope(indicator: Indicator, policy: ScopePolicy) -> Scope:
    """Return the scope of a parsed indicator.

    Addresses and domains are classified directly, URLs and e-mail addresses
    by their host, and hashes are always public because they name no host.
    """
    if indicator.type.is_hash:
        return Scope(ScopeReason.PUBLIC, "a file hash names no host or address")
    if indicator.type.is_ip:
        return classify_address(ipaddress.ip_address(indicator.value), policy)
    if indicator.type is IndicatorType.DOMAIN:
        return classify_domain(indicator.value, policy)
    host = indicator.host or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return classify_domain(host, policy)
    return classify_address(address, policy)


def classify_address(address: IPAddress, policy: ScopePolicy) -> Scope:
    """Return the scope of one address.

    Configured networks come first, then the special-purpose tables. An IPv6
    address that carries an IPv4 address (IPv4-mapped, 6to4, Teredo, NAT64)
    is not public when the IPv4 address it carries is not public.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return classify_address(address.ipv4_mapped, policy)
    configured = _configured_scope(address, policy)
    if configured is not None:
        return configured
    if isinstance(address, ipaddress.IPv4Address):
        return _table_scope(address, IPV4_RANGES) or Scope(ScopeReason.PUBLIC, "public address")
    return _ipv6_scope(address, policy)


def _configured_scope(address: IPAddress, policy: ScopePolicy) -> Scope | None:
    internal = _most_specific(address, policy.internal_networks)
    override = _most_specific(address, policy.public_overrides)
    if override is not None and (internal is None or override.prefixlen > internal.prefixlen):
        return Scope(ScopeReason.PUBLIC_OVERRIDE, f"{override} is listed in scope.public_overrides")
    if internal is not None:
        return Scope(
            ScopeReason.INTERNAL_NETWORK, f"{internal} is listed in scope.internal_networks"
        )
    return None


def _most_specific(address: IPAddress, networks: Iterable[IPNetwork]) -> IPNetwork | None:
    matching = [net for net in networks if net.version == address.version and address in net]
    return max(matching, key=lambda network: network.prefixlen, default=None)


def _table_scope(address: IPAddress, table: tuple[SpecialRange, ...]) -> Scope | None:
    for entry in table:
        if address in entry.network:
            return Scope(entry.reason, entry.detail)
    return None


def _ipv6_scope(address: ipaddress.IPv6Address, policy: ScopePolicy) -> Scope:
    embedded = _embedded_scope(address, policy)
    if embedded is not None:
        return embedded
    listed = _table_scope(address, IPV6_RANGES)
    if listed is not None:
        return listed
    if address not in _GLOBAL_UNICAST:
        return Scope(
            ScopeReason.RESERVED,
            f"{address} is outside the global unicast range 2000::/3 and reserved (RFC 4291)",
        )
    return Scope(ScopeReason.PUBLIC, "public address")


def _embedded_scope(address: ipaddress.IPv6Address, policy: ScopePolicy) -> Scope | None:
    """Return the scope of a 6to4, Teredo or NAT64 address, or None for other addresses."""
    if address in _SIX_TO_FOUR:
        carried = [_ipv4_bits(address, 80)]
        prefix = "6to4 address"
    elif address in _TEREDO:
        # The client address is stored with every bit inverted.
        client = ipaddress.IPv4Address(~int(address) & 0xFFFFFFFF)
        carried = [_ipv4_bits(address, 64), client]
        prefix = "Teredo address"
    elif address in _NAT64_WELL_KNOWN or address in _NAT64_LOCAL:
        carried = [_ipv4_bits(address, 0)]
        prefix = "NAT64 address"
    else:
        return None
    for ipv4 in carried:
        scope = classify_address(ipv4, policy)
        if not scope.is_public:
            return Scope(
                ScopeReason.EMBEDDED_NON_PUBLIC, f"{prefix} carries {ipv4}, and {scope.detail}"
            )
    if address in _NAT64_LOCAL:
        # RFC 8215 allows any RFC 6052 prefix length inside this /48, so the
        # IPv4 address may sit elsewhere and the last 32 bits are a guess.
        # The prefix is only routed inside the network that uses it.
        return Scope(ScopeReason.PRIVATE, "64:ff9b:1::/48 is a local-use NAT64 prefix (RFC 8215)")
    carried_text = " and ".join(str(ipv4) for ipv4 in carried)
    return Scope(ScopeReason.PUBLIC, f"{prefix} carries the public address {carried_text}")


def _ipv4_bits(address: ipaddress.IPv6Address, shift: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address((int(address) >> shift) & 0xFFFFFFFF)


def classify_domain(domain: str, policy: ScopePolicy) -> Scope:
    """Return the scope of a canonical domain name (lower-case A-label, no trailing dot)."""
    name = domain.lower().removesuffix(".")
    for internal in policy.internal_domains:
        if name == internal or name.endswith("." + internal):
            return Scope(
                ScopeReason.INTERNAL_DOMAIN, f"{internal} is listed in scope.internal_domains"
            )
    listed = _suffix_scope(name)
    if listed is not None:
        return listed
    if "." not in name:
        return Scope(
            ScopeReason.SINGLE_LABEL,
            f"{name!r} has a single label, so it resolves only through local search domains",
        )
    return Scope(ScopeReason.PUBLIC, "public domain name")


def _suffix_scope(name: str) -> Scope | None:
    labels = name.split(".")
    for count in range(min(_MAX_SUFFIX_LABELS, len(labels)), 0, -1):
        listed = INTERNAL_SUFFIXES.get(".".join(labels[-count:]))
        if listed is not None:
            return Scope(*listed)
    return None
