"""GreyNoise Community API (v3): is an IPv4 address an Internet scanner or a known service?

GreyNoise classifies addresses that scan the Internet as ``malicious``,
``benign`` or ``unknown``, and lists common business services (CDNs, public
DNS resolvers, SaaS) in its RIOT data set. A ``malicious`` classification
flags the address. RIOT membership or a ``benign`` classification is a benign
hint, so that alerts about a public resolver or a search engine crawler are
not escalated. The Community API works without a key at a lower limit; a key,
when configured, travels in the ``key`` header.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from iocscope.config import resolve_api_key
from iocscope.errors import BadResponseError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.drift import parse_response, warn_drift
from iocscope.sources.http import Sleep, error_detail, key_hint, request_json

log = logging.getLogger(__name__)

NAME = "greynoise"
DEFAULT_BASE_URL = "https://api.greynoise.io"
COMMUNITY_PATH = "/v3/community/"
VIZ_URL = "https://viz.greynoise.io/ip/"
NOT_OBSERVED = "IP not observed"  # the 404 message of an address GreyNoise has not seen
FLAG_CONFIDENCE = 75
CLASSIFICATIONS = frozenset({"malicious", "benign", "unknown"})

META = SourceMeta(
    name=NAME,
    title="GreyNoise Community",
    kind=SourceKind.API,
    types=frozenset({IndicatorType.IPV4}),
    needs_key=False,
    weight=0.5,
    timeout=5.0,
    # NOTE: GreyNoise publishes the Community limit only as "Searches" on the
    # account page; its rate-limit description (captured by api-evangelist,
    # 2026) gives 50 searches a week for a Community account. 7 a day keeps a
    # week within it. Raise sources.greynoise.daily_budget on a paid plan.
    daily_budget=7,
    reference="https://www.greynoise.io",
    licence="GreyNoise Community terms; non-commercial use",
)

_CLASSIFICATION_DRIFT = (
    "source=%(source)s unknown classification %(value)r is read as 'unknown'; "
    "GreyNoise may have changed its API"
)
_DATE_DRIFT = "source=%(source)s %(field)s %(value).40r is not a YYYY-MM-DD date; ignored"


class _Community(BaseModel):
    """A Community API response, limited to the fields iocscope uses."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ip: str
    noise: bool
    riot: bool
    classification: str | None = None
    name: str | None = None
    link: str | None = None
    last_seen: str | None = None
    message: str | None = None


class GreyNoiseSource:
    """Looks IPv4 addresses up with ``GET /v3/community/{ip}``."""

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
        self._url = base_url.rstrip("/") + COMMUNITY_PATH
        self._timeout = timeout
        # Without a key a 401 or 403 is "access denied", not "key rejected".
        self._key_hint = key_hint if api_key is not None else None
        self._sleep = sleep

    @property
    def meta(self) -> SourceMeta:
        return META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Look one IPv4 address up; an address GreyNoise has not observed gives found False."""
        headers = {"Accept": "application/json"}
        if self._api_key is not None:
            headers["key"] = self._api_key.get_secret_value()
        status, payload = await request_json(
            self._http,
            NAME,
            "GET",
            self._url + indicator.value,
            headers=headers,
            timeout=self._timeout,
            # The engine bounds the whole lookup by the same timeout, so
            # retries happen only when they fit inside it.
            deadline=self._timeout,
            sleep=self._sleep,
            expect=(200, 400, 404),
            key_hint=self._key_hint,
        )
        if status == 404:
            return _not_observed(payload)
        if status == 400:
            detail = error_detail(payload) or "no detail given"
            message = f"rejected {indicator.value} as invalid input (status 400: {detail})"
            raise BadResponseError(NAME, message)
        return _result(indicator, parse_response(NAME, _Community, payload), payload)


def create(deps: SourceDeps) -> Source:
    """Build the source; a key is optional and raises the Community limit."""
    settings = deps.settings.source(NAME)
    key = resolve_api_key(NAME, settings)
    return GreyNoiseSource(
        deps.http,
        key,
        base_url=settings.base_url or DEFAULT_BASE_URL,
        timeout=settings.timeout or META.timeout,
        key_hint=key_hint(NAME, settings),
    )


def _not_observed(payload: Any) -> SourceResult:
    detail = error_detail(payload)
    # Any other 404 (a wrong base_url, a retired endpoint) is an error.
    if detail != NOT_OBSERVED:
        raise BadResponseError(NAME, f"unexpected response (status 404: {detail or 'no detail'})")
    return SourceResult(
        source=NAME, status=Status.OK, summary="not observed by GreyNoise", raw=payload
    )


def _classification(answer: _Community) -> str:
    value = (answer.classification or "unknown").lower()
    if value in CLASSIFICATIONS:
        return value
    # Keyed by the value, so that each new classification is logged once.
    warn_drift(log, NAME, f"classification={value}", value, _CLASSIFICATION_DRIFT)
    return "unknown"


def _result(indicator: Indicator, answer: _Community, payload: Any) -> SourceResult:
    classification = _classification(answer)
    flagged = classification == "malicious"
    tags = tuple(name for name, on in (("noise", answer.noise), ("riot", answer.riot)) if on)
    return SourceResult(
        source=NAME,
        status=Status.OK,
        found=True,
        flagged=flagged,
        benign=answer.riot or classification == "benign",
        confidence=FLAG_CONFIDENCE if flagged else 0,
        categories=("malicious scanner",) if flagged else (),
        tags=tags,
        last_seen=_date(answer.last_seen),
        reference=_reference(indicator, answer),
        summary=_summary(answer, classification),
        context=_context(answer, classification),
        raw=payload,
    )


def _context(answer: _Community, classification: str) -> dict[str, Any]:
    context: dict[str, Any] = {
        "classification": classification,
        "noise": answer.noise,
        "riot": answer.riot,
    }
    if answer.name and answer.name.lower() != "unknown":
        context["name"] = answer.name
    return context


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        warn_drift(log, NAME, "last_seen", value, _DATE_DRIFT)
        return None
    return day.replace(tzinfo=UTC)


def _reference(indicator: Indicator, answer: _Community) -> str:
    # The link GreyNoise returns points at its visualiser; anything else
    # (another host, plain http) is replaced by the canonical address.
    if answer.link and answer.link.startswith("https://viz.greynoise.io/"):
        return answer.link
    return VIZ_URL + indicator.value


def _summary(answer: _Community, classification: str) -> str:
    name = answer.name if answer.name and answer.name.lower() != "unknown" else ""
    parts = []
    if answer.riot:
        parts.append(f"RIOT: known business service{f' ({name})' if name else ''}")
    if answer.noise:
        parts.append(f"Internet scanner, classified {classification}")
    else:
        parts.append(f"classified {classification}")
    if name and not answer.riot:
        parts.append(f"actor {name}")
    if answer.last_seen:
        parts.append(f"last seen {answer.last_seen}")
    return "; ".join(parts)
