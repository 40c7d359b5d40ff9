"""JSON responses serialised with orjson, and the helper shared by the batch endpoints."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import HTTPException
from starlette.responses import Response

from iocscope.api.schemas import IndicatorIn
from iocscope.api.services import Services
from iocscope.engine.model import Enrichment
from iocscope.engine.pipeline import gather_bounded
from iocscope.engine.report import enrichment_record
from iocscope.errors import InvalidIndicatorError
from iocscope.indicators.model import Indicator
from iocscope.redact import redact_userinfo


class JsonResponse(Response):
    """A JSON response; the body is built by orjson from JSON-ready records."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def elapsed_ms(started: float) -> float:
    """Return the milliseconds since ``started`` (a ``time.perf_counter`` value)."""
    return round((time.perf_counter() - started) * 1000.0, 3)


def check_batch_size(count: int, limit: int) -> None:
    """Raise 413 when a request carries more indicators than the configured limit."""
    if count > limit:
        raise HTTPException(
            status_code=413,
            detail=f"the request has {count} indicators, more than the limit of {limit}; "
            "split it into smaller batches",
        )


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """One requested indicator: its record, or the error that stopped it."""

    value: str
    type_name: str | None
    record: dict[str, Any] | None = None
    error: InvalidIndicatorError | None = None

    def error_body(self) -> dict[str, str]:
        return {"code": "invalid_indicator", "message": str(self.error)}

    @property
    def shown_value(self) -> str:
        """The requested value as echoed back, URL credentials masked."""
        return redact_userinfo(self.value)


async def enrich_items(services: Services, items: list[IndicatorIn | str]) -> list[BatchEntry]:
    """Enrich the valid items concurrently (at most ``concurrency`` at once), in request order.

    Raises 413 when there are more items than ``batch_limit``.
    """
    check_batch_size(len(items), services.api.batch_limit)
    engine = services.runtime.engine
    models = [item if isinstance(item, IndicatorIn) else IndicatorIn(value=item) for item in items]
    parsed: list[Indicator | InvalidIndicatorError] = []
    for model in models:
        try:
            parsed.append(model.parse())
        except InvalidIndicatorError as exc:
            parsed.append(exc)

    def job(indicator: Indicator) -> Callable[[], Awaitable[Enrichment]]:
        return lambda: engine.enrich(indicator)

    jobs = [job(item) for item in parsed if isinstance(item, Indicator)]
    enrichments = iter(await gather_bounded(services.runtime.settings.concurrency, jobs))
    entries = []
    for model, item in zip(models, parsed, strict=True):
        if isinstance(item, Indicator):
            record = enrichment_record(next(enrichments))
            entries.append(BatchEntry(model.value, model.type, record=record))
        else:
            entries.append(BatchEntry(model.value, model.type, error=item))
    count_entries(services, entries)
    return entries


def count_entries(services: Services, entries: list[BatchEntry]) -> None:
    services.metrics.count_verdicts(entry.record["verdict"] for entry in entries if entry.record)
    invalid = sum(entry.error is not None for entry in entries)
    if invalid:
        services.metrics.invalid_indicators.inc(invalid)
