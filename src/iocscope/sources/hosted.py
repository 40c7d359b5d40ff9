"""Clients for hosted enrichment APIs, so that one iocscope can query another or a hosted service.

Such a service has already combined many providers into one verdict and score,
and this module turns that response into one record. Two request shapes are in
use, and each is a source of its own with its own settings and key:

``hosted_lookup``
    ``POST {base_url}/api/v1/enrichment/lookup`` with ``Authorization: Bearer``
    and ``{"indicators": [{"type", "value"}]}`` (a batch; iocscope sends one
    indicator per lookup). The response is
    ``{"data": {"results": [{"indicator", "verdict", "score", "providers"}]}, "meta"}``.
    This is the shape of the DFIR Platform (https://platform.dfir-lab.ch/docs),
    which also returns 402 when the account's credits are spent.
``hosted_enrich``
    ``POST {base_url}/v1/ioc/enrich`` with ``X-API-Key`` and ``{"type", "value"}``,
    which returns ``{"risk_score", "verdict", "sources_queried", "sources_flagged"}``.
    iocscope's own REST API is planned to serve this shape. The type is sent
    with iocscope's names (``ipv4``, ``sha256``...).
    NOTE: a service of this shape that names types otherwise (``ip``, ``hash``)
    rejects them with 400 or 422; only iocscope's names are implemented.

A ``malicious`` or ``suspicious`` verdict flags the indicator with the score as
confidence. ``benign`` is a benign hint, ``clean`` (or ``harmless``) a clean
answer, and ``unknown`` means the service has no data on it. Another verdict is
logged once as schema drift and judged from the score with the DFIR Platform's
published bands (70 and up malicious, 30 and up suspicious).

A hosted service receives every indicator sent to it like any third party; the
engine's scope rules decide what may leave the host.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from iocscope.config import resolve_api_key
from iocscope.errors import BadResponseError, QuotaExceededError, SourceUnavailableError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.drift import parse_response, warn_drift
from iocscope.sources.http import Sleep, error_detail, key_env, key_hint, request_json

log = logging.getLogger(__name__)

LOOKUP_NAME = "hosted_lookup"
ENRICH_NAME = "hosted_enrich"
LOOKUP_PATH = "/api/v1/enrichment/lookup"
ENRICH_PATH = "/v1/ioc/enrich"
MALICIOUS_SCORE = 70  # score bands of the DFIR Platform, used when a verdict is not understood
SUSPICIOUS_SCORE = 30
FLAG_VERDICTS = frozenset({"malicious", "suspicious"})
CLEAN_VERDICTS = frozenset({"clean", "harmless"})
# Type names of the batch lookup shape; it takes IPv4 addresses and these hashes only.
LOOKUP_TYPES = MappingProxyType(
    {
        IndicatorType.IPV4: "ip",
        IndicatorType.DOMAIN: "domain",
        IndicatorType.URL: "url",
        IndicatorType.MD5: "hash",
        IndicatorType.SHA1: "hash",
        IndicatorType.SHA256: "hash",
        IndicatorType.EMAIL: "email",
    }
)

LOOKUP_META = SourceMeta(
    name=LOOKUP_NAME,
    title="Hosted enrichment (batch lookup API)",
    kind=SourceKind.API,
    types=frozenset(LOOKUP_TYPES),
    needs_key=True,
    # An aggregate of providers that iocscope may also ask itself, so its flag
    # alone stays below the strong weight and cannot be double-counted into
    # "malicious".
    weight=0.5,
    # The DFIR Platform allows up to 60 s per lookup; most responses come much sooner.
    timeout=20.0,
    # DFIR Platform free plan (https://platform.dfir-lab.ch/docs/rate-limits):
    # 5 requests a minute and 100 a day.
    # NOTE: its 50 monthly credits at 3 per indicator run out after about 16
    # lookups; a 402 response then raises QuotaExceededError until they renew.
    rate_per_minute=5.0,
    daily_budget=100,
    reference="https://platform.dfir-lab.ch/docs/enrichment/lookup",
    licence="the hosted service's terms (DFIR Platform: https://platform.dfir-lab.ch/terms)",
)

ENRICH_META = SourceMeta(
    name=ENRICH_NAME,
    title="Hosted enrichment (/v1/ioc/enrich API)",
    kind=SourceKind.API,
    types=frozenset(IndicatorType),
    needs_key=True,
    weight=0.5,
    # The remote service queries its own sources before it responds.
    timeout=20.0,
    # The limits are the remote service's own; set sources.hosted_enrich.rate_per_minute.
    rate_per_minute=None,
    # No public address: the service is whatever base_url names.
    reference="",
    licence="the terms of the hosted service",
)

_DRIFT_MESSAGE = (
    "source=%(source)s field=%(field)s has an unexpected value %(value).80r; it is ignored "
    "(the hosted API may have changed)"
)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class _LookupResult(_Model):
    indicator: Any = None  # {"type", "value"} in the DFIR Platform, a plain value elsewhere
    verdict: str = "unknown"
    score: Any = None  # 0-100; read by _number, which tolerates drift
    providers: Any = None  # {"name": {"verdict", "score"}} or a list of objects with a name


class _LookupData(_Model):
    results: tuple[_LookupResult, ...]


class _LookupAnswer(_Model):
    data: _LookupData
    meta: dict[str, Any] | None = None


class _EnrichAnswer(_Model):
    verdict: str = "unknown"
    risk_score: Any = None  # 0-100; read by _number, which tolerates drift
    sources_queried: int | None = None
    sources_flagged: int | None = None


@dataclass(frozen=True, slots=True)
class _Judgement:
    found: bool
    flagged: bool
    benign: bool
    confidence: int


class HostedLookupSource:
    """Asks a hosted batch lookup API (``POST /api/v1/enrichment/lookup``) about one indicator.

    The key travels only in the ``Authorization: Bearer`` header.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: SecretStr,
        *,
        base_url: str,
        timeout: float = LOOKUP_META.timeout,
        key_hint: str = f"check IOCSCOPE_{LOOKUP_NAME.upper()}_API_KEY",
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._url = base_url.rstrip("/") + LOOKUP_PATH
        self._timeout = timeout
        self._key_hint = key_hint
        self._sleep = sleep

    @property
    def meta(self) -> SourceMeta:
        return LOOKUP_META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Enrich one indicator; raise a ``SourceError`` when no usable response comes back."""
        kind = LOOKUP_TYPES.get(indicator.type)
        if kind is None:
            raise ValueError(f"{LOOKUP_NAME} cannot look up indicators of type {indicator.type}")
        status, payload = await request_json(
            self._http,
            LOOKUP_NAME,
            "POST",
            self._url,
            headers={
                "Authorization": f"Bearer {self._api_key.get_secret_value()}",
                "Accept": "application/json",
            },
            json={"indicators": [{"type": kind, "value": indicator.value}]},
            timeout=self._timeout,
            # The engine bounds the whole lookup by the same timeout, so
            # retries happen only when they fit inside it.
            deadline=self._timeout,
            sleep=self._sleep,
            expect=(200, 400, 402),
            key_hint=self._key_hint,
        )
        _raise_for_status(LOOKUP_NAME, status, payload, indicator.value)
        answer = parse_response(LOOKUP_NAME, _LookupAnswer, payload)
        found = _pick(answer.data.results, indicator.value)
        return _lookup_result(found, answer.meta or {}, payload)


class HostedEnrichSource:
    """Asks a hosted ``POST /v1/ioc/enrich`` API, such as another iocscope, about one indicator.

    The key travels only in the ``X-API-Key`` header.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: SecretStr,
        *,
        base_url: str,
        timeout: float = ENRICH_META.timeout,
        key_hint: str = f"check IOCSCOPE_{ENRICH_NAME.upper()}_API_KEY",
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._url = base_url.rstrip("/") + ENRICH_PATH
        self._timeout = timeout
        self._key_hint = key_hint
        self._sleep = sleep

    @property
    def meta(self) -> SourceMeta:
        return ENRICH_META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Enrich one indicator; raise a ``SourceError`` when no usable response comes back."""
        status, payload = await request_json(
            self._http,
            ENRICH_NAME,
            "POST",
            self._url,
            headers={"X-API-Key": self._api_key.get_secret_value(), "Accept": "application/json"},
            json={"type": indicator.type.value, "value": indicator.value},
            timeout=self._timeout,
            # The engine bounds the whole lookup by the same timeout, so
            # retries happen only when they fit inside it.
            deadline=self._timeout,
            sleep=self._sleep,
            expect=(200, 400, 402, 422),
            key_hint=self._key_hint,
        )
        _raise_for_status(ENRICH_NAME, status, payload, indicator.value)
        answer = parse_response(ENRICH_NAME, _EnrichAnswer, payload)
        return _enrich_result(answer, payload)


def create_lookup(deps: SourceDeps) -> Source:
    """Build ``hosted_lookup``; raise ``SourceUnavailableError`` without a base URL or a key."""
    base_url, key, hint = _configured(deps, LOOKUP_NAME)
    settings = deps.settings.source(LOOKUP_NAME)
    timeout = settings.timeout or LOOKUP_META.timeout
    return HostedLookupSource(deps.http, key, base_url=base_url, timeout=timeout, key_hint=hint)


def create_enrich(deps: SourceDeps) -> Source:
    """Build ``hosted_enrich``; raise ``SourceUnavailableError`` without a base URL or a key."""
    base_url, key, hint = _configured(deps, ENRICH_NAME)
    settings = deps.settings.source(ENRICH_NAME)
    timeout = settings.timeout or ENRICH_META.timeout
    return HostedEnrichSource(deps.http, key, base_url=base_url, timeout=timeout, key_hint=hint)


# Both sources of this module, for the registry.
ENTRIES: tuple[tuple[SourceMeta, Callable[[SourceDeps], Source]], ...] = (
    (LOOKUP_META, create_lookup),
    (ENRICH_META, create_enrich),
)


def _configured(deps: SourceDeps, name: str) -> tuple[str, SecretStr, str]:
    settings = deps.settings.source(name)
    if not settings.base_url:
        raise SourceUnavailableError(
            f"{name} needs the address of the hosted service: set sources.{name}.base_url"
        )
    key = resolve_api_key(name, settings)
    if key is None:
        raise SourceUnavailableError(
            f"{name} needs an API key: set {key_env(name, settings)} or sources.{name}.api_key_file"
        )
    if settings.base_url.startswith("http://"):
        log.warning("source=%s base_url uses http: the API key travels unencrypted", name)
    return settings.base_url, key, key_hint(name, settings)


def _raise_for_status(source: str, status: int, payload: Any, value: str) -> None:
    if status == 200:
        return
    detail = error_detail(payload) or "no detail given"
    if status == 402:
        raise QuotaExceededError(
            source, f"the account's credits are spent (status 402: {detail}); add credits"
        )
    raise BadResponseError(source, f"rejected {value} as invalid input (status {status}: {detail})")


def _pick(results: tuple[_LookupResult, ...], value: str) -> _LookupResult:
    for result in results:
        named = result.indicator
        if isinstance(named, dict):
            named = named.get("value")
        if isinstance(named, str) and named.lower() == value.lower():
            return result
    if len(results) == 1:
        # The service may normalise the value (for example a URL); one result is ours.
        return results[0]
    raise BadResponseError(LOOKUP_NAME, f"returned no result for {value}")


def _number(source: str, field: str, value: Any) -> int | None:
    """Read a 0-100 score; anything else is logged as drift and read as no score."""
    if value is None:
        return None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if 0 <= number <= 100:
            return round(number)
    warn_drift(log, source, field, value, _DRIFT_MESSAGE)
    return None


def _judge(source: str, verdict: str, score: int | None) -> _Judgement:
    word = verdict.strip().lower()
    if word not in FLAG_VERDICTS | CLEAN_VERDICTS | {"benign", "unknown"}:
        warn_drift(log, source, "verdict", verdict, _DRIFT_MESSAGE)
        word = _band(score)
    if word in FLAG_VERDICTS:
        # A stated 0 would read as "confidence not stated" in scoring, which counts as 100.
        return _Judgement(True, True, False, max(score or 0, 1))
    if word == "benign":
        return _Judgement(True, False, True, 0)
    return _Judgement(word in CLEAN_VERDICTS, False, False, 0)


def _band(score: int | None) -> str:
    if score is None:
        return "unknown"
    if score >= MALICIOUS_SCORE:
        return "malicious"
    return "suspicious" if score >= SUSPICIOUS_SCORE else "clean"


def _providers(raw: Any) -> dict[str, str]:
    """Return each provider's verdict from a mapping by name or a list of named objects."""
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list):
        items = [
            (item.get("name") or item.get("provider") or item.get("source"), item)
            for item in raw
            if isinstance(item, dict)
        ]
    else:
        return {}
    verdicts = {}
    for name, answer in items:
        verdict = answer.get("verdict") if isinstance(answer, dict) else None
        if isinstance(name, str) and isinstance(verdict, str):
            verdicts[name] = verdict
    return verdicts


