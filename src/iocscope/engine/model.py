"""The result of enriching one indicator."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from iocscope.indicators.model import Indicator, Scope
from iocscope.sources.contract import SourceResult


class Verdict(StrEnum):
    """The combined judgement. ``unknown`` means no source had data, not "clean"."""

    MALICIOUS = "malicious"
    SUSPICIOUS = "suspicious"
    BENIGN = "benign"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Assessment:
    """A 0-100 risk score, its verdict and the reasons that produced both."""

    score: int
    verdict: Verdict
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Enrichment:
    """Everything iocscope learnt about one indicator.

    ``cached`` lists the sources whose result came from the cache;
    ``context`` merges the context sources (country, ASN) that answered.
    """

    indicator: Indicator
    scope: Scope
    assessment: Assessment
    results: tuple[SourceResult, ...] = ()
    context: dict[str, Any] = field(default_factory=dict)
    cached: tuple[str, ...] = ()
    took_ms: float = 0.0
