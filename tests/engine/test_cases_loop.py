"""Alert storms: repeats are served from the cache and budgets hold.

Covers the shared cases of family alert_loop_storm that concern the engine
(the forwarder's loop guard is tested with the forwarder), with inputs
written for this project.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from iocscope.config import settings_from_mapping
from iocscope.engine.alerts import AlertEnricher
from iocscope.engine.cache import ResultCache
from iocscope.engine.limits import Limiter
from iocscope.engine.pipeline import Engine
from iocscope.sources.contract import Status
from iocscope.sources.registry import SourceState
from tests.engine.doubles import ScriptedSource, meta
from tests.support.corpus import cases_of

STORM_CASES = {case["id"]: case for case in cases_of("alert_loop_storm")}


def sshd_alert(alert_id: str, srcip: str) -> dict[str, Any]:
    return {
        "rule": {"level": 10, "id": "5712", "groups": ["sshd"]},
        "agent": {"id": "001", "name": "web01"},
        "id": alert_id,
        "data": {"srcip": srcip},
    }


def storm_addresses(count: int) -> list[str]:
    networks = [ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("198.51.100.0/24")]
    hosts = [str(host) for network in networks for host in network.hosts()]
    return [hosts[index % len(hosts)] for index in range(count)]


async def test_repeat_alert_served_from_cache(tmp_path: Path) -> None:
    source = ScriptedSource(meta("api"), flagged=True)
    settings = settings_from_mapping({"scope": {"public_overrides": ["203.0.113.0/24"]}})
    with ResultCache(tmp_path / "cache.sqlite3") as cache:
        engine = Engine(settings, [SourceState(source.meta, source, "enabled")], cache=cache)
        enricher = AlertEnricher(engine, max_observables=32)
        first = await enricher.enrich_alert(sshd_alert("1", "203.0.113.20"))
        repeat = await enricher.enrich_alert(sshd_alert("2", "203.0.113.20"))
    assert source.calls == ["203.0.113.20"]
    assert first[0]["cached"] == []
    assert repeat[0]["cached"] == ["api"]
    assert repeat[0]["verdict"] == first[0]["verdict"]


async def test_storm_of_documentation_addresses_costs_nothing(tmp_path: Path) -> None:
    source = ScriptedSource(meta("api"))
    limiter = Limiter(tmp_path / "limits.sqlite3")
    engine = Engine(
        settings_from_mapping({}), [SourceState(source.meta, source, "enabled")], limiter=limiter
    )
    enricher = AlertEnricher(engine, max_observables=32)
    for number, address in enumerate(storm_addresses(1200)):
        await enricher.enrich_alert(sshd_alert(str(number), address))
    limiter.close()
    assert source.calls == []
    assert enricher.summary.skipped["non_public:documentation"] == 1200


async def test_storm_beyond_budget_is_rate_limited(tmp_path: Path) -> None:
    settings = settings_from_mapping(
        {
            "scope": {"public_overrides": ["203.0.113.0/24", "198.51.100.0/24"]},
            "sources": {"api": {"daily_budget": 100}},
        }
    )
    source = ScriptedSource(meta("api"))
    limiter = Limiter(tmp_path / "limits.sqlite3")
    engine = Engine(settings, [SourceState(source.meta, source, "enabled")], limiter=limiter)
    statuses = []
    for address in storm_addresses(120):
        enrichment = await engine.enrich_value(address)
        statuses.append(enrichment.results[0])
    left = limiter.budget_left("api", 100)
    limiter.close()
    assert len(source.calls) == 100
    assert left == 0
    refused = statuses[100:]
    assert all(result.status is Status.RATE_LIMITED for result in refused)
    assert refused[0].error is not None
    assert "daily budget of 100 calls is spent" in refused[0].error


@pytest.mark.parametrize("case_id", sorted(STORM_CASES))
def test_storm_cases_are_covered(case_id: str) -> None:
    # B21 and B22 are the forwarder's loop guard (tests/wazuh); B24 and B25 are here.
    assert case_id in {"B21", "B22", "B24", "B25"}, f"new storm case {case_id} has no test"
