"""Plain JSON-ready records of enrichments, shared by the CLI and the API.

The field names follow the shape that hosted enrichment APIs use
(``risk_score``, ``verdict``, ``sources_queried``, ``sources_flagged``), so
clients written for them can read iocscope's output unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from iocscope.engine.model import Enrichment
from iocscope.redact import redact_userinfo
from iocscope.sources.contract import SourceResult, Status


def enrichment_record(enrichment: Enrichment) -> dict[str, Any]:
    """Return the JSON-ready record of one enrichment (without raw provider payloads)."""
    indicator = enrichment.indicator
    results = enrichment.results
    queried = [
        r.source for r in results if r.status in (Status.OK, Status.ERROR, Status.RATE_LIMITED)
    ]
    flagged = [r.source for r in results if r.status is Status.OK and r.flagged]
    return {
        "type": indicator.type.value,
        "value": indicator.value,
        "display": indicator.display,
        "original": redact_userinfo(indicator.original),
        "scope": enrichment.scope.reason.value,
        "public": enrichment.scope.is_public,
        "risk_score": enrichment.assessment.score,
        "verdict": enrichment.assessment.verdict.value,
        "reasons": list(enrichment.assessment.reasons),
        "sources_queried": len(queried),
        "sources_flagged": len(flagged),
        "flagged_by": flagged,
        "sources": [source_record(result) for result in results],
        "context": dict(enrichment.context),
        "cached": list(enrichment.cached),
        "took_ms": enrichment.took_ms,
    }


def source_record(result: SourceResult) -> dict[str, Any]:
    """Return the JSON-ready record of one source result."""
    record: dict[str, Any] = {
        "source": result.source,
        "status": result.status.value,
        "found": result.found,
        "flagged": result.flagged,
        "benign": result.benign,
        "confidence": result.confidence,
        "summary": result.summary,
    }
    optional: dict[str, Any] = {
        "categories": list(result.categories),
        "tags": list(result.tags),
        "first_seen": _iso(result.first_seen),
        "last_seen": _iso(result.last_seen),
        "reference": result.reference,
        "error": result.error,
        "retry_after": result.retry_after,
    }
    record.update({key: value for key, value in optional.items() if value})
    return record


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
