"""IPinfo: where an IP address is and who runs it (country, city, ASN, organisation).

A context source: it never flags and never gives a benign hint, it only adds
context to the result. Privacy flags (VPN, proxy, Tor, relay, hosting), which
IPinfo returns only on paid plans, become tags. A token is optional; it
travels as ``Authorization: Bearer``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from iocscope.config import resolve_api_key
from iocscope.errors import BadResponseError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.drift import parse_response, warn_drift
from iocscope.sources.http import Sleep, key_hint, request_json

log = logging.getLogger(__name__)

NAME = "ipinfo"
DEFAULT_BASE_URL = "https://ipinfo.io"
WEB_URL = "https://ipinfo.io/"
PRIVACY_FLAGS = ("vpn", "proxy", "tor", "relay", "hosting")
_ORG = re.compile(r"^(AS\d+)\s+(.+)$")  # "AS15169 Google LLC"

META = SourceMeta(
    name=NAME,
    title="IPinfo",
    kind=SourceKind.CONTEXT,
    types=frozenset({IndicatorType.IPV4, IndicatorType.IPV6}),
    needs_key=False,
    weight=0.0,
    timeout=5.0,
    # Tokenless use was limited to 1,000 requests a day (IPinfo developer
    # documentation as quoted by the hrbrmstr/ipinfo client) and the free token
    # plan to 50,000 a month, about 1,600 a day. 1,000 a day fits both.
    daily_budget=1000,
    reference="https://ipinfo.io",
    licence="IPinfo terms of service; attribution required for the free plan",
)

_DRIFT_MESSAGE = (
    "source=%(source)s field %(field)s has an unexpected value (%(value).80r); "
    "it is ignored. IPinfo may have changed its API"
)


class _Asn(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    asn: str | None = None
    name: str | None = None
    type: str | None = None


class _Details(BaseModel):
    """An IPinfo response; most fields are optional and depend on the plan."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ip: str
    bogon: bool = False
    hostname: str | None = None
    city: str | None = None
    region: str | None = None
    country: str | None = None
    org: str | None = None
    timezone: str | None = None
    anycast: bool | None = None
    asn: Any = None
    privacy: Any = None


class IpinfoSource:
    """Looks IP addresses up with ``GET /{ip}``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        token: SecretStr | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = META.timeout,
        key_hint: str | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self._token = token
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._key_hint = key_hint if token is not None else None
        self._sleep = sleep

    @property
    def meta(self) -> SourceMeta:
        return META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Look one address up; a bogon (a reserved or private range) gives found False."""
        headers = {"Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        status, payload = await request_json(
            self._http,
            NAME,
            "GET",
            f"{self._base_url}/{indicator.value}",
            headers=headers,
            timeout=self._timeout,
            # The engine bounds the whole lookup by the same timeout, so
            # retries happen only when they fit inside it.
            deadline=self._timeout,
            sleep=self._sleep,
            expect=(200, 400, 404),
            key_hint=self._key_hint,
        )
        if status != 200:
            # IPinfo rejects an address it cannot parse with 404 "Wrong ip".
            # iocscope only sends valid addresses, so this is an error too.
            detail = _error_text(payload) or "no detail given"
            message = f"rejected {indicator.value} as invalid input (status {status}: {detail})"
            raise BadResponseError(NAME, message)
        details = parse_response(NAME, _Details, payload)
        if details.bogon:
            return SourceResult(
                source=NAME, status=Status.OK, summary="bogon address (not routed)", raw=payload
            )
        return _result(indicator, details, payload)


def create(deps: SourceDeps) -> Source:
    """Build the source; a token is optional."""
    settings = deps.settings.source(NAME)
    token = resolve_api_key(NAME, settings)
    return IpinfoSource(
        deps.http,
        token,
        base_url=settings.base_url or DEFAULT_BASE_URL,
        timeout=settings.timeout or META.timeout,
        key_hint=key_hint(NAME, settings, credential="token"),
    )


def _error_text(payload: Any) -> str:
    # IPinfo errors: {"status": 404, "error": {"title": ..., "message": ...}}.
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        parts = [error.get("title"), error.get("message")]
        return ": ".join(part for part in parts if isinstance(part, str) and part)
    return ""


def _asn(details: _Details) -> tuple[str | None, str | None]:
    """Return (ASN, AS name) from the ``asn`` object of paid plans or the ``org`` string."""
    if details.asn is not None:
        try:
            asn = _Asn.model_validate(details.asn)
        except ValidationError:
            warn_drift(log, NAME, "asn", details.asn, _DRIFT_MESSAGE)
        else:
            if asn.asn:
                return asn.asn, asn.name
    match = _ORG.match(details.org or "")
    if match:
        return match.group(1), match.group(2)
    return None, details.org


def _privacy(details: _Details) -> dict[str, bool]:
    if details.privacy is None:
        return {}
    if not isinstance(details.privacy, dict):
        warn_drift(log, NAME, "privacy", details.privacy, _DRIFT_MESSAGE)
        return {}
    return {flag: details.privacy[flag] for flag in PRIVACY_FLAGS if flag in details.privacy}


def _result(indicator: Indicator, details: _Details, payload: Any) -> SourceResult:
    asn, as_name = _asn(details)
    privacy = _privacy(details)
    tags = tuple(flag for flag in PRIVACY_FLAGS if privacy.get(flag) is True)
    context: dict[str, Any] = {
        "country_iso": details.country,
        "region": details.region,
        "city": details.city,
        "asn": asn,
        "as_name": as_name,
        "hostname": details.hostname,
        "timezone": details.timezone,
        "anycast": details.anycast,
        "privacy": privacy or None,
    }
    return SourceResult(
        source=NAME,
        status=Status.OK,
        found=True,
        tags=tags,
        reference=WEB_URL + indicator.value,
        summary=_summary(details, asn, as_name, tags),
        context={key: value for key, value in context.items() if value not in (None, "")},
        raw=payload,
    )


def _summary(details: _Details, asn: str | None, as_name: str | None, tags: tuple[str, ...]) -> str:
    place = ", ".join(part for part in (details.city, details.country) if part)
    parts = [place or "location unknown"]
    network = " ".join(part for part in (asn, as_name) if part)
    if network:
        parts.append(network)
    if tags:
        parts.append("privacy: " + ", ".join(tags))
    return "; ".join(parts)
