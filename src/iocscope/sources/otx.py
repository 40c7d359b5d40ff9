"""AlienVault OTX (DirectConnect API v1): community "pulses" that mention an indicator.

A pulse is a report that a community member published with a list of
indicators. Pulses age badly: honeypot and scanner lists are published every
day, and an address that appeared in one two years ago means little today. The
pulse count is therefore weighted by age before it is compared with the flag
threshold (see ``pulse_weight``). OTX also names indicators it considers
false positives or allowlisted; those are a benign hint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from iocscope.config import resolve_api_key
from iocscope.errors import BadResponseError, SourceUnavailableError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.drift import parse_response, warn_drift
from iocscope.sources.http import Sleep, error_detail, key_env, key_hint, request_json

log = logging.getLogger(__name__)

NAME = "otx"
DEFAULT_BASE_URL = "https://otx.alienvault.com"
WEB_URL = "https://otx.alienvault.com/indicator"
NOT_FOUND_DETAIL = "Not found."  # the 404 body of an indicator OTX does not know
FLAG_PULSES = 2.0  # weighted pulse count from which an indicator is flagged
FRESH_DAYS = 365  # pulses modified within this many days count fully
STALE_DAYS = 730  # pulses last modified longer ago than this do not count
STALE_WEIGHT = 0.5  # weight of a pulse between FRESH_DAYS and STALE_DAYS old
UNLISTED_WEIGHT = 0.5  # weight of a counted pulse whose dates the response leaves out
CONFIDENCE_PER_PULSE = 20  # confidence added by each weighted pulse, capped at 100
MAX_TAGS = 20

META = SourceMeta(
    name=NAME,
    title="AlienVault OTX",
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
    weight=0.4,
    timeout=10.0,
    # NOTE: OTX publishes no request limit for its free accounts, but returns
    # 429 under sustained load. One call a second is an estimate meant to stay
    # clear of that. Raise sources.otx.rate_per_minute if more proves safe.
    rate_per_minute=60,
    reference="https://otx.alienvault.com",
    licence="AT&T Alien Labs OTX terms of service; free account required",
)

# Path segment of the API and of the web page by indicator type; hashes of
# every length share the ``file`` type.
_API_KINDS = {
    IndicatorType.IPV4: "IPv4",
    IndicatorType.IPV6: "IPv6",
    IndicatorType.DOMAIN: "domain",
    IndicatorType.URL: "url",
}
_WEB_KINDS = {
    IndicatorType.IPV4: "ip",
    IndicatorType.IPV6: "ip",
    IndicatorType.DOMAIN: "domain",
    IndicatorType.URL: "url",
}

_DRIFT_MESSAGE = (
    "source=%(source)s field %(field)s has an unexpected value (%(value).80r); "
    "it is ignored. OTX may have changed its API"
)

Clock = Callable[[], datetime]


class _Pulse(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = ""
    created: datetime | None = None
    modified: datetime | None = None
    tags: tuple[Any, ...] = ()
    malware_families: tuple[Any, ...] = ()
    adversary: str | None = None


class _PulseInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    count: int = Field(ge=0)
    pulses: tuple[Any, ...] = ()


class _General(BaseModel):
    """The ``general`` section, limited to the fields iocscope uses."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    pulse_info: _PulseInfo
    false_positive: tuple[Any, ...] = ()
    validation: tuple[Any, ...] = ()


class OtxSource:
    """Looks indicators up with ``GET /api/v1/indicators/{type}/{value}/general``.

    The key travels only in the ``X-OTX-API-KEY`` header. ``now`` returns the
    current UTC time and exists so that tests can age pulses.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: SecretStr,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = META.timeout,
        threshold: float = FLAG_PULSES,
        key_hint: str = f"check IOCSCOPE_{NAME.upper()}_API_KEY",
        sleep: Sleep = asyncio.sleep,
        now: Clock | None = None,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._threshold = threshold
        self._key_hint = key_hint
        self._sleep = sleep
        self._now = now or (lambda: datetime.now(UTC))

    @property
    def meta(self) -> SourceMeta:
        return META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Fetch the pulses about one indicator; one OTX does not know gives found False."""
        status, payload = await request_json(
            self._http,
            NAME,
            "GET",
            f"{self._base_url}/api/v1/indicators/{indicator_path(indicator)}/general",
            headers={
                "X-OTX-API-KEY": self._api_key.get_secret_value(),
                "Accept": "application/json",
            },
            timeout=self._timeout,
            # The engine bounds the whole lookup by the same timeout, so
            # retries happen only when they fit inside it.
            deadline=self._timeout,
            sleep=self._sleep,
            expect=(200, 400, 404),
            key_hint=self._key_hint,
        )
        if status == 404:
            return _not_found(payload)
        if status == 400:
            detail = error_detail(payload) or "no detail given"
            message = f"rejected {indicator.value} as invalid input (status 400: {detail})"
            raise BadResponseError(NAME, message)
        general = parse_response(NAME, _General, payload)
        return _result(indicator, general, payload, self._threshold, self._now())


def create(deps: SourceDeps) -> Source:
    """Build the source from the settings; raise ``SourceUnavailableError`` without a key."""
    settings = deps.settings.source(NAME)
    key = resolve_api_key(NAME, settings)
    if key is None:
        raise SourceUnavailableError(
            f"AlienVault OTX needs an API key: set {key_env(NAME, settings)} "
            f"or sources.{NAME}.api_key_file"
        )
    return OtxSource(
        deps.http,
        key,
        base_url=settings.base_url or DEFAULT_BASE_URL,
        timeout=settings.timeout or META.timeout,
        key_hint=key_hint(NAME, settings),
    )


