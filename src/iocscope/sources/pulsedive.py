"""Pulsedive: community threat intelligence with a risk level per indicator.

Pulsedive rates each indicator ``none``, ``low``, ``medium``, ``high`` or
``critical`` and links it to threats (malware families, campaigns) and feeds.
Any risk from ``low`` up flags the indicator, with a confidence that grows
with the risk; ``none`` is a clean answer; ``unknown`` and ``retired``
(indicators no longer seen) carry no judgement. The API works without a key at
a lower limit.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from iocscope.config import SourceSettings, resolve_api_key
from iocscope.errors import AuthenticationError, BadResponseError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.http import Sleep, error_detail, request_json

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
    # Free accounts: one request a second, per the 429 example of Pulsedive's
    # "Rate limits" documentation page.
    # NOTE: the free daily and monthly limits appear only on the account page,
    # so no daily budget is set. A 429 that reports no requests left for the
    # day or month is raised as QuotaExceededError instead.
    rate_per_minute=60,
    reference="https://pulsedive.com",
    licence="Pulsedive terms of service; the free API is for non-commercial use",
)

# Fields whose drift was already logged; one warning per process is enough.
_warned: set[str] = set()
# Keys already registered with the httpx log filter below.
_redacted: set[str] = set()


class _RedactKey(logging.Filter):
    """Replaces API keys in records of the ``httpx`` logger, which logs full URLs at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(key in message for key in _redacted):
            for key in _redacted:
                message = message.replace(key, "***")
            record.msg = message
            record.args = None
        return True


_REDACT_FILTER = _RedactKey()


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
    """Looks indicators up with ``GET /api/info.php?indicator=...``.

    Pulsedive documents the key only as the ``key`` query parameter.
    request_json logs only the URL path, and the ``httpx`` logger, which logs
    whole URLs, gets a filter that replaces the key with ``***``.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: SecretStr | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = META.timeout,
        key_hint: str | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._url = base_url.rstrip("/") + INFO_PATH
        self._timeout = timeout
        self._key_hint = key_hint if api_key is not None else None
        self._sleep = sleep
        if api_key is not None:
            _redact_in_httpx_logs(api_key.get_secret_value())

    @property
    def meta(self) -> SourceMeta:
        return META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Look one indicator up; one Pulsedive does not know gives found False."""
        params = {"indicator": indicator.value}
        if self._api_key is not None:
            # NOTE: a secret in a query string breaks the rule that keys travel
            # only in headers, but Pulsedive documents no header for it. The
            # key never reaches a log line (see _RedactKey) and redirects,
            # which could carry it to another host, are not followed.
            params["key"] = self._api_key.get_secret_value()
        status, payload = await request_json(
            self._http,
            NAME,
            "GET",
            self._url,
            headers={"Accept": "application/json"},
            params=params,
            timeout=self._timeout,
            # The engine bounds the whole lookup by the same timeout, so
            # retries happen only when they fit inside it.
            deadline=self._timeout,
            sleep=self._sleep,
            expect=(200, 400, 404),
            key_hint=self._key_hint,
            is_quota=_quota_spent,
        )
        error = _error(payload, self._secrets())
        if error is not None:
            return self._error_result(indicator, status, error, payload)
        if status != 200:
            detail = error_detail(payload, self._secrets()) or "no detail"
            raise BadResponseError(NAME, f"unexpected response (status {status}: {detail})")
        return _result(_parse(payload), payload)

    def _secrets(self) -> tuple[str, ...]:
        return () if self._api_key is None else (self._api_key.get_secret_value(),)

    def _error_result(
        self, indicator: Indicator, status: int, error: str, payload: Any
    ) -> SourceResult:
        if error == NOT_FOUND_DETAIL:
            return SourceResult(
                source=NAME, status=Status.OK, summary="unknown to Pulsedive", raw=payload
            )
        if "api key" in error.lower():
            hint = f"; {self._key_hint}" if self._key_hint else ""
            raise AuthenticationError(
                NAME, f"the API key was rejected (status {status}: {error}){hint}"
            )
        if status == 400:
            message = f"rejected {indicator.value} as invalid input (status 400: {error})"
            raise BadResponseError(NAME, message)
        raise BadResponseError(NAME, f"unexpected response (status {status}: {error})")


def create(deps: SourceDeps) -> Source:
    """Build the source; a key is optional and raises the free limit."""
    settings = deps.settings.source(NAME)
    key = resolve_api_key(NAME, settings)
    return PulsediveSource(
        deps.http,
        key,
        base_url=settings.base_url or DEFAULT_BASE_URL,
        timeout=settings.timeout or META.timeout,
        key_hint=_key_hint(settings),
    )


def _redact_in_httpx_logs(key: str) -> None:
    if not key or key in _redacted:
        return
    _redacted.add(key)
    httpx_logger = logging.getLogger("httpx")
    if _REDACT_FILTER not in httpx_logger.filters:
        httpx_logger.addFilter(_REDACT_FILTER)


def _key_hint(settings: SourceSettings) -> str:
    if settings.api_key_file is not None:
        return f"check the key in {settings.api_key_file}"
    return f"check {settings.api_key_env or f'IOCSCOPE_{NAME.upper()}_API_KEY'}"


def _quota_spent(headers: httpx.Headers) -> bool:
    # Pulsedive reports what is left per second, day and month. A 429 with
    # nothing left for the day or month will not clear with a retry.
    return "0" in (
        headers.get("X-Requests-Remaining-Day"),
        headers.get("X-Requests-Remaining-Month"),
    )


def _error(payload: Any, secrets: tuple[str, ...]) -> str | None:
    # Pulsedive reports failures as {"error": "..."}, sometimes with status 200.
    if isinstance(payload, dict) and "error" in payload:
        return error_detail(payload, secrets) or "no error text"
    return None


def _parse(payload: Any) -> _Info:
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        message = f"returned a response in an unexpected format (a JSON {kind}, not an object)"
        raise BadResponseError(NAME, message)
    try:
        return _Info.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        message = f"returned a response in an unexpected format ({problems})"
        raise BadResponseError(NAME, message) from exc


def _warn_drift(field: str, value: Any) -> None:
    if field in _warned:
        return
    _warned.add(field)
    log.warning(
        "source=%s field %s has an unexpected value (%.80r); it is ignored. "
        "Pulsedive may have changed its API",
        NAME,
        field,
        value,
    )


def _risk(info: _Info) -> str:
    risk = info.risk.lower()
    if risk in RISKS:
        return risk
    _warn_drift("risk", info.risk)
    return "unknown"


def _stamp(field: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        _warn_drift(field, value)
        return None


def _names(field: str, items: tuple[Any, ...], key: str) -> tuple[str, ...]:
    names: list[str] = []
    for item in items:
        value = item.get(key) if isinstance(item, dict) else None
        if isinstance(value, str) and value:
            if value not in names:
                names.append(value)
        else:
            _warn_drift(field, item)
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
