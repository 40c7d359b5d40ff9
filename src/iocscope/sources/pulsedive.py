"""Pulsedive: community threat intelligence with a risk level per indicator.

Pulsedive rates each indicator ``none``, ``low``, ``medium``, ``high`` or
``critical`` and links it to threats (malware families, campaigns) and feeds.
Any risk from ``low`` up flags the indicator, with a confidence that grows
with the risk; ``none`` is a clean answer; ``unknown`` and ``retired``
(indicators no longer seen) carry no judgement.

iocscope calls Pulsedive without a key. Pulsedive documents its API key only
as a ``key`` query parameter, and iocscope sends keys only in headers because
URLs end up in proxy, server and client logs. A configured key is therefore
ignored with a warning, and the keyless limits apply.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from iocscope.config import SourceSettings
from iocscope.errors import AuthenticationError, BadResponseError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.drift import parse_response, warn_drift
from iocscope.sources.http import Sleep, error_detail, key_env, request_json

log = logging.getLogger(__name__)

NAME = "pulsedive"
DEFAULT_BASE_URL = "https://pulsedive.com"
INFO_PATH = "/api/info.php"
WEB_URL = "https://pulsedive.com/indicator/?iid="
NOT_FOUND_DETAIL = "Indicator not found."  # the error text of an unknown indicator
STAMP_FORMAT = "%Y-%m-%d %H:%M:%S"  # Pulsedive time stamps, in UTC

# Confidence of a flag by risk level; ``none`` is a clean answer.
FLAG_CONFIDENCE = MappingProxyType({"low": 25, "medium": 50, "high": 75, "critical": 90})
RISKS = frozenset({*FLAG_CONFIDENCE, "none", "unknown", "retired"})

META = SourceMeta(
    name=NAME,
    title="Pulsedive",
    kind=SourceKind.API,
    types=frozenset(
        {IndicatorType.IPV4, IndicatorType.IPV6, IndicatorType.DOMAIN, IndicatorType.URL}
    ),
    needs_key=False,
    weight=0.4,
    timeout=10.0,
    # One request a second: the free-account limit in the 429 example of
    # Pulsedive's "Rate limits" documentation page. The page states no keyless
    # limit, so it is assumed to be no higher.
    # NOTE: the free daily and monthly limits appear only on the account page,
    # so no daily budget is set. A 429 that reports no requests left for the
    # day or month is raised as QuotaExceededError instead.
    rate_per_minute=60,
    reference="https://pulsedive.com",
    licence="Pulsedive terms of service; the free API is for non-commercial use",
)

_DRIFT_MESSAGE = (
    "source=%(source)s field %(field)s has an unexpected value (%(value).80r); "
    "it is ignored. Pulsedive may have changed its API"
)


class _Info(BaseModel):
    """An ``info.php`` response, limited to the fields iocscope uses."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    indicator: str
    risk: str
    iid: int | None = None
    type: str | None = None
    risk_recommended: str | None = None
    stamp_added: str | None = None
    stamp_seen: str | None = None
    stamp_updated: str | None = None
    threats: tuple[Any, ...] = ()
    feeds: tuple[Any, ...] = ()
    riskfactors: tuple[Any, ...] = ()


class PulsediveSource:
    """Looks indicators up with ``GET /api/info.php?indicator=...``, always without a key."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = META.timeout,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self._url = base_url.rstrip("/") + INFO_PATH
        self._timeout = timeout
        self._sleep = sleep

    @property
    def meta(self) -> SourceMeta:
        return META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Look one indicator up; one Pulsedive does not know gives found False."""
        status, payload = await request_json(
            self._http,
            NAME,
            "GET",
            self._url,
            headers={"Accept": "application/json"},
            params={"indicator": indicator.value},
            timeout=self._timeout,
            # The engine bounds the whole lookup by the same timeout, so
            # retries happen only when they fit inside it.
            deadline=self._timeout,
            sleep=self._sleep,
            expect=(200, 400, 404),
            is_quota=_quota_spent,
        )
        error = _error(payload)
        if error is not None:
            return _error_result(indicator, status, error, payload)
        if status != 200:
            detail = error_detail(payload) or "no detail"
            raise BadResponseError(NAME, f"unexpected response (status {status}: {detail})")
        return _result(parse_response(NAME, _Info, payload), payload)


