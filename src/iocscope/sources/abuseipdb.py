"""AbuseIPDB: crowd-sourced abuse reports about IP addresses (API v2 ``check``).

The abuse confidence score (0-100) becomes the confidence of the result, and
an address is flagged from ``FLAG_THRESHOLD`` up. A whitelisted address is a
benign hint. Reports and a score alone are a weak signal, so the default
weight keeps AbuseIPDB from making an indicator malicious on its own.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from types import MappingProxyType
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic.alias_generators import to_camel

from iocscope.config import SourceSettings, resolve_api_key
from iocscope.errors import BadResponseError, SourceUnavailableError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.http import Sleep, error_detail, request_json

NAME = "abuseipdb"
DEFAULT_BASE_URL = "https://api.abuseipdb.com"
CHECK_PATH = "/api/v2/check"
MAX_AGE_DAYS = 90
FLAG_THRESHOLD = 50  # abuse confidence score (0-100) from which an address is flagged

META = SourceMeta(
    name=NAME,
    title="AbuseIPDB",
    kind=SourceKind.API,
    types=frozenset({IndicatorType.IPV4, IndicatorType.IPV6}),
    needs_key=True,
    weight=0.5,
    timeout=5.0,
    daily_budget=1000,  # free tier: 1,000 checks a day
    reference="https://www.abuseipdb.com",
    licence="AbuseIPDB terms of service",
)

# Report category ids of AbuseIPDB (https://www.abuseipdb.com/categories).
CATEGORIES = MappingProxyType(
    {
        1: "DNS Compromise",
        2: "DNS Poisoning",
        3: "Fraud Orders",
        4: "DDoS Attack",
        5: "FTP Brute-Force",
        6: "Ping of Death",
        7: "Phishing",
        8: "Fraud VoIP",
        9: "Open Proxy",
        10: "Web Spam",
        11: "Email Spam",
        12: "Blog Spam",
        13: "VPN IP",
        14: "Port Scan",
        15: "Hacking",
        16: "SQL Injection",
        17: "Spoofing",
        18: "Brute-Force",
        19: "Bad Web Bot",
        20: "Exploited Host",
        21: "Web App Attack",
        22: "SSH",
        23: "IoT Targeted",
    }
)


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", alias_generator=to_camel)


class _Report(_Payload):
    categories: tuple[int, ...] = ()


class _Check(_Payload):
    """The ``data`` object of a ``check`` response, limited to the fields iocscope uses."""

    ip_address: str
    abuse_confidence_score: int = Field(ge=0, le=100)
    is_whitelisted: bool | None = None
    country_code: str | None = None
    usage_type: str | None = None
    isp: str | None = None
    domain: str | None = None
    hostnames: tuple[str, ...] = ()
    is_tor: bool = False
    total_reports: int = 0
    num_distinct_users: int = 0
    last_reported_at: datetime | None = None
    reports: tuple[_Report, ...] = ()  # present only when the request sets ``verbose``


class _Answer(_Payload):
    data: _Check


class AbuseIpdbSource:
    """Looks IP addresses up with the AbuseIPDB v2 ``check`` endpoint.

    The key travels only in the ``Key`` header. ``verbose`` requests the
    individual reports, which adds their category names to the result but can
    make a response large (up to 10,000 reports), so it is off by default.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: SecretStr,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = META.timeout,
        threshold: int = FLAG_THRESHOLD,
        verbose: bool = False,
        key_hint: str = f"check IOCSCOPE_{NAME.upper()}_API_KEY",
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._url = base_url.rstrip("/") + CHECK_PATH
        self._timeout = timeout
        self._threshold = threshold
        self._verbose = verbose
        self._key_hint = key_hint
        self._sleep = sleep

    @property
    def meta(self) -> SourceMeta:
        return META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Check one IP address; raise a ``SourceError`` when no usable response comes back."""
        params = {"ipAddress": indicator.value, "maxAgeInDays": str(MAX_AGE_DAYS)}
        if self._verbose:
            params["verbose"] = "true"
        status, payload = await request_json(
            self._http,
            NAME,
            "GET",
            self._url,
            headers={"Key": self._api_key.get_secret_value(), "Accept": "application/json"},
            params=params,
            timeout=self._timeout,
            # The engine bounds the whole lookup by the same timeout, so
            # retries happen only when they fit inside it.
            deadline=self._timeout,
            sleep=self._sleep,
            expect=(200, 422),
            key_hint=self._key_hint,
            is_quota=_daily_limit_reached,
        )
        if status == 422:
            detail = error_detail(payload) or "no detail given"
            message = f"rejected {indicator.value} as invalid input (status 422: {detail})"
            raise BadResponseError(NAME, message)
        return _result(indicator, _parse(payload), payload, self._threshold)


def create(deps: SourceDeps) -> Source:
    """Build the source from the settings; raise ``SourceUnavailableError`` without a key."""
    settings = deps.settings.source(NAME)
    key = resolve_api_key(NAME, settings)
    if key is None:
        raise SourceUnavailableError(
            f"AbuseIPDB needs an API key: set {_key_env(settings)} or sources.{NAME}.api_key_file"
        )
    return AbuseIpdbSource(
        deps.http,
        key,
        base_url=settings.base_url or DEFAULT_BASE_URL,
        timeout=settings.timeout or META.timeout,
        key_hint=_key_hint(settings),
    )


def _key_env(settings: SourceSettings) -> str:
    return settings.api_key_env or f"IOCSCOPE_{NAME.upper()}_API_KEY"


def _key_hint(settings: SourceSettings) -> str:
    if settings.api_key_file is not None:
        return f"check the key in {settings.api_key_file}"
    return f"check {_key_env(settings)}"


def _daily_limit_reached(headers: httpx.Headers) -> bool:
    # AbuseIPDB publishes per-day limits for check, so a 429 with no request
    # remaining means the day's budget is spent. A burst limit leaves some.
    remaining: str | None = headers.get("X-RateLimit-Remaining")
    return remaining == "0"


def _parse(payload: Any) -> _Check:
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        message = f"returned a response in an unexpected format (a JSON {kind}, not an object)"
        raise BadResponseError(NAME, message)
    try:
        return _Answer.model_validate(payload).data
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        message = f"returned a response in an unexpected format ({problems})"
        raise BadResponseError(NAME, message) from exc


def _result(indicator: Indicator, check: _Check, payload: Any, threshold: int) -> SourceResult:
    score = check.abuse_confidence_score
    return SourceResult(
        source=NAME,
        status=Status.OK,
        found=check.total_reports > 0 or bool(check.is_whitelisted),
        flagged=score >= threshold,
        benign=bool(check.is_whitelisted),
        confidence=score,
        categories=_category_names(check.reports),
        tags=("tor",) if check.is_tor else (),
        last_seen=check.last_reported_at,
        reference=f"https://www.abuseipdb.com/check/{indicator.value}",
        summary=_summary(check),
        context=_context(check),
        raw=payload,
    )


def _category_names(reports: tuple[_Report, ...]) -> tuple[str, ...]:
    ids = sorted({category for report in reports for category in report.categories})
    return tuple(CATEGORIES.get(category, f"category {category}") for category in ids)


def _summary(check: _Check) -> str:
    if check.total_reports:
        reports = _count(check.total_reports, "report")
        users = _count(check.num_distinct_users, "user")
        parts = [
            f"abuse confidence {check.abuse_confidence_score}% from {reports} "
            f"by {users} in {MAX_AGE_DAYS} days"
        ]
    else:
        parts = [f"no reports in {MAX_AGE_DAYS} days"]
    if check.last_reported_at is not None:
        parts.append(f"last reported {check.last_reported_at.date().isoformat()}")
    if check.is_whitelisted:
        parts.append("whitelisted by AbuseIPDB")
    if check.is_tor:
        parts.append("Tor exit node")
    return "; ".join(parts)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _context(check: _Check) -> dict[str, Any]:
    context: dict[str, Any] = {
        "country_iso": check.country_code,
        "isp": check.isp,
        "usage_type": check.usage_type,
        "domain": check.domain,
        "hostnames": list(check.hostnames),
        "is_tor": check.is_tor,
        "whitelisted": check.is_whitelisted,
        "total_reports": check.total_reports,
        "distinct_users": check.num_distinct_users,
    }
    return {key: value for key, value in context.items() if value not in (None, "", [])}
