"""``/v1/ioc/enrich`` and its batch form: the hosted-API-compatible endpoints."""

from __future__ import annotations

import time

from fastapi import APIRouter

from iocscope.api.responses import JsonResponse, elapsed_ms, enrich_items
from iocscope.api.schemas import BatchResponse, EnrichResponse, IndicatorIn, IndicatorList
from iocscope.api.services import KeyDep, ServicesDep
from iocscope.engine.report import enrichment_record
from iocscope.errors import InvalidIndicatorError

router = APIRouter(tags=["enrichment"])


@router.post("/v1/ioc/enrich", response_model=EnrichResponse)
async def enrich(item: IndicatorIn, services: ServicesDep, key: KeyDep) -> JsonResponse:
    """Enrich one indicator: score, verdict, reasons and one entry per source.

    An invalid value gets 422 and a message naming the value and the rule.
    """
    try:
        indicator = item.parse()
    except InvalidIndicatorError:
        services.metrics.invalid_indicators.inc()
        raise
    record = enrichment_record(await services.runtime.engine.enrich(indicator))
    services.metrics.count_verdicts((record["verdict"],))
    return JsonResponse(record)


@router.post("/v1/ioc/enrich/batch", response_model=BatchResponse)
async def enrich_batch(body: IndicatorList, services: ServicesDep, key: KeyDep) -> JsonResponse:
    """Enrich up to ``batch_limit`` indicators; results keep the request order.

    An invalid indicator gets an ``error`` entry in its place and the others
    are still enriched. More indicators than the limit get 413.
    """
    started = time.perf_counter()
    entries = await enrich_items(services, body.indicators)
    results = [
        entry.record
        if entry.record is not None
        else {"value": entry.shown_value, "type": entry.type_name, "error": entry.error_body()}
        for entry in entries
    ]
    return JsonResponse({"results": results, "count": len(results), "took_ms": elapsed_ms(started)})