def indicator_path(indicator: Indicator) -> str:
    """Return ``{type}/{value}`` for the indicator endpoints.

    A URL is percent-encoded whole (``/``, ``?`` and ``#`` included) so that
    it stays one path segment.
    """
    return f"{_API_KINDS.get(indicator.type, 'file')}/{_segment(indicator)}"


def pulse_weight(modified: datetime | None, now: datetime) -> float:
    """Return how much one pulse counts, from the age of its last modification.

    A pulse modified in the last ``FRESH_DAYS`` (365) days counts 1, one
    modified up to ``STALE_DAYS`` (730) days ago counts ``STALE_WEIGHT`` (0.5),
    and an older one counts 0. A pulse without a date counts ``UNLISTED_WEIGHT``.
    """
    if modified is None:
        return UNLISTED_WEIGHT
    age = now - modified
    if age <= timedelta(days=FRESH_DAYS):
        return 1.0
    if age <= timedelta(days=STALE_DAYS):
        return STALE_WEIGHT
    return 0.0


def _not_found(payload: Any) -> SourceResult:
    detail = error_detail(payload)
    # Any other 404 (a wrong base_url, a retired endpoint) is an error.
    if detail != NOT_FOUND_DETAIL:
        raise BadResponseError(NAME, f"unexpected response (status 404: {detail or 'no detail'})")
    return SourceResult(source=NAME, status=Status.OK, summary="unknown to OTX", raw=payload)


def _pulses(general: _General) -> list[_Pulse]:
    pulses = []
    for item in general.pulse_info.pulses:
        try:
            pulses.append(_Pulse.model_validate(item))
        except ValidationError:
            warn_drift(log, NAME, "pulse_info.pulses", item, _DRIFT_MESSAGE)
    return pulses


def _as_utc(moment: datetime | None) -> datetime | None:
    # OTX writes pulse dates in UTC without an offset.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _result(
    indicator: Indicator, general: _General, payload: Any, threshold: float, now: datetime
) -> SourceResult:
    pulses = _pulses(general)
    count = general.pulse_info.count
    weights = [pulse_weight(_as_utc(pulse.modified or pulse.created), now) for pulse in pulses]
    # A long pulse list is cut short; the pulses left out have unknown dates.
    weighted = sum(weights) + max(count - len(pulses), 0) * UNLISTED_WEIGHT
    live = [pulse for pulse, weight in zip(pulses, weights, strict=True) if weight > 0]
    benign = _benign_hint(general)
    flagged = weighted >= threshold
    created = [moment for pulse in pulses if (moment := _as_utc(pulse.created))]
    modified = [moment for pulse in pulses if (moment := _as_utc(pulse.modified or pulse.created))]
    return SourceResult(
        source=NAME,
        status=Status.OK,
        # Being in a few old pulses is no evidence that an indicator is clean,
        # and scoring reads "found but not flagged" as a clean answer. So only
        # a flag or a benign hint counts as found.
        found=flagged or benign,
        flagged=flagged,
        benign=benign,
        confidence=min(100, round(CONFIDENCE_PER_PULSE * weighted)),
        categories=_families(live),
        tags=_tags(live),
        first_seen=min(created, default=None),
        last_seen=max(modified, default=None),
        reference=f"{WEB_URL}/{_web_path(indicator)}",
        summary=_summary(count, weighted, benign),
        context={"pulse_count": count, "weighted_pulses": round(weighted, 2)},
        raw=payload,
    )


def _web_path(indicator: Indicator) -> str:
    return f"{_WEB_KINDS.get(indicator.type, 'file')}/{_segment(indicator)}"


def _segment(indicator: Indicator) -> str:
    if indicator.type is IndicatorType.URL:
        return quote(indicator.value, safe="")
    return indicator.value


def _benign_hint(general: _General) -> bool:
    # OTX lists accepted false-positive reports and allowlist validations
    # (for example a "whitelist" source) for indicators it considers benign.
    if general.false_positive:
        return True
    for entry in general.validation:
        if not isinstance(entry, dict):
            warn_drift(log, NAME, "validation", entry, _DRIFT_MESSAGE)
            continue
        if entry.get("source") == "whitelist":
            return True
    return False


def _families(pulses: list[_Pulse]) -> tuple[str, ...]:
    names: dict[str, str] = {}
    for pulse in pulses:
        for family in pulse.malware_families:
            name = family.get("display_name") if isinstance(family, dict) else family
            if isinstance(name, str) and name.strip():
                names.setdefault(name.strip().lower(), name.strip())
        if pulse.adversary:
            names.setdefault(pulse.adversary.strip().lower(), pulse.adversary.strip())
    return tuple(names[key] for key in sorted(names))


def _tags(pulses: list[_Pulse]) -> tuple[str, ...]:
    counts: dict[str, int] = {}
    for pulse in pulses:
        for tag in {str(tag).strip().lower() for tag in pulse.tags if str(tag).strip()}:
            counts[tag] = counts.get(tag, 0) + 1
    # The tags most pulses share come first; ties in alphabetical order.
    ranked = sorted(counts, key=lambda tag: (-counts[tag], tag))
    return tuple(ranked[:MAX_TAGS])


def _summary(count: int, weighted: float, benign: bool) -> str:
    if count == 0:
        parts = ["in no pulse"]
    else:
        pulses = "1 pulse" if count == 1 else f"{count} pulses"
        parts = [f"in {pulses}, which count {weighted:g} after weighting by age"]
    if benign:
        parts.append("marked as a false positive or allowlisted by OTX")
    return "; ".join(parts)
