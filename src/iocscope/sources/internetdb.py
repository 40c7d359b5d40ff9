"""Shodan InternetDB: open ports, hostnames, CPEs, tags and CVEs of an IPv4 address.

The API is keyless and supports IPv4 addresses only. Most of what it returns is
context; only Shodan tags that mean the host itself is hostile or taken over
(``FLAG_TAGS``) flag it, with a moderate confidence because the data is
refreshed about once a week. A ``cdn`` tag is a benign hint, since a CDN edge
address is shared by many unrelated sites.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from iocscope.errors import BadResponseError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.http import Sleep, error_detail, request_json

NAME = "internetdb"
DEFAULT_BASE_URL = "https://internetdb.shodan.io"
NOT_FOUND_DETAIL = "No information available"  # the 404 body of an address Shodan has not seen
FLAG_TAGS = frozenset({"c2", "compromised", "doublepulsar", "malware"})
BENIGN_TAGS = frozenset({"cdn"})
FLAG_CONFIDENCE = 60

META = SourceMeta(
    name=NAME,
    title="Shodan InternetDB",
    kind=SourceKind.API,
    types=frozenset({IndicatorType.IPV4}),
    needs_key=False,
    weight=0.4,
    timeout=5.0,
    reference="https://internetdb.shodan.io",
    licence="free for non-commercial use; commercial use needs a Shodan licence",
)


class _Host(BaseModel):
    """An InternetDB response; every list may be empty."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ip: str
    ports: tuple[int, ...] = ()
    hostnames: tuple[str, ...] = ()
    cpes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    vulns: tuple[str, ...] = ()


class InternetDbSource:
    """Looks IPv4 addresses up in Shodan InternetDB (``GET /<ip>``)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = META.timeout,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._sleep = sleep

    @property
    def meta(self) -> SourceMeta:
        return META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Look one IPv4 address up; an address Shodan has not seen is a result with found False."""
        status, payload = await request_json(
            self._http,
            NAME,
            "GET",
            f"{self._base_url}/{indicator.value}",
            headers={"Accept": "application/json"},
            timeout=self._timeout,
            # The engine bounds the whole lookup by the same timeout, so
            # retries happen only when they fit inside it.
            deadline=self._timeout,
            sleep=self._sleep,
            expect=(200, 404),
        )
        if status == 404:
            return _not_found(payload)
        return _result(indicator, _parse(payload), payload)


def create(deps: SourceDeps) -> Source:
    """Build the source from the settings; it needs no key."""
    settings = deps.settings.source(NAME)
    return InternetDbSource(
        deps.http,
        base_url=settings.base_url or DEFAULT_BASE_URL,
        timeout=settings.timeout or META.timeout,
    )


def _not_found(payload: Any) -> SourceResult:
    detail = error_detail(payload)
    # Any other 404 (for example a wrong base_url) is an error, not "not seen".
    if detail != NOT_FOUND_DETAIL:
        raise BadResponseError(NAME, f"unexpected response (status 404: {detail or 'no detail'})")
    return SourceResult(source=NAME, status=Status.OK, summary="not seen by Shodan", raw=payload)


def _parse(payload: Any) -> _Host:
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        message = f"returned a response in an unexpected format (a JSON {kind}, not an object)"
        raise BadResponseError(NAME, message)
    try:
        return _Host.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        message = f"returned a response in an unexpected format ({problems})"
        raise BadResponseError(NAME, message) from exc


def _result(indicator: Indicator, host: _Host, payload: Any) -> SourceResult:
    tags = frozenset(host.tags)
    flags = tuple(sorted(tags & FLAG_TAGS))
    return SourceResult(
        source=NAME,
        status=Status.OK,
        found=True,
        flagged=bool(flags),
        benign=not flags and bool(tags & BENIGN_TAGS),
        confidence=FLAG_CONFIDENCE if flags else 0,
        categories=flags,
        tags=host.tags,
        reference=f"https://www.shodan.io/host/{indicator.value}",
        summary=_summary(host),
        context={
            "ports": list(host.ports),
            "hostnames": list(host.hostnames),
            "cpes": list(host.cpes),
            "vulns_count": len(host.vulns),
        },
        raw=payload,
    )


def _summary(host: _Host) -> str:
    ports = ", ".join(str(port) for port in sorted(host.ports))
    parts = [f"open ports {ports}" if ports else "no open ports seen"]
    if host.vulns:
        count = len(host.vulns)
        parts.append(f"{count} known vulnerabilit{'y' if count == 1 else 'ies'}")
    if host.tags:
        parts.append(f"tags {', '.join(host.tags)}")
    return "; ".join(parts)