def create(deps: SourceDeps) -> Source:
    """Build the keyless source; log a warning when a key is configured, because it is ignored."""
    settings = deps.settings.source(NAME)
    where = _configured_key(settings)
    if where is not None:
        log.warning(
            "source=%s an API key is configured in %s but ignored: Pulsedive takes keys "
            "only in the URL, where iocscope never puts a key, so the keyless limits apply",
            NAME,
            where,
        )
    return PulsediveSource(
        deps.http,
        base_url=settings.base_url or DEFAULT_BASE_URL,
        timeout=settings.timeout or META.timeout,
    )


def _configured_key(settings: SourceSettings) -> str | None:
    """Return the key file or the set environment variable that configures a key, or None.

    The key file is not read: the key is not used, so an unreadable file is no error.
    """
    if settings.api_key_file is not None:
        return str(settings.api_key_file)
    env = key_env(NAME, settings)
    return env if os.environ.get(env, "").strip() else None


def _error_result(indicator: Indicator, status: int, error: str, payload: Any) -> SourceResult:
    if error == NOT_FOUND_DETAIL:
        return SourceResult(
            source=NAME, status=Status.OK, summary="unknown to Pulsedive", raw=payload
        )
    if "api key" in error.lower():
        raise AuthenticationError(
            NAME,
            f"access was denied (status {status}: {error}); iocscope sends no key to "
            f"Pulsedive, so set sources.{NAME}.enabled to false if Pulsedive now requires one",
        )
    if status == 400:
        message = f"rejected {indicator.value} as invalid input (status 400: {error})"
        raise BadResponseError(NAME, message)
    raise BadResponseError(NAME, f"unexpected response (status {status}: {error})")


def _quota_spent(headers: httpx.Headers) -> bool:
    # Pulsedive reports what is left per second, day and month. A 429 with
    # nothing left for the day or month will not clear with a retry.
    return "0" in (
        headers.get("X-Requests-Remaining-Day"),
        headers.get("X-Requests-Remaining-Month"),
    )


def _error(payload: Any) -> str | None:
    # Pulsedive reports failures as {"error": "..."}, sometimes with status 200.
    if isinstance(payload, dict) and "error" in payload:
        return error_detail(payload) or "no error text"
    return None


def _risk(info: _Info) -> str:
    risk = info.risk.lower()
    if risk in RISKS:
        return risk
    warn_drift(log, NAME, "risk", info.risk, _DRIFT_MESSAGE)
    return "unknown"


def _stamp(field: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        warn_drift(log, NAME, field, value, _DRIFT_MESSAGE)
        return None


def _names(field: str, items: tuple[Any, ...], key: str) -> tuple[str, ...]:
    names: list[str] = []
    for item in items:
        value = item.get(key) if isinstance(item, dict) else None
        if isinstance(value, str) and value:
            if value not in names:
                names.append(value)
        else:
            warn_drift(log, NAME, field, item, _DRIFT_MESSAGE)
    return tuple(names)


def _result(info: _Info, payload: Any) -> SourceResult:
    risk = _risk(info)
    flagged = risk in FLAG_CONFIDENCE
    threats = _names("threats", info.threats, "name")
    feeds = _names("feeds", info.feeds, "name")
    factors = _names("riskfactors", info.riskfactors, "description")
    last_seen = _stamp("stamp_seen", info.stamp_seen) or _stamp("stamp_updated", info.stamp_updated)
    return SourceResult(
        source=NAME,
        status=Status.OK,
        # ``unknown`` and ``retired`` carry no judgement, so they are not a
        # clean answer either.
        found=flagged or risk == "none",
        flagged=flagged,
        confidence=FLAG_CONFIDENCE.get(risk, 0),
        categories=threats,
        tags=factors,
        first_seen=_stamp("stamp_added", info.stamp_added),
        last_seen=last_seen,
        reference=f"{WEB_URL}{info.iid}" if info.iid is not None else None,
        summary=_summary(risk, threats, feeds),
        context={
            key: value
            for key, value in {
                "risk": risk,
                "risk_recommended": info.risk_recommended,
                "feeds": list(feeds),
                "type": info.type,
            }.items()
            if value not in (None, "", [])
        },
        raw=payload,
    )


def _summary(risk: str, threats: tuple[str, ...], feeds: tuple[str, ...]) -> str:
    parts = [f"risk {risk}"]
    if threats:
        parts.append("threats " + ", ".join(threats))
    if feeds:
        parts.append("in feeds " + ", ".join(feeds))
    return "; ".join(parts)