def _lookup_result(found: _LookupResult, meta: dict[str, Any], payload: Any) -> SourceResult:
    score = _number(LOOKUP_NAME, "score", found.score)
    judgement = _judge(LOOKUP_NAME, found.verdict, score)
    providers = _providers(found.providers)
    flagging = sorted(
        name for name, verdict in providers.items() if verdict.lower() in FLAG_VERDICTS
    )
    summary = _summary(found.verdict, score, len(flagging), len(providers) or None)
    if flagging:
        summary += f" ({', '.join(flagging)})"
    context = {
        "verdict": found.verdict,
        "score": score,
        "providers": providers,
        "request_id": meta.get("request_id"),
        "credits_remaining": meta.get("credits_remaining"),
    }
    return _record(LOOKUP_NAME, judgement, summary, context, payload)


def _enrich_result(answer: _EnrichAnswer, payload: Any) -> SourceResult:
    score = _number(ENRICH_NAME, "risk_score", answer.risk_score)
    judgement = _judge(ENRICH_NAME, answer.verdict, score)
    summary = _summary(answer.verdict, score, answer.sources_flagged, answer.sources_queried)
    context = {
        "verdict": answer.verdict,
        "risk_score": score,
        "sources_queried": answer.sources_queried,
        "sources_flagged": answer.sources_flagged,
    }
    return _record(ENRICH_NAME, judgement, summary, context, payload)


def _summary(verdict: str, score: int | None, flagged: int | None, queried: int | None) -> str:
    text = verdict if score is None else f"{verdict}, score {score}"
    if queried is not None:
        text += f"; flagged by {flagged or 0} of {queried} sources"
    return text


def _record(
    source: str, judgement: _Judgement, summary: str, context: dict[str, Any], payload: Any
) -> SourceResult:
    return SourceResult(
        source=source,
        status=Status.OK,
        found=judgement.found,
        flagged=judgement.flagged,
        benign=judgement.benign,
        confidence=judgement.confidence,
        summary=summary,
        context={key: value for key, value in context.items() if value not in (None, {})},
        raw=payload,
    )
