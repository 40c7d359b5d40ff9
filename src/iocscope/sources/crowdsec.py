"""CrowdSec CTI (``smoke`` API v2): reputation of IP addresses seen by CrowdSec users.

CrowdSec gives each address a ``reputation``: ``malicious`` and
``suspicious`` flag it, ``safe`` (and ``benign``) are benign hints, and so is
any ``false_positives`` classification, which names infrastructure such as
search engine crawlers or CDNs that trips detections without being hostile.
``known`` and ``unknown`` carry no judgement. The behaviours and the attack
scenarios become the categories and tags of the result.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from iocscope.config import resolve_api_key
from iocscope.errors import BadResponseError, SourceUnavailableError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.drift import parse_response, warn_drift
from iocscope.sources.http import Sleep, error_detail, key_env, key_hint, request_json

log = logging.getLogger(__name__)

NAME = "crowdsec"
DEFAULT_BASE_URL = "https://cti.api.crowdsec.net"
SMOKE_PATH = "/v2/smoke/"
WEB_URL = "https://app.crowdsec.net/cti/"
NOT_FOUND_DETAIL = "IP address information not found"  # the 404 body of an unknown address

# Confidence of a flag by reputation. ``suspicious`` means many reports but
# not aggressive enough for ``malicious``, in CrowdSec's own words.
FLAG_CONFIDENCE = MappingProxyType({"malicious": 90, "suspicious": 50})
BENIGN_REPUTATIONS = frozenset({"safe", "benign"})
REPUTATIONS = frozenset({*FLAG_CONFIDENCE, *BENIGN_REPUTATIONS, "known", "unknown"})

META = SourceMeta(
    name=NAME,
    title="CrowdSec CTI",
    kind=SourceKind.API,
    types=frozenset({IndicatorType.IPV4, IndicatorType.IPV6}),
    needs_key=True,
    weight=0.6,
    timeout=5.0,
    # Community CTI key: 50 lookups a day, per CrowdSec's "CTI API Keys"
    # documentation page.
    daily_budget=50,
    reference="https://www.crowdsec.net/cti",
    licence="CrowdSec CTI terms of service; the Community key is for non-commercial use",
)

_DRIFT_MESSAGE = (
    "source=%(source)s field %(field)s has an unexpected value (%(value).80r); "
    "it is ignored. CrowdSec may have changed its API"
)


class _Named(BaseModel):
    """A behaviour, classification or scenario: a machine name and a label."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    label: str | None = None


