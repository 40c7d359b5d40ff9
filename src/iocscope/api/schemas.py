"""Request and response models of the REST API, which also produce the OpenAPI document.

Requests accept iocscope's indicator types and the generic names that
hosted enrichment APIs use (``ip``, ``hash``, ``hostname``). Response models
describe what the endpoints send: the endpoints build the records with
``enrichment_record`` and serialise them directly, and a test checks that
those records validate against these models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from iocscope.errors import InvalidIndicatorError
from iocscope.indicators.model import HASH_TYPES, Indicator, IndicatorType
from iocscope.indicators.parse import parse_indicator

# A URL longer than this is rejected; browsers and proxies cap URLs near 8 KiB too.
MAX_VALUE_LENGTH = 8192

TypeName = Literal[
    "ipv4",
    "ipv6",
    "domain",
    "url",
    "md5",
    "sha1",
    "sha256",
    "sha512",
    "email",
    "ip",
    "hash",
    "hostname",
]

# Generic type names of hosted APIs: the family a detected type must belong to.
_FAMILIES: dict[str, tuple[frozenset[IndicatorType], str]] = {
    "ip": (frozenset({IndicatorType.IPV4, IndicatorType.IPV6}), "an IP address"),
    "hash": (HASH_TYPES, "an MD5, SHA-1, SHA-256 or SHA-512 hash"),
    "hostname": (frozenset({IndicatorType.DOMAIN}), "a domain name"),
}

IndicatorText = Annotated[str, Field(min_length=1, max_length=MAX_VALUE_LENGTH)]


class IndicatorIn(BaseModel):
    """One indicator to enrich; without ``type`` the type is detected from the value."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: TypeName | None = None
    value: IndicatorText

    @field_validator("type", mode="before")
    @classmethod
    def _lower_type(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    def parse(self) -> Indicator:
        """Parse the value; raises InvalidIndicatorError naming the value and the rule."""
        return parse_typed(self.value, self.type)


def parse_typed(value: str, type_name: str | None) -> Indicator:
    """Parse ``value`` as ``type_name`` (an iocscope type, a generic name, or None)."""
    family = _FAMILIES.get(type_name or "")
    if family is None:
        return parse_indicator(value, IndicatorType(type_name) if type_name else None)
    indicator = parse_indicator(value)
    types, expected = family
    if indicator.type not in types:
        raise InvalidIndicatorError(
            value, f"type {type_name!r} expects {expected}, but the value is {indicator.type}"
        )
    return indicator


class IndicatorList(BaseModel):
    """Several indicators: plain strings (type detected) or ``{type, value}`` objects."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    indicators: list[IndicatorIn | IndicatorText] = Field(min_length=1)


class SourceOut(BaseModel):
    """One source's normalised result; optional fields appear only when set."""

    source: str
    status: Literal["ok", "error", "rate_limited", "skipped"]
    found: bool
    flagged: bool
    benign: bool
    confidence: int = Field(ge=0, le=100)
    summary: str
    categories: list[str] | None = None
    tags: list[str] | None = None
    first_seen: str | None = None
    last_seen: str | None = None
    reference: str | None = None
    error: str | None = None
    retry_after: float | None = None


Verdict = Literal["malicious", "suspicious", "benign", "unknown"]


class EnrichResponse(BaseModel):
    """The enrichment of one indicator, in the shape of hosted enrichment APIs."""

    type: str
    value: str = Field(description="Canonical form used for lookups.")
    display: str = Field(description="Form for people (Unicode domains).")
    original: str = Field(description="The value as received.")
    scope: str
    public: bool
    risk_score: int = Field(ge=0, le=100)
    verdict: Verdict
    reasons: list[str]
    sources_queried: int
    sources_flagged: int
    flagged_by: list[str]
    sources: list[SourceOut]
    context: dict[str, Any]
    cached: list[str] = Field(description="Sources whose result came from the cache.")
    took_ms: float


class ItemError(BaseModel):
    """The reason one indicator of a batch was not enriched."""

    code: str
    message: str


class BatchItemError(BaseModel):
    """A batch entry that could not be enriched, in the place of its result."""

    value: str
    type: str | None = None
    error: ItemError


class BatchResponse(BaseModel):
    """One entry per requested indicator, in request order."""

    results: list[EnrichResponse | BatchItemError]
    count: int
    took_ms: float


class ProviderOut(BaseModel):
    """One provider's result in the hosted lookup envelope."""

    name: str
    status: str
    flagged: bool
    confidence: int
    categories: list[str]
    summary: str
    reference: str | None = None


class LookupResult(BaseModel):
    """One indicator in the hosted lookup envelope; ``error`` is set when it was invalid."""

    indicator: str
    type: str | None
    verdict: Verdict | None
    score: int | None
    reasons: list[str] = Field(default_factory=list)
    providers: list[ProviderOut] = Field(default_factory=list)
    error: ItemError | None = None


class LookupData(BaseModel):
    results: list[LookupResult]


class LookupMeta(BaseModel):
    count: int
    took_ms: float
    request_id: str
    api_version: str


class LookupResponse(BaseModel):
    """The ``{data, meta}`` envelope of hosted enrichment lookup APIs."""

    data: LookupData
    meta: LookupMeta


class AlertOrigin(BaseModel):
    """The alert an observable came from, and the field that contained it."""

    alert_id: str | int | None
    timestamp: str | None
    rule_id: str | int | None
    rule_level: int | str | None
    agent_id: str | int | None
    agent_name: str | None
    location: str | None
    role: str
    field: str


class AlertRecord(EnrichResponse):
    alert: AlertOrigin


class AlertResponse(BaseModel):
    """The observables of one alert and their enrichments."""

    alert_id: str | int | None
    rule_id: str | int | None
    own_event: bool = Field(description="True for iocscope's own events, which are not enriched.")
    observables: int
    skipped: dict[str, int]
    results: list[AlertRecord]
    took_ms: float


class SourceStatus(BaseModel):
    """One source: its configuration, today's usage and its circuit state."""

    name: str
    title: str
    kind: str
    types: list[str]
    needs_key: bool
    enabled: bool
    state: str
    circuit: Literal["closed", "open", "half_open"]
    rate_per_minute: float | None
    daily_budget: int | None
    budget_left: int | None
    calls_today: int | None
    calls_last_minute: int | None
    paused_until: float | None


class SourcesResponse(BaseModel):
    sources: list[SourceStatus]


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ReadyResponse(BaseModel):
    ready: bool
    sources_enabled: int
    feeds_loaded: int
    feeds_total: int


class ErrorResponse(BaseModel):
    """The body of every error response."""

    detail: str
    code: str
    request_id: str
