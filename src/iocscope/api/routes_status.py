"""Health, readiness, metrics and the state of every source.

``/healthz`` needs no key, so that a load balancer can probe it. Every other
endpoint here needs one, because feed counts, source states and traffic
numbers tell an attacker what is watched.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from iocscope.api.metrics import CONTENT_TYPE
from iocscope.api.responses import JsonResponse
from iocscope.api.schemas import HealthResponse, ReadyResponse, SourcesResponse
from iocscope.api.services import KeyDep, Services, ServicesDep
from iocscope.errors import ConfigError
from iocscope.sources.registry import SourceState

logger = logging.getLogger(__name__)

router = APIRouter(tags=["service"])


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> JsonResponse:
    """Return ok while the process serves requests; needs no key."""
    return JsonResponse({"status": "ok"})


@router.get("/readyz", response_model=ReadyResponse)
async def readyz(services: ServicesDep, key: KeyDep) -> JsonResponse:
    """Report that the engine is built, with the enabled sources and loaded feeds.

    The server accepts connections only after its startup built the engine
    and loaded the feeds, so any response here means ready.
    """
    runtime = services.runtime
    feeds = runtime.feeds
    return JsonResponse(
        {
            "ready": True,
            "sources_enabled": sum(state.enabled for state in runtime.states),
            "feeds_loaded": sum(feeds.loaded(spec.name) for spec in feeds.specs),
            "feeds_total": len(feeds.specs),
        }
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format."}},
)
async def metrics(services: ServicesDep, key: KeyDep) -> Response:
    """Return the metrics in the Prometheus text exposition format."""
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/v1/sources", response_model=SourcesResponse)
async def sources(services: ServicesDep, key: KeyDep) -> JsonResponse:
    """List every source with its state, today's usage and the budget left.

    ``circuit`` is ``open`` for a disabled source and for a source the
    engine stopped calling after repeated failures, ``half_open`` while its
    cool-down is over and the next call is a trial, and ``closed`` otherwise.
    """
    return JsonResponse({"sources": [_source_status(services, s) for s in services.runtime.states]})


def _source_status(services: Services, state: SourceState) -> dict[str, Any]:
    meta = state.meta
    engine = services.runtime.engine
    rate, budget = engine.limits_for(meta)
    circuit = engine.circuit_state(meta.name).value if state.enabled else "open"
    status: dict[str, Any] = {
        "name": meta.name,
        "title": meta.title,
        "kind": meta.kind.value,
        "types": sorted(t.value for t in meta.types),
        "needs_key": meta.needs_key,
        "enabled": state.enabled,
        "state": state.reason,
        "circuit": circuit,
        "rate_per_minute": rate,
        "daily_budget": budget,
        "budget_left": None,
        "calls_today": None,
        "calls_last_minute": None,
        "paused_until": None,
    }
    if meta.offline:
        # Feeds and offline databases cost nothing, so the limiter never counts them.
        return status
    try:
        usage = services.source_limits.usage(meta.name)
    except ConfigError as exc:
        logger.warning("cannot report the usage of source %s: %s", meta.name, exc)
        return status
    status.update(
        budget_left=None if budget is None else max(0, budget - usage.calls_today),
        calls_today=usage.calls_today,
        calls_last_minute=usage.calls_last_minute,
        paused_until=usage.paused_until,
    )
    return status