class _Classifications(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    false_positives: tuple[Any, ...] = ()
    classifications: tuple[Any, ...] = ()


class _History(BaseModel):
    """First and last report; kept as text so that a changed format only loses the date."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    first_seen: Any = None
    last_seen: Any = None


class _Smoke(BaseModel):
    """A ``smoke`` response, limited to the fields iocscope uses."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ip: str
    reputation: str | None = None
    behaviors: tuple[Any, ...] = ()
    attack_details: tuple[Any, ...] = ()
    classifications: _Classifications = _Classifications()
    history: _History = _History()
    scores: dict[str, Any] = {}
    as_name: str | None = None
    as_num: int | None = None
    location: dict[str, Any] = {}
    reverse_dns: str | None = None
    background_noise: str | None = None
    cves: tuple[Any, ...] = ()


class CrowdSecSource:
    """Looks IP addresses up with ``GET /v2/smoke/{ip}``; the key travels in ``x-api-key``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: SecretStr,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = META.timeout,
        key_hint: str = f"check IOCSCOPE_{NAME.upper()}_API_KEY",
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._url = base_url.rstrip("/") + SMOKE_PATH
        self._timeout = timeout
        self._key_hint = key_hint
        self._sleep = sleep

    @property
    def meta(self) -> SourceMeta:
        return META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Look one address up; an address CrowdSec has no data on gives found False."""
        status, payload = await request_json(
            self._http,
            NAME,
            "GET",
            self._url + indicator.value,
            headers={"x-api-key": self._api_key.get_secret_value(), "Accept": "application/json"},
            timeout=self._timeout,
            # The engine bounds the whole lookup by the same timeout, so
            # retries happen only when they fit inside it.
            deadline=self._timeout,
            sleep=self._sleep,
            expect=(200, 404),
            key_hint=self._key_hint,
            is_quota=_quota_spent,
        )
        if status == 404:
            return _not_found(payload)
        return _result(indicator, parse_response(NAME, _Smoke, payload), payload)


def create(deps: SourceDeps) -> Source:
    """Build the source from the settings; raise ``SourceUnavailableError`` without a key."""
    settings = deps.settings.source(NAME)
    key = resolve_api_key(NAME, settings)
    if key is None:
        raise SourceUnavailableError(
            f"CrowdSec CTI needs an API key: set {key_env(NAME, settings)} "
            f"or sources.{NAME}.api_key_file"
        )
    return CrowdSecSource(
        deps.http,
        key,
        base_url=settings.base_url or DEFAULT_BASE_URL,
        timeout=settings.timeout or META.timeout,
        key_hint=key_hint(NAME, settings),
    )


def _quota_spent(headers: httpx.Headers) -> bool:
    # CrowdSec sells CTI access as a number of lookups per day, and its own
    # Go client (pkg/cticlient) reads every 429 as "request quota exceeded".
    # A retry would only spend the attempt, so every 429 is a spent quota.
    return True


def _not_found(payload: Any) -> SourceResult:
    detail = error_detail(payload)
    # Any other 404 (a wrong base_url, a retired endpoint) is an error.
    if detail != NOT_FOUND_DETAIL:
        raise BadResponseError(NAME, f"unexpected response (status 404: {detail or 'no detail'})")
    return SourceResult(source=NAME, status=Status.OK, summary="unknown to CrowdSec", raw=payload)


def _reputation(smoke: _Smoke) -> str:
    value = (smoke.reputation or "").lower()
    if value in REPUTATIONS:
        return value
    # Older responses have no reputation field, and without it there is no judgement.
    warn_drift(log, NAME, "reputation", smoke.reputation, _DRIFT_MESSAGE)
    return "unknown"


def _moment(field: str, value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        warn_drift(log, NAME, field, value, _DRIFT_MESSAGE)
        return None
    # CrowdSec writes UTC offsets; a bare time is read as UTC as well.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _names(field: str, items: tuple[Any, ...]) -> list[_Named]:
    named = []
    for item in items:
        try:
            named.append(_Named.model_validate(item))
        except ValidationError:
            warn_drift(log, NAME, field, item, _DRIFT_MESSAGE)
    return named


def _result(indicator: Indicator, smoke: _Smoke, payload: Any) -> SourceResult:
    reputation = _reputation(smoke)
    false_positives = _names(
        "classifications.false_positives", smoke.classifications.false_positives
    )
    classes = _names("classifications.classifications", smoke.classifications.classifications)
    behaviors = _names("behaviors", smoke.behaviors)
    scenarios = _names("attack_details", smoke.attack_details)
    flagged = reputation in FLAG_CONFIDENCE
    benign = reputation in BENIGN_REPUTATIONS or bool(false_positives)
    return SourceResult(
        source=NAME,
        status=Status.OK,
        # ``known`` and ``unknown`` carry no judgement; scoring must not read
        # them as a clean answer.
        found=flagged or benign,
        flagged=flagged,
        benign=benign,
        confidence=FLAG_CONFIDENCE.get(reputation, 0),
        categories=tuple(item.label or item.name for item in behaviors),
        tags=tuple(item.name for item in (*classes, *false_positives)),
        first_seen=_moment("history.first_seen", smoke.history.first_seen),
        last_seen=_moment("history.last_seen", smoke.history.last_seen),
        reference=WEB_URL + indicator.value,
        summary=_summary(reputation, behaviors, false_positives),
        context=_context(smoke, reputation, scenarios),
        raw=payload,
    )


def _summary(reputation: str, behaviors: list[_Named], false_positives: list[_Named]) -> str:
    parts = [f"reputation {reputation}"]
    if behaviors:
        parts.append("reported for " + ", ".join(item.label or item.name for item in behaviors))
    if false_positives:
        labels = ", ".join(item.label or item.name for item in false_positives)
        parts.append(f"known false positive: {labels}")
    return "; ".join(parts)


def _context(smoke: _Smoke, reputation: str, scenarios: list[_Named]) -> dict[str, Any]:
    overall = smoke.scores.get("overall")
    context: dict[str, Any] = {
        "reputation": reputation,
        "as_name": smoke.as_name,
        "as_num": smoke.as_num,
        "country_iso": smoke.location.get("country"),
        "city": smoke.location.get("city"),
        "reverse_dns": smoke.reverse_dns,
        "background_noise": smoke.background_noise,
        "scores": overall if isinstance(overall, dict) else None,
        "scenarios": [item.name for item in scenarios],
        "cves": [cve for cve in smoke.cves if isinstance(cve, str)],
    }
    return {key: value for key, value in context.items() if value not in (None, "", [])}
