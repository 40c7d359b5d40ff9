"""The lookup pipeline for one indicator.

Scope, allowlist, local sources (feeds and offline databases, which cost
nothing), then every eligible API source at once, each behind the cache, the
rate limiter and its own timeout. A source that fails adds an ``error`` or
``rate_limited`` record; it never fails the enrichment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from iocscope.config import Settings
from iocscope.engine.allowlist import Allowlist
from iocscope.engine.cache import ResultCache, ttl_for_source
from iocscope.engine.circuit import CircuitBreaker, CircuitState
from iocscope.engine.limits import Limiter
from iocscope.engine.model import Assessment, Enrichment, Verdict
from iocscope.engine.scoring import assess, source_weight
from iocscope.errors import (
    ConnectionFailedError,
    RateLimitedError,
    SourceError,
    SourceTimeoutError,
)
from iocscope.indicators.model import Indicator, IndicatorType, Scope
from iocscope.indicators.parse import parse_indicator
from iocscope.indicators.scope import ScopePolicy, classify_scope
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.http import CANCEL_GRACE, max_connections
from iocscope.sources.registry import SourceState

logger = logging.getLogger(__name__)


@dataclass
class EngineStats:
    """Counters of one engine's lifetime, for summaries and metrics."""

    source_calls: Counter[str] = field(default_factory=Counter)
    cache_hits: Counter[str] = field(default_factory=Counter)
    source_errors: Counter[str] = field(default_factory=Counter)


