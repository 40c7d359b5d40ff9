"""VirusTotal (API v3): the verdicts of many antivirus and URL-scanning engines.

An indicator is flagged when at least ``FLAG_THRESHOLD`` engines call it
malicious. One engine never suffices, because single-engine detections of
well-known infrastructure (1.1.1.1, google.com) are common. The confidence
grows with the share of engines that flag it. VirusTotal answers IP
addresses, domains, URLs and MD5, SHA-1 and SHA-256 hashes.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from iocscope.config import resolve_api_key
from iocscope.errors import BadResponseError, SourceUnavailableError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.drift import parse_response, warn_drift
from iocscope.sources.http import Sleep, error_detail, key_env, key_hint, request_json

log = logging.getLogger(__name__)

T = TypeVar("T")

NAME = "virustotal"
DEFAULT_BASE_URL = "https://www.virustotal.com"
GUI_URL = "https://www.virustotal.com/gui"
FLAG_THRESHOLD = 3  # malicious engine verdicts from which an indicator is flagged
MIN_THRESHOLD = 2  # a threshold below this would let one engine flag on its own
# Share of engines flagging "malicious" that counts as full confidence. About
# 90 engines return a verdict, so 15% of them agreeing is a strong consensus.
FULL_CONFIDENCE_RATIO = 0.15

META = SourceMeta(
    name=NAME,
    title="VirusTotal",
    kind=SourceKind.API,
    types=frozenset(
        {
            IndicatorType.IPV4,
            IndicatorType.IPV6,
            IndicatorType.DOMAIN,
            IndicatorType.URL,
            IndicatorType.MD5,
            IndicatorType.SHA1,
            IndicatorType.SHA256,
        }
    ),
    needs_key=True,
    weight=0.8,
    timeout=10.0,
    # Public API: 4 requests a minute and 500 a day, per the VirusTotal
    # documentation page "Public vs Premium API".
    rate_per_minute=4,
    daily_budget=500,
    reference="https://www.virustotal.com",
    licence="VirusTotal terms of service; the public API is for non-commercial use only",
)

# Path segment of the API and of the web interface, by indicator type.
_API_PATHS = {
    IndicatorType.IPV4: "ip_addresses",
    IndicatorType.IPV6: "ip_addresses",
    IndicatorType.DOMAIN: "domains",
    IndicatorType.URL: "urls",
}
_GUI_KINDS = {
    IndicatorType.IPV4: "ip-address",
    IndicatorType.IPV6: "ip-address",
    IndicatorType.DOMAIN: "domain",
    IndicatorType.URL: "url",
}

_DRIFT_MESSAGE = (
    "source=%(source)s attribute %(field)s has an unexpected value (%(value).80r); "
    "it is ignored. VirusTotal may have changed its API"
)


class _Stats(BaseModel):
    """``last_analysis_stats``: engine counts by verdict. Other counters are kept apart."""

    model_config = ConfigDict(frozen=True, extra="allow")

    malicious: int = Field(ge=0)
    suspicious: int = Field(ge=0)
    harmless: int = Field(ge=0)
    undetected: int = Field(ge=0)

    @property
    def engines(self) -> int:
        """Return the number of engines that gave a verdict (not timeouts or unsupported types)."""
        return self.malicious + self.suspicious + self.harmless + self.undetected


class _Attributes(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    last_analysis_stats: _Stats


class _Object(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    type: str
    attributes: _Attributes


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    data: _Object


class VirusTotalSource:
    """Looks indicators up with the VirusTotal v3 object endpoints (``GET /api/v3/...``).

    The key travels only in the ``x-apikey`` header.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: SecretStr,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = META.timeout,
        threshold: int = FLAG_THRESHOLD,
        key_hint: str = f"check IOCSCOPE_{NAME.upper()}_API_KEY",
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if threshold < MIN_THRESHOLD:
            raise ValueError(
                f"the VirusTotal flag threshold must be at least {MIN_THRESHOLD} engines, "
                f"not {threshold}: one engine alone must never flag an indicator"
            )
        self._http = http
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._threshold = threshold
        self._key_hint = key_hint
        self._sleep = sleep

    @property
    def meta(self) -> SourceMeta:
        return META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Fetch the object of one indicator; an unknown indicator gives found False."""
        status, payload = await request_json(
            self._http,
            NAME,
            "GET",
            f"{self._base_url}/api/v3/{object_path(indicator)}",
            headers={"x-apikey": self._api_key.get_secret_value(), "Accept": "application/json"},
            timeout=self._timeout,
            # The engine bounds the whole lookup by the same timeout, so
            # retries happen only when they fit inside it.
            deadline=self._timeout,
            sleep=self._sleep,
            expect=(200, 400, 404),
            key_hint=self._key_hint,
            quota_body=_quota_exceeded,
        )
        if status == 404:
            return _not_found(payload)
        if status == 400:
            detail = error_detail(payload) or "no detail given"
            message = f"rejected {indicator.value} as invalid input (status 400: {detail})"
            raise BadResponseError(NAME, message)
        answer = parse_response(NAME, _Answer, payload)
        return _result(indicator, answer.data, payload, self._threshold)


def create(deps: SourceDeps) -> Source:
    """Build the source from the settings; raise ``SourceUnavailableError`` without a key."""
    settings = deps.settings.source(NAME)
    key = resolve_api_key(NAME, settings)
    if key is None:
        raise SourceUnavailableError(
            f"VirusTotal needs an API key: set {key_env(NAME, settings)} "
            f"or sources.{NAME}.api_key_file"
        )
    return VirusTotalSource(
        deps.http,
        key,
        base_url=settings.base_url or DEFAULT_BASE_URL,
        timeout=settings.timeout or META.timeout,
        key_hint=key_hint(NAME, settings),
    )


def object_path(indicator: Indicator) -> str:
    """Return the API path of an indicator's object, below ``/api/v3/``.

    A URL is identified by its URL-safe base64 encoding without ``=``
    padding (RFC 4648 section 5), as the VirusTotal URL documentation requires.
    """
    if indicator.type is IndicatorType.URL:
        return f"urls/{url_id(indicator.value)}"
    if indicator.type.is_hash:
        return f"files/{indicator.value}"
    return f"{_API_PATHS[indicator.type]}/{indicator.value}"


def url_id(url: str) -> str:
    """Return the VirusTotal identifier of a URL: unpadded URL-safe base64."""
    return base64.urlsafe_b64encode(url.encode("utf-8")).decode("ascii").rstrip("=")


def _error_code(payload: Any) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else ""


def _quota_exceeded(payload: Any) -> bool:
    # VirusTotal names the cause of a 429 only in the error code of its body:
    # QuotaExceededError when a minute, daily or monthly quota is spent, and
    # TooManyRequestsError for too many requests at once (its "Errors"
    # reference page). A spent quota does not clear within one lookup, so it is
    # not retried.
    return _error_code(payload) == "QuotaExceededError"


def _not_found(payload: Any) -> SourceResult:
    # Only VirusTotal's own NotFoundError means "unknown indicator"; any other
    # 404 (a wrong base_url, a retired endpoint) is an error.
    if _error_code(payload) != "NotFoundError":
        detail = error_detail(payload) or "no detail"
        raise BadResponseError(NAME, f"unexpected response (status 404: {detail})")
    return SourceResult(source=NAME, status=Status.OK, summary="unknown to VirusTotal", raw=payload)


def _result(indicator: Indicator, obj: _Object, payload: Any, threshold: int) -> SourceResult:
    attributes = obj.attributes.model_extra or {}
    stats = obj.attributes.last_analysis_stats
    first_seen = _epoch(attributes, "first_submission_date")
    last_seen = _epoch(attributes, "last_analysis_date")
    reputation = _typed(attributes, "reputation", int)
    return SourceResult(
        source=NAME,
        status=Status.OK,
        found=True,
        flagged=stats.malicious >= threshold,
        confidence=confidence(stats.malicious, stats.engines),
        categories=_categories(attributes),
        tags=_tags(attributes),
        first_seen=first_seen,
        last_seen=last_seen,
        reference=_reference(indicator, obj),
        summary=_summary(stats, reputation, last_seen),
        context=_context(stats, reputation, attributes),
        raw=payload,
    )


def confidence(malicious: int, engines: int) -> int:
    """Return 0-100 from the share of engines that call an indicator malicious.

    ``FULL_CONFIDENCE_RATIO`` of the engines (15%) or more gives 100; the
    confidence falls linearly to 0 below it.
    """
    if engines <= 0 or malicious <= 0:
        return 0
    ratio = malicious / engines
    return min(100, round(100 * ratio / FULL_CONFIDENCE_RATIO))


def _reference(indicator: Indicator, obj: _Object) -> str:
    if indicator.type.is_hash:
        return f"{GUI_URL}/file/{indicator.value}"
    if indicator.type is IndicatorType.URL:
        # The GUI addresses a URL by the SHA-256 identifier the API returns.
        return f"{GUI_URL}/url/{obj.id}"
    return f"{GUI_URL}/{_GUI_KINDS[indicator.type]}/{indicator.value}"


def _epoch(attributes: dict[str, Any], field: str) -> datetime | None:
    seconds = _typed(attributes, field, int)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        warn_drift(log, NAME, field, seconds, _DRIFT_MESSAGE)
        return None


def _typed(attributes: dict[str, Any], field: str, kind: type[T]) -> T | None:
    """Return an optional attribute, or None (with a one-time warning) when its type changed."""
    value = attributes.get(field)
    if value is None:
        return None
    # bool is an int subclass; a boolean where a number belongs is drift too.
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    warn_drift(log, NAME, field, value, _DRIFT_MESSAGE)
    return None


def _categories(attributes: dict[str, Any]) -> tuple[str, ...]:
    # ``categories`` maps a categorisation service to its label; several
    # services often give the same label in different cases.
    by_service = _typed(attributes, "categories", dict) or {}
    labels: dict[str, str] = {}
    for label in by_service.values():
        if isinstance(label, str) and label.strip():
            labels.setdefault(label.strip().lower(), label.strip())
    threat = _typed(attributes, "popular_threat_classification", dict) or {}
    suggested = threat.get("suggested_threat_label")
    if isinstance(suggested, str) and suggested:
        labels.setdefault(suggested.lower(), suggested)
    return tuple(labels[key] for key in sorted(labels))


def _tags(attributes: dict[str, Any]) -> tuple[str, ...]:
    tags = _typed(attributes, "tags", list) or []
    return tuple(tag for tag in tags if isinstance(tag, str))


def _summary(stats: _Stats, reputation: int | None, last_seen: datetime | None) -> str:
    parts = [
        f"{stats.malicious} of {stats.engines} engines call it malicious, "
        f"{stats.suspicious} suspicious"
    ]
    if reputation is not None:
        parts.append(f"community reputation {reputation}")
    if last_seen is not None:
        parts.append(f"last analysed {last_seen.date().isoformat()}")
    return "; ".join(parts)


def _context(stats: _Stats, reputation: int | None, attributes: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {
        "malicious": stats.malicious,
        "suspicious": stats.suspicious,
        "harmless": stats.harmless,
        "undetected": stats.undetected,
        "engines": stats.engines,
        "reputation": reputation,
        "as_owner": _typed(attributes, "as_owner", str),
        "asn": _typed(attributes, "asn", int),
        "country_iso": _typed(attributes, "country", str),
        "network": _typed(attributes, "network", str),
        "names": (_typed(attributes, "names", list) or [])[:5],
        "type_description": _typed(attributes, "type_description", str),
    }
    return {key: value for key, value in context.items() if value not in (None, "", [])}
