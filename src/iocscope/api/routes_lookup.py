"""``/api/v1/enrichment/lookup``: the ``{data, meta}`` envelope of hosted lookup APIs.

Clients of that envelope send ``Authorization: Bearer`` and a list of
indicators, and read ``indicator``, ``type``, ``verdict``, ``score`` and
``providers`` from each result.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from iocscope.api.middleware import request_id
from iocscope.api.responses import BatchEntry, JsonResponse, elapsed_ms, enrich_items
from iocscope.api.schemas import IndicatorList, LookupResponse
from iocscope.api.services import KeyDep, ServicesDep

router = APIRouter(tags=["enrichment"])

API_VERSION = "v1"


@router.post("/api/v1/enrichment/lookup", response_model=LookupResponse)
async def lookup(
    body: IndicatorList, request: Request, services: ServicesDep, key: KeyDep
) -> JsonResponse:
    """Look up to ``batch_limit`` indicators and return them in the ``{data, meta}`` envelope.

    An invalid indicator gets a result with ``error`` set and null verdict and score.
    """
    started = time.perf_counter()
    entries = await enrich_items(services, body.indicators)
    results = [_result(entry) for entry in entries]
    meta = {
        "count": len(results),
        "took_ms": elapsed_ms(started),
        "request_id": request_id(request.scope),
        "api_version": API_VERSION,
    }
    return JsonResponse({"data": {"results": results}, "meta": meta})


def _result(entry: BatchEntry) -> dict[str, Any]:
    record = entry.record
    if record is None:
        return {
            "indicator": entry.shown_value,
            "type": entry.type_name,
            "verdict": None,
            "score": None,
            "reasons": [],
            "providers": [],
            "error": entry.error_body(),
        }
    return {
        "indicator": record["value"],
        "type": record["type"],
        "verdict": record["verdict"],
        "score": record["risk_score"],
        "reasons": record["reasons"],
        "providers": [_provider(source) for source in record["sources"]],
        "error": None,
    }


def _provider(source: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": source["source"],
        "status": source["status"],
        "flagged": source["flagged"],
        "confidence": source["confidence"],
        "categories": source.get("categories", []),
        "summary": source["summary"] or source.get("error", ""),
        "reference": source.get("reference"),
    }