class Engine:
    """Enriches indicators with every enabled source; safe to share across tasks."""

    def __init__(
        self,
        settings: Settings,
        states: Sequence[SourceState],
        *,
        cache: ResultCache | None = None,
        limiter: Limiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._policy = ScopePolicy.from_settings(settings.scope)
        self._allowlist = Allowlist.from_entries(settings.allowlist)
        self._sources = tuple(state.source for state in states if state.source is not None)
        self._metas = {state.meta.name: state.meta for state in states}
        self._cache = cache
        self._limiter = limiter
        self._circuit = CircuitBreaker(settings.circuit_threshold, settings.circuit_cooldown)
        # Fewer calls in flight than pooled connections, so no request ever
        # waits for a connection inside httpx, where a cancellation can leak it.
        self._remote_slots = asyncio.Semaphore(max(1, max_connections(settings) // 2))
        self._clock = clock
        self._in_flight: dict[tuple[str, str, str], asyncio.Future[SourceResult]] = {}
        self.stats = EngineStats()

    @property
    def policy(self) -> ScopePolicy:
        return self._policy

    def circuit_state(self, name: str) -> CircuitState:
        """Return whether the engine currently calls the source ``name``."""
        return self._circuit.state(name)

    async def enrich_value(self, text: str, type_hint: IndicatorType | None = None) -> Enrichment:
        """Parse a value and enrich it; raises InvalidIndicatorError for bad input."""
        return await self.enrich(parse_indicator(text, type_hint))

    async def enrich(self, indicator: Indicator) -> Enrichment:
        """Run the whole pipeline for one parsed indicator."""
        started = self._clock()
        scope = classify_scope(indicator, self._policy)
        if not scope.is_public:
            return self._not_public(indicator, scope, started)
        allowed_by = self._allowlist.match(indicator)
        if allowed_by is not None:
            return self._allowlisted(indicator, scope, allowed_by, started)
        results, cached = await self._ask_sources(indicator)
        if results:
            assessment = assess(results, self._metas, self._settings.scoring)
        else:
            assessment = _no_source_for(indicator)
        return Enrichment(
            indicator=indicator,
            scope=scope,
            assessment=assessment,
            results=tuple(results),
            context=_merge_context(results, self._metas),
            cached=tuple(cached),
            took_ms=self._elapsed_ms(started),
        )

    async def _ask_sources(self, indicator: Indicator) -> tuple[list[SourceResult], list[str]]:
        eligible = [source for source in self._sources if indicator.type in source.meta.types]
        local = [source for source in eligible if source.meta.offline]
        remote = [source for source in eligible if not source.meta.offline]
        results = list(await asyncio.gather(*(self._call(s, indicator) for s in local)))
        benign_by = [r.source for r in results if self._is_strong_hint(r)]
        cached: list[str] = []
        if benign_by:
            # A well-known benign listing answers the question without spending quota.
            reason = f"skipped: listed as benign infrastructure by {', '.join(benign_by)}"
            results.extend(_skipped(source.meta.name, reason) for source in remote)
            return results, cached
        for result, from_cache in await asyncio.gather(
            *(self._call_remote(source, indicator) for source in remote)
        ):
            results.append(result)
            if from_cache:
                cached.append(result.source)
        return results, cached

    def _is_strong_hint(self, result: SourceResult) -> bool:
        # Only a strong allowlist (public resolvers, empty-file hashes) answers
        # the question; a cloud or CDN range still needs the API sources.
        if not result.benign or result.status is not Status.OK:
            return False
        weight = source_weight(result.source, self._metas, self._settings.scoring)
        return weight >= self._settings.scoring.strong_weight

    async def _call_remote(self, source: Source, indicator: Indicator) -> tuple[SourceResult, bool]:
        name = source.meta.name
        if self._cache is not None:
            hit = self._cache.get(name, indicator)
            if hit is not None:
                self.stats.cache_hits[name] += 1
                return hit, True
        key = (name, indicator.type.value, indicator.value)
        pending = self._in_flight.get(key)
        if pending is not None:
            # An identical lookup is already running, so wait for its result.
            return await asyncio.shield(pending), False
        future: asyncio.Future[SourceResult] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await self._call_limited(source, indicator)
            future.set_result(result)
        finally:
            del self._in_flight[key]
            if not future.done():
                future.cancel()
        self._store(source.meta, indicator, result)
        return result, False

    def limits_for(self, meta: SourceMeta) -> tuple[float | None, int | None]:
        """Return the rate per minute and daily budget in force for a source."""
        configured = self._settings.source(meta.name)
        rate = configured.rate_per_minute or meta.rate_per_minute
        budget = (
            configured.daily_budget if configured.daily_budget is not None else meta.daily_budget
        )
        return rate, budget

    async def _call_limited(self, source: Source, indicator: Indicator) -> SourceResult:
        meta = source.meta
        wait = self._circuit.retry_in(meta.name)
        if wait is not None:
            self.stats.source_errors[meta.name] += 1
            failures = self._circuit.failures(meta.name)
            message = (
                f"{meta.name}: not called after {failures} failures in a row; "
                f"next try in {wait:.0f} s"
            )
            return _failed(meta.name, Status.ERROR, message, wait)
        if self._limiter is not None:
            rate, budget = self.limits_for(meta)
            try:
                self._limiter.acquire(meta.name, rate, budget)
            except RateLimitedError as exc:
                self.stats.source_errors[meta.name] += 1
                return _failed(meta.name, Status.RATE_LIMITED, str(exc), exc.retry_after)
        result, unreachable = await self._call_counted(source, indicator)
        if self._limiter is not None:
            if result.status is Status.RATE_LIMITED:
                self._limiter.penalise(meta.name, result.retry_after or 60.0)
            elif unreachable:
                # No connection was made, so the provider counted no call.
                self._limiter.refund(meta.name)
        return result

    async def _call_counted(
        self, source: Source, indicator: Indicator
    ) -> tuple[SourceResult, bool]:
        """Call the source and feed its outcome to the circuit breaker.

        The flag is True when the call failed before reaching the provider.
        """
        name = source.meta.name
        try:
            async with self._remote_slots:
                result = await self._call(source, indicator, reraise_unreachable=True)
        except ConnectionFailedError as exc:
            self._circuit.record_failure(name)
            return self._record_error(exc), True
        if result.status is Status.ERROR:
            self._circuit.record_failure(name)
        elif result.status is Status.OK:
            self._circuit.record_success(name)
        return result, False

    async def _call(
        self, source: Source, indicator: Indicator, *, reraise_unreachable: bool = False
    ) -> SourceResult:
        meta = source.meta
        timeout = self._settings.source(meta.name).timeout or meta.timeout
        self.stats.source_calls[meta.name] += 1
        try:
            # The grace lets the source's HTTP client end a slow call itself.
            return await asyncio.wait_for(source.lookup(indicator), timeout + CANCEL_GRACE)
        except ConnectionFailedError as exc:
            if reraise_unreachable:
                raise
            return self._record_error(exc)
        except TimeoutError:
            error: SourceError = SourceTimeoutError(meta.name, f"timed out after {timeout:g} s")
            return self._record_error(error)
        except RateLimitedError as exc:
            self.stats.source_errors[meta.name] += 1
            return _failed(meta.name, Status.RATE_LIMITED, str(exc), exc.retry_after)
        except SourceError as exc:
            return self._record_error(exc)
        except Exception as exc:
            logger.exception("source %s failed on a %s indicator", meta.name, indicator.type)
            return self._record_error(
                SourceError(meta.name, f"internal error ({type(exc).__name__}); see the log")
            )

    def _record_error(self, error: SourceError) -> SourceResult:
        self.stats.source_errors[error.source] += 1
        count = self.stats.source_errors[error.source]
        # One line for the 1st, 10th, 100th... failure of a source, so an outage
        # is visible without a line per lookup.
        if _is_power_of_ten(count):
            logger.warning(
                "source %s degraded (%d failures so far): %s", error.source, count, error
            )
        return _failed(error.source, Status.ERROR, str(error), None)

    def _store(self, meta: SourceMeta, indicator: Indicator, result: SourceResult) -> None:
        if self._cache is None or result.status is not Status.OK:
            return
        ttl = ttl_for_source(result, self._settings.source(meta.name))
        self._cache.put(meta.name, indicator, result, ttl)

    def _not_public(self, indicator: Indicator, scope: Scope, started: float) -> Enrichment:
        reason = f"not public ({scope.reason.value}): {scope.detail}; no source was asked"
        return Enrichment(
            indicator=indicator,
            scope=scope,
            assessment=Assessment(score=0, verdict=Verdict.UNKNOWN, reasons=(reason,)),
            took_ms=self._elapsed_ms(started),
        )

    def _allowlisted(
        self, indicator: Indicator, scope: Scope, entry: str, started: float
    ) -> Enrichment:
        reason = f"on the configured allowlist ({entry}); no source was asked"
        return Enrichment(
            indicator=indicator,
            scope=scope,
            assessment=Assessment(score=0, verdict=Verdict.BENIGN, reasons=(reason,)),
            took_ms=self._elapsed_ms(started),
        )

    def _elapsed_ms(self, started: float) -> float:
        return round((self._clock() - started) * 1000.0, 3)


def _is_power_of_ten(count: int) -> bool:
    while count >= 10 and count % 10 == 0:
        count //= 10
    return count == 1


def _no_source_for(indicator: Indicator) -> Assessment:
    reason = (
        f"no enabled source answers {indicator.type.value} indicators; "
        "run `iocscope sources` to see which sources are off and why"
    )
    return Assessment(score=0, verdict=Verdict.UNKNOWN, reasons=(reason,))


def _failed(source: str, status: Status, message: str, retry_after: float | None) -> SourceResult:
    return SourceResult(source=source, status=status, error=message, retry_after=retry_after)


def _skipped(source: str, reason: str) -> SourceResult:
    return SourceResult(source=source, status=Status.SKIPPED, summary=reason)


def _merge_context(
    results: Sequence[SourceResult], metas: dict[str, SourceMeta]
) -> dict[str, object]:
    merged: dict[str, object] = {}
    for result in results:
        meta = metas.get(result.source)
        if meta is not None and meta.kind is SourceKind.CONTEXT and result.status is Status.OK:
            merged.update(result.context)
    return merged


async def gather_bounded(
    limit: int, jobs: Sequence[Callable[[], Awaitable[Enrichment]]]
) -> list[Enrichment]:
    """Run enrichment jobs with at most ``limit`` at once, keeping their order."""
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[Enrichment]]) -> Enrichment:
        async with semaphore:
            return await job()

    return list(await asyncio.gather(*(run(job) for job in jobs)))
