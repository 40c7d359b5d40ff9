"""Enrich whole Wazuh alerts: observables out, one record per observable.

Shared by ``iocscope alerts`` and the daemon, so both count and report the
same way.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from iocscope.engine.pipeline import Engine
from iocscope.engine.report import enrichment_record
from iocscope.observables.extract import extract_observables
from iocscope.observables.model import Observable


@dataclass
class AlertSummary:
    """Counters over a stream of alerts, printed at the end of a run."""

    alerts_read: int = 0
    invalid_lines: int = 0
    own_events: int = 0
    observables: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    verdicts: Counter[str] = field(default_factory=Counter)

    def as_dict(self, engine: Engine) -> dict[str, Any]:
        """Return the counters together with the engine's call statistics."""
        stats = engine.stats
        return {
            "alerts_read": self.alerts_read,
            "invalid_lines": self.invalid_lines,
            "own_events_skipped": self.own_events,
            "observables": self.observables,
            "skipped": dict(sorted(self.skipped.items())),
            "verdicts": dict(sorted(self.verdicts.items())),
            "source_calls": sum(stats.source_calls.values()),
            "source_calls_by_source": dict(sorted(stats.source_calls.items())),
            "cache_hits": sum(stats.cache_hits.values()),
            "source_errors": dict(sorted(stats.source_errors.items())),
        }


class AlertEnricher:
    """Turns one alert into enrichment records and keeps the summary."""

    def __init__(self, engine: Engine, max_observables: int) -> None:
        self._engine = engine
        self._max_observables = max_observables
        self.summary = AlertSummary()

    async def enrich_alert(self, alert: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Return one record per observable of the alert (none for iocscope's own events)."""
        self.summary.alerts_read += 1
        extraction = extract_observables(
            alert, self._engine.policy, max_observables=self._max_observables
        )
        self.summary.skipped.update(extraction.skipped)
        if extraction.own_event:
            self.summary.own_events += 1
            return []
        enrichments = await asyncio.gather(
            *(self._engine.enrich(observable.indicator) for observable in extraction.observables)
        )
        records = []
        for observable, enrichment in zip(extraction.observables, enrichments, strict=True):
            record = enrichment_record(enrichment)
            self.summary.observables += 1
            self.summary.verdicts[record["verdict"]] += 1
            records.append(_with_alert(record, alert, observable))
        return records


def _with_alert(
    record: dict[str, Any], alert: Mapping[str, Any], observable: Observable
) -> dict[str, Any]:
    rule = _mapping(alert.get("rule"))
    agent = _mapping(alert.get("agent"))
    origin = {
        "alert_id": alert.get("id"),
        "timestamp": alert.get("timestamp"),
        "rule_id": rule.get("id"),
        "rule_level": rule.get("level"),
        "agent_id": agent.get("id"),
        "agent_name": agent.get("name"),
        "location": alert.get("location"),
        "role": observable.role.value,
        "field": observable.field,
    }
    return {"alert": origin, **record}


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
