"""The operator's own allowlist: values, networks and domains never looked up."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from iocscope.errors import ConfigError, InvalidIndicatorError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.indicators.parse import parse_indicator

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Allowlist:
    """Exact indicator values, IP networks, and domains matched with their subdomains."""

    values: frozenset[str] = frozenset()
    networks: tuple[IpNetwork, ...] = ()
    domains: frozenset[str] = frozenset()

    @classmethod
    def from_entries(cls, entries: tuple[str, ...]) -> Allowlist:
        """Parse the ``allowlist`` setting; an invalid entry raises ConfigError naming it."""
        values: set[str] = set()
        networks: list[IpNetwork] = []
        domains: set[str] = set()
        for entry in entries:
            if "/" in entry and "://" not in entry:
                networks.append(_parse_network(entry))
                continue
            try:
                indicator = parse_indicator(entry)
            except InvalidIndicatorError as exc:
                raise ConfigError(f"invalid allowlist entry {entry!r}: {exc.rule}") from exc
            values.add(indicator.value)
            if indicator.type is IndicatorType.DOMAIN:
                domains.add(indicator.value)
        return cls(frozenset(values), tuple(networks), frozenset(domains))

    def match(self, indicator: Indicator) -> str | None:
        """Return the allowlist entry that covers the indicator, or None."""
        if indicator.value in self.values:
            return indicator.value
        if indicator.type.is_ip:
            address = ipaddress.ip_address(indicator.value)
            for network in self.networks:
                if address.version == network.version and address in network:
                    return str(network)
            return None
        host = indicator.host if indicator.host is not None else indicator.value
        return self._match_domain(host)

    def _match_domain(self, host: str) -> str | None:
        labels = host.split(".")
        for start in range(len(labels)):
            candidate = ".".join(labels[start:])
            if candidate in self.domains:
                return candidate
        return None


def _parse_network(entry: str) -> IpNetwork:
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError as exc:
        raise ConfigError(
            f"invalid allowlist network {entry!r}: write it as an address/prefix, "
            "for example 192.0.2.0/24"
        ) from exc
