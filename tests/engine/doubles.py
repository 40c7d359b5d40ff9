"""Test sources that follow the source contract and can fail on demand."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from iocscope.errors import SourceError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import SourceKind, SourceMeta, SourceResult, Status

ALL_TYPES = frozenset(IndicatorType)


def meta(
    name: str,
    kind: SourceKind = SourceKind.API,
    weight: float = 0.8,
    benign_only: bool = False,
) -> SourceMeta:
    return SourceMeta(
        name=name,
        title=name,
        kind=kind,
        types=ALL_TYPES,
        needs_key=False,
        weight=weight,
        timeout=2.0,
        benign_only=benign_only,
        offline=kind is SourceKind.FEED,
    )


@dataclass
class ScriptedSource:
    """Returns a fixed result, raises an error, or sleeps; records every call."""

    meta: SourceMeta
    flagged: bool = False
    benign: bool = False
    confidence: int = 90
    error: Exception | None = None
    delay: float = 0.0
    calls: list[str] = field(default_factory=list)

    async def lookup(self, indicator: Indicator) -> SourceResult:
        self.calls.append(indicator.value)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return SourceResult(
            source=self.meta.name,
            status=Status.OK,
            found=self.flagged or self.benign,
            flagged=self.flagged,
            benign=self.benign,
            confidence=self.confidence if self.flagged else 0,
            summary="scripted",
        )


def failing(name: str, message: str = "HTTP 503") -> ScriptedSource:
    return ScriptedSource(meta(name), error=SourceError(name, message))
