"""The lookup pipeline with sources injected: scope, allowlist, cache, limits, failures."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from iocscope.config import Settings, settings_from_mapping
from iocscope.engine.cache import ResultCache
from iocscope.engine.limits import Limiter
from iocscope.engine.model import Verdict
from iocscope.engine.pipeline import Engine
from iocscope.errors import ConnectionFailedError, RateLimitedError
from iocscope.indicators.model import IndicatorType
from iocscope.sources.contract import SourceKind, Status
from iocscope.sources.registry import SourceState
from tests.engine.doubles import ScriptedSource, failing, meta


def states(*sources: ScriptedSource) -> list[SourceState]:
    return [SourceState(source.meta, source, "enabled") for source in sources]


def engine_for(
    *sources: ScriptedSource,
    settings: Settings | None = None,
    cache: ResultCache | None = None,
    limiter: Limiter | None = None,
) -> Engine:
    return Engine(settings or Settings(), states(*sources), cache=cache, limiter=limiter)


@pytest.mark.parametrize(
    "value",
    ["10.1.2.3", "192.168.1.1", "fd00::1", "fs01.corp.internal", "http://10.0.0.5/admin", "host"],
)
async def test_non_public_calls_no_source(value: str) -> None:
    source = ScriptedSource(meta("api"), flagged=True)
    enrichment = await engine_for(source).enrich_value(value)
    assert source.calls == []
    assert enrichment.assessment.verdict is Verdict.UNKNOWN
    assert enrichment.assessment.reasons[0].startswith("not public")


async def test_configured_internal_network_calls_no_source() -> None:
    settings = settings_from_mapping({"scope": {"internal_networks": ["8.8.4.0/24"]}})
    source = ScriptedSource(meta("api"), flagged=True)
    enrichment = await engine_for(source, settings=settings).enrich_value("8.8.4.4")
    assert source.calls == []
    assert not enrichment.scope.is_public


async def test_allowlisted_value_is_benign_without_calls() -> None:
    settings = settings_from_mapping({"allowlist": ["93.184.215.0/24", "example-cdn.net"]})
    source = ScriptedSource(meta("api"), flagged=True)
    engine = engine_for(source, settings=settings)
    by_network = await engine.enrich_value("93.184.215.14")
    by_domain = await engine.enrich_value("img.example-cdn.net")
    assert source.calls == []
    assert by_network.assessment.verdict is Verdict.BENIGN
    assert by_domain.assessment.reasons == (
        "on the configured allowlist (example-cdn.net); no source was asked",
    )


async def test_failing_source_degrades_result() -> None:
    good = ScriptedSource(meta("good"), flagged=True)
    enrichment = await engine_for(good, failing("bad")).enrich_value("203.0.114.9")
    by_source = {result.source: result for result in enrichment.results}
    assert by_source["bad"].status is Status.ERROR
    assert by_source["bad"].error == "bad: HTTP 503"
    assert by_source["good"].flagged


async def test_slow_source_times_out() -> None:
    settings = settings_from_mapping({"sources": {"slow": {"timeout": 0.05}}})
    slow = ScriptedSource(meta("slow"), flagged=True, delay=5)
    enrichment = await engine_for(slow, settings=settings).enrich_value("203.0.114.9")
    result = enrichment.results[0]
    assert result.status is Status.ERROR
    assert result.error == "slow: timed out after 0.05 s"


async def test_unexpected_exception_is_contained() -> None:
    broken = ScriptedSource(meta("broken"), error=KeyError("data"))
    good = ScriptedSource(meta("good"))
    enrichment = await engine_for(broken, good).enrich_value("203.0.114.9")
    by_source = {result.source: result for result in enrichment.results}
    assert by_source["broken"].error == "broken: internal error (KeyError); see the log"
    assert by_source["good"].status is Status.OK


async def test_every_source_failing_says_so() -> None:
    enrichment = await engine_for(failing("a"), failing("b")).enrich_value("203.0.114.9")
    assert enrichment.assessment.verdict is Verdict.UNKNOWN
    assert all(result.status is Status.ERROR for result in enrichment.results)


async def test_cache_answers_second_lookup(tmp_path: Path) -> None:
    source = ScriptedSource(meta("api"), flagged=True)
    with ResultCache(tmp_path / "cache.sqlite3") as cache:
        engine = engine_for(source, cache=cache)
        first = await engine.enrich_value("203.0.114.9")
        second = await engine.enrich_value("203.0.114.9")
    assert source.calls == ["203.0.114.9"]
    assert first.cached == ()
    assert second.cached == ("api",)


async def test_errors_are_never_cached(tmp_path: Path) -> None:
    source = failing("api")
    with ResultCache(tmp_path / "cache.sqlite3") as cache:
        engine = engine_for(source, cache=cache)
        await engine.enrich_value("203.0.114.9")
        await engine.enrich_value("203.0.114.9")
    assert len(source.calls) == 2


async def test_identical_lookups_share_one_call() -> None:
    source = ScriptedSource(meta("api"), flagged=True, delay=0.05)
    engine = engine_for(source)
    await asyncio.gather(*(engine.enrich_value("203.0.114.9") for _ in range(5)))
    assert source.calls == ["203.0.114.9"]


async def test_hash_case_variants_share_cache(tmp_path: Path) -> None:
    source = ScriptedSource(meta("api"))
    with ResultCache(tmp_path / "cache.sqlite3") as cache:
        engine = engine_for(source, cache=cache)
        await engine.enrich_value("3395856CE81F2B7382DEE72602F798B642F14140")
        await engine.enrich_value("3395856ce81f2b7382dee72602f798b642f14140")
    assert source.calls == ["3395856ce81f2b7382dee72602f798b642f14140"]


async def test_benign_feed_hit_skips_api_sources() -> None:
    allowlist = ScriptedSource(meta("cdn_ranges", SourceKind.FEED, benign_only=True), benign=True)
    api = ScriptedSource(meta("api"), flagged=True)
    enrichment = await engine_for(allowlist, api).enrich_value("203.0.114.9")
    skipped = next(r for r in enrichment.results if r.source == "api")
    assert api.calls == []
    assert skipped.status is Status.SKIPPED
    assert skipped.summary == "skipped: listed as benign infrastructure by cdn_ranges"


async def test_rate_limit_gives_rate_limited_record(tmp_path: Path) -> None:
    settings = settings_from_mapping({"sources": {"api": {"rate_per_minute": 1}}})
    source = ScriptedSource(meta("api"))
    limiter = Limiter(tmp_path / "limits.sqlite3")
    engine = engine_for(source, settings=settings, limiter=limiter)
    await engine.enrich_value("203.0.114.9")
    second = await engine.enrich_value("203.0.114.10")
    limiter.close()
    assert source.calls == ["203.0.114.9"]
    assert second.results[0].status is Status.RATE_LIMITED


async def test_provider_retry_after_pauses_source(tmp_path: Path) -> None:
    source = ScriptedSource(meta("api"), error=RateLimitedError("api", "HTTP 429", 120.0))
    limiter = Limiter(tmp_path / "limits.sqlite3")
    engine = engine_for(source, limiter=limiter)
    first = await engine.enrich_value("203.0.114.9")
    second = await engine.enrich_value("203.0.114.10")
    limiter.close()
    assert first.results[0].retry_after == 120.0
    assert second.results[0].status is Status.RATE_LIMITED
    assert len(source.calls) == 1


async def test_no_source_for_type_says_so() -> None:
    ip_only = ScriptedSource(replace(meta("api"), types=frozenset({IndicatorType.IPV4})))
    enrichment = await engine_for(ip_only).enrich_value("example-shop.net")
    assert ip_only.calls == []
    assert enrichment.assessment.reasons == (
        "no enabled source answers domain indicators; "
        "run `iocscope sources` to see which sources are off and why",
    )


async def test_weak_benign_hint_still_asks_api_sources() -> None:
    cloud = ScriptedSource(
        meta("cloud_ranges", SourceKind.FEED, weight=0.4, benign_only=True), benign=True
    )
    api = ScriptedSource(meta("api"), flagged=True)
    enrichment = await engine_for(cloud, api).enrich_value("203.0.114.9")
    asked = next(r for r in enrichment.results if r.source == "api")
    assert api.calls == ["203.0.114.9"]
    assert asked.flagged


async def test_failing_source_circuit_opens() -> None:
    settings = settings_from_mapping({"circuit_threshold": 3, "circuit_cooldown": 60})
    source = failing("api")
    engine = engine_for(source, settings=settings)
    for number in range(6):
        enrichment = await engine.enrich_value(f"203.0.114.{number + 1}")
    assert len(source.calls) == 3
    assert engine.circuit_state("api").value == "open"
    assert enrichment.results[0].status is Status.ERROR
    assert enrichment.results[0].error is not None
    assert "not called after 3 failures in a row" in enrichment.results[0].error


async def test_unreachable_provider_costs_no_budget(tmp_path: Path) -> None:
    settings = settings_from_mapping({"sources": {"api": {"daily_budget": 10}}})
    source = ScriptedSource(meta("api"), error=ConnectionFailedError("api", "name not known"))
    limiter = Limiter(tmp_path / "limits.sqlite3")
    engine = engine_for(source, settings=settings, limiter=limiter)
    await engine.enrich_value("203.0.114.9")
    await engine.enrich_value("203.0.114.10")
    left = limiter.budget_left("api", 10)
    limiter.close()
    assert len(source.calls) == 2
    assert left == 10


async def test_outage_logged_sparingly(caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_from_mapping({"circuit_threshold": 1000})
    engine = engine_for(failing("api"), settings=settings)
    with caplog.at_level("WARNING", logger="iocscope.engine.pipeline"):
        for number in range(25):
            await engine.enrich_value(f"203.0.114.{number + 1}")
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert lines[1].startswith("source api degraded (10 failures so far)")
