"""The source contract: what every intelligence source declares and returns.

A source is one class with a frozen ``SourceMeta`` and one async ``lookup``.
``lookup`` returns a ``SourceResult`` when the source answered (listed or
not) and raises a ``SourceError`` subclass when it could not answer; the
engine turns those errors into ``error`` or ``rate_limited`` records, so a
failing source degrades the result and never fails it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from iocscope.indicators.model import Indicator, IndicatorType


class SourceKind(StrEnum):
    """Kind of source, by where its data comes from."""

    FEED = "feed"  # bulk list synced to disk, matched in memory
    API = "api"  # HTTP API called at lookup time
    CONTEXT = "context"  # offline database that adds context but no verdict


class Status(StrEnum):
    """The outcome of one source call."""

    OK = "ok"
    ERROR = "error"
    RATE_LIMITED = "rate_limited"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class SourceMeta:
    """Description of a source and of the limits on calling it.

    ``weight`` is the default strength of a flag from this source in the
    score (0.0-1.0); configuration may override it. ``rate_per_minute`` and
    ``daily_budget`` come from the provider's free tier; ``None`` means no
    limit (feeds and offline databases).
    """

    name: str
    title: str
    kind: SourceKind
    types: frozenset[IndicatorType]
    needs_key: bool
    weight: float
    timeout: float = 5.0
    rate_per_minute: float | None = None
    daily_budget: int | None = None
    reference: str = ""
    licence: str = ""
    benign_only: bool = False  # an allowlist: its hits are benign hints, never flags
    # Results come from local data (synced feeds, an offline database): no network,
    # no quota, so no cache, limiter or circuit breaker in front of it.
    offline: bool = False


@dataclass(frozen=True, slots=True)
class SourceResult:
    """One source's normalised result about one indicator.

    ``found`` says the source knows the indicator at all; ``flagged`` says it
    considers it malicious; ``benign`` marks a benign hint (an allowlist hit,
    a provider's whitelist). ``confidence`` is 0-100. ``raw`` keeps the
    provider payload apart from the normalised fields and is never mutated.
    """

    source: str
    status: Status
    found: bool = False
    flagged: bool = False
    benign: bool = False
    confidence: int = 0
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    reference: str | None = None
    summary: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    retry_after: float | None = None
    raw: Any = None


class Source(Protocol):
    """An intelligence source: its metadata and one lookup."""

    @property
    def meta(self) -> SourceMeta: ...

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Look the indicator up; raise a ``SourceError`` when no answer was possible."""
        ...
