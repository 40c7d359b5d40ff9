"""``/v1/alerts/enrich``: one Wazuh alert in, its observables and their enrichments out.

The body is the alert as Wazuh writes it to alerts.json, or an
active-response message that carries it in ``parameters.alert``. Any
HTTP client that can post the alert JSON with the key header (a webhook of
a manager that has no integratord, such as Wazuh 5) can call it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Body

from iocscope.api.responses import JsonResponse, elapsed_ms
from iocscope.api.schemas import AlertResponse
from iocscope.api.services import KeyDep, ServicesDep
from iocscope.engine.alerts import AlertEnricher
from iocscope.errors import AlertError
from iocscope.observables.alerts import unwrap_alert

router = APIRouter(tags=["alerts"])

# An alert has at least one of these; anything else is not an alert.
_ALERT_FIELDS = ("rule", "data", "full_log")


@router.post("/v1/alerts/enrich", response_model=AlertResponse)
async def enrich_alert(
    alert: Annotated[dict[str, Any], Body(description="A Wazuh alert (alerts.json format).")],
    services: ServicesDep,
    key: KeyDep,
) -> JsonResponse:
    """Extract the alert's observables and enrich the public ones.

    Non-public observables are reported without a call to any source, and
    iocscope's own enrichment events yield no results (``own_event``).
    """
    started = time.perf_counter()
    inner = unwrap_alert(alert)
    if not any(name in inner for name in _ALERT_FIELDS):
        raise AlertError(
            "the body is not a Wazuh alert: expected a JSON object with a rule, data or "
            "full_log field, or an active-response message with parameters.alert"
        )
    runtime = services.runtime
    # One enricher per request, so its summary counts this alert only.
    enricher = AlertEnricher(runtime.engine, runtime.settings.alerts.max_observables)
    records = await enricher.enrich_alert(inner)
    services.metrics.count_verdicts(record["verdict"] for record in records)
    summary = enricher.summary
    rule = inner.get("rule")
    return JsonResponse(
        {
            "alert_id": _scalar(inner.get("id")),
            "rule_id": _scalar(rule.get("id")) if isinstance(rule, Mapping) else None,
            "own_event": summary.own_events > 0,
            "observables": len(records),
            "skipped": dict(sorted(summary.skipped.items())),
            "results": records,
            "took_ms": elapsed_ms(started),
        }
    )


def _scalar(value: Any) -> str | int | None:
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None
