"""MaxMind GeoIP: country, city and autonomous system of an IP address, offline.

A context source. It reads GeoLite2 or GeoIP2 databases configured as
``geoip.asn_db`` and ``geoip.city_db``, sends nothing over the network and
never flags an indicator. Either database alone is enough; the context then
holds only the fields that database has.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import maxminddb

from iocscope.errors import SourceUnavailableError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps

NAME = "geoip"
# Substrings of the database_type metadata each setting accepts: GeoIP2-ISP
# also carries autonomous system fields, and a Country database gives the
# country without the city.
ASN_DATABASE_TYPES = ("ASN", "ISP")
CITY_DATABASE_TYPES = ("City", "Country")

META = SourceMeta(
    name=NAME,
    title="MaxMind GeoIP",
    kind=SourceKind.CONTEXT,
    types=frozenset({IndicatorType.IPV4, IndicatorType.IPV6}),
    needs_key=False,
    weight=0.0,
    timeout=1.0,
    reference="https://www.maxmind.com",
    licence="GeoLite2 End User License Agreement (GeoLite2) or a GeoIP2 licence",
    offline=True,
)


class GeoipSource:
    """Looks IP addresses up in open MaxMind database readers.

    The readers stay open for the life of the source; ``close`` releases them.
    """

    def __init__(self, asn: maxminddb.Reader | None, city: maxminddb.Reader | None) -> None:
        self._asn = asn
        self._city = city

    @property
    def meta(self) -> SourceMeta:
        return META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Return the location and network of an IP address; never flags and never raises."""
        asn_record, asn_prefix = _get(self._asn, indicator.value)
        city_record, city_prefix = _get(self._city, indicator.value)
        context: dict[str, Any] = {}
        if city_record is not None:
            context |= _city_context(city_record)
        if asn_record is not None:
            context |= _asn_context(asn_record)
        # The ASN database's prefix is the routed network; the city one is
        # only the range that shares a location.
        prefix = asn_prefix if asn_record is not None else city_prefix
        found = asn_record is not None or city_record is not None
        if found and prefix is not None:
            network = ipaddress.ip_network(f"{indicator.value}/{prefix}", strict=False)
            context["network"] = str(network)
        return SourceResult(
            source=NAME,
            status=Status.OK,
            found=found,
            summary=_summary(context),
            context=context,
        )

    def close(self) -> None:
        """Close the database readers."""
        for reader in (self._asn, self._city):
            if reader is not None:
                reader.close()


def create(deps: SourceDeps) -> Source:
    """Open the configured databases; raise ``SourceUnavailableError`` when none can be used."""
    settings = deps.settings.geoip
    if settings.asn_db is None and settings.city_db is None:
        raise SourceUnavailableError(
            "GeoIP needs a MaxMind database: set geoip.asn_db or geoip.city_db "
            "in the configuration file"
        )
    asn = None
    if settings.asn_db is not None:
        asn = open_database("asn_db", settings.asn_db, ASN_DATABASE_TYPES)
    try:
        city = None
        if settings.city_db is not None:
            city = open_database("city_db", settings.city_db, CITY_DATABASE_TYPES)
    except SourceUnavailableError:
        if asn is not None:
            asn.close()
        raise
    return GeoipSource(asn, city)


def open_database(setting: str, path: Path, accepted: tuple[str, ...]) -> maxminddb.Reader:
    """Open one MaxMind database and check its type.

    ``setting`` names the configuration key (``asn_db`` or ``city_db``) for the
    error message; ``accepted`` lists substrings of the allowed database types.
    """
    where = f"{path} (geoip.{setting})"
    try:
        reader = maxminddb.open_database(path)
    except FileNotFoundError as exc:
        raise SourceUnavailableError(
            f"GeoIP database {where} not found: download it from MaxMind or correct the path"
        ) from exc
    except OSError as exc:
        raise SourceUnavailableError(
            f"cannot read GeoIP database {where}: {exc.strerror or exc}"
        ) from exc
    except (ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise SourceUnavailableError(
            f"GeoIP database {where} is not a valid MaxMind database: "
            "download a fresh copy or correct the path"
        ) from exc
    database_type = reader.metadata().database_type
    if not any(kind in database_type for kind in accepted):
        reader.close()
        expected = " or ".join(accepted)
        raise SourceUnavailableError(
            f"GeoIP database {where} is a {database_type} database; "
            f"expected a database of type {expected}"
        )
    return reader


def _get(reader: maxminddb.Reader | None, ip: str) -> tuple[dict[str, Any] | None, int | None]:
    if reader is None:
        return None, None
    try:
        record, prefix = reader.get_with_prefix_len(ip)
    except ValueError:
        # An IPv6 address in an IPv4-only database: the database cannot know it.
        return None, None
    return (record, prefix) if isinstance(record, dict) else (None, prefix)


def _english_name(record: dict[str, Any], key: str) -> str | None:
    part = record.get(key)
    names = part.get("names") if isinstance(part, dict) else None
    name = names.get("en") if isinstance(names, dict) else None
    return name if isinstance(name, str) else None


def _city_context(record: dict[str, Any]) -> dict[str, Any]:
    country = record.get("country")
    iso = country.get("iso_code") if isinstance(country, dict) else None
    context = {
        "country_iso": iso if isinstance(iso, str) else None,
        "country": _english_name(record, "country"),
        "city": _english_name(record, "city"),
    }
    return {key: value for key, value in context.items() if value is not None}


def _asn_context(record: dict[str, Any]) -> dict[str, Any]:
    number = record.get("autonomous_system_number")
    organisation = record.get("autonomous_system_organization")
    context: dict[str, Any] = {}
    if isinstance(number, int):
        context["asn"] = number
    if isinstance(organisation, str):
        context["as_org"] = organisation
    return context


def _summary(context: dict[str, Any]) -> str:
    parts = []
    place = ", ".join(str(context[key]) for key in ("city", "country") if key in context)
    if place:
        parts.append(place)
    if "asn" in context:
        organisation = context.get("as_org")
        parts.append(f"AS{context['asn']}" + (f" ({organisation})" if organisation else ""))
    if "network" in context:
        parts.append(f"network {context['network']}")
    return "; ".join(parts) if parts else "not in the GeoIP databases"
