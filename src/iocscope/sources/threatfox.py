"""ThreatFox (abuse.ch): indicators of compromise tied to a malware family.

Every ThreatFox record is an indicator that a reporter attributed to malware,
so a match is flagged with the record's own ``confidence_level`` (0-100).
Addresses are stored as ``ip:port``, so ``search_ioc`` is sent with the bare
value and only records whose indicator is that value, with or without a port,
count as matches. A file hash is looked up with ``search_hash``, which returns
the indicators that ThreatFox links to that sample: any such record flags the
hash as malware.

The API responds with HTTP 200 and a ``query_status``: ``ok``, ``no_result``
(not listed; its ``data`` is a sentence, not a list), ``illegal_search_term``,
``illegal_hash`` and ``unknown_auth_key``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import httpx
from pydantic import BeforeValidator, Field

from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources import abusech
from iocscope.sources.abusech import AuthKey, Payload, Tags, Timestamp, count, unique
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.http import Sleep

NAME = "threatfox"
DEFAULT_BASE_URL = "https://threatfox-api.abuse.ch"
API_PATH = "/api/v1/"
# "no_result" is what search_ioc returns; the others are tolerated spellings.
NOT_LISTED = frozenset({"no_result", "no_results", "hash_not_found"})
HASH_TYPES = frozenset({IndicatorType.MD5, IndicatorType.SHA256})

META = SourceMeta(
    name=NAME,
    title="ThreatFox",
    kind=SourceKind.API,
    types=frozenset(
        {
            IndicatorType.IPV4,
            IndicatorType.IPV6,
            IndicatorType.DOMAIN,
            IndicatorType.URL,
            IndicatorType.MD5,
            IndicatorType.SHA256,
        }
    ),
    needs_key=True,
    weight=0.7,
    timeout=5.0,
    rate_per_minute=abusech.RATE_PER_MINUTE,
    reference="https://threatfox.abuse.ch",
    licence=abusech.LICENCE,
)


def _as_text(value: Any) -> Any:
    # Record ids are JSON strings today ("41"); accept numbers as well.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class _Record(Payload):
    """One ThreatFox IOC record, limited to the fields iocscope uses."""

    id: Annotated[str, BeforeValidator(_as_text)]
    ioc: str
    ioc_type: str | None = None
    threat_type: str | None = None
    malware: str | None = None
    malware_printable: str | None = None
    malware_malpedia: str | None = None
    confidence_level: int = Field(default=0, ge=0, le=100)
    first_seen: Timestamp = None
    last_seen: Timestamp = None
    reference: str | None = None
    tags: Tags = ()


class _Answer(Payload):
    data: tuple[_Record, ...]


class ThreatFoxSource:
    """Looks indicators up with ThreatFox ``search_ioc`` and ``search_hash``.

    The Auth-Key travels only in the ``Auth-Key`` header.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        key: AuthKey,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = META.timeout,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self._key = key
        self._url = base_url.rstrip("/") + API_PATH
        self._timeout = timeout
        self._sleep = sleep

    @property
    def meta(self) -> SourceMeta:
        return META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Look one indicator up; "not listed" is a result with found False."""
        by_hash = indicator.type in HASH_TYPES
        query = (
            {"query": "search_hash", "hash": indicator.value}
            if by_hash
            else {"query": "search_ioc", "search_term": indicator.value}
        )
        payload = await abusech.post(
            self._http,
            NAME,
            self._url,
            self._key,
            timeout=self._timeout,
            sleep=self._sleep,
            json=query,
        )
        status = payload["query_status"]
        if status in NOT_LISTED:
            return _not_listed(payload, ignored=0)
        if status != "ok":
            abusech.raise_for_status(NAME, status, indicator.value, self._key.hint)
        records = abusech.validate(NAME, _Answer, payload).data
        matches = records if by_hash else tuple(r for r in records if _matches(r, indicator))
        if not matches:
            return _not_listed(payload, ignored=len(records))
        return _result(matches, payload, by_hash=by_hash)


def create(deps: SourceDeps) -> Source:
    """Build the source; raise ``SourceUnavailableError`` naming the variables without a key."""
    settings = deps.settings.source(NAME)
    return ThreatFoxSource(
        deps.http,
        abusech.resolve_auth_key(NAME, META.title, settings),
        base_url=settings.base_url or DEFAULT_BASE_URL,
        timeout=settings.timeout or META.timeout,
    )


def _matches(record: _Record, indicator: Indicator) -> bool:
    ioc = record.ioc.strip()
    if indicator.type is IndicatorType.URL:
        return ioc == indicator.value
    ioc = ioc.lower()
    if indicator.type.is_ip:
        return _address_of(ioc) == indicator.value.lower()
    return ioc == indicator.value


def _address_of(ioc: str) -> str:
    """Return the address of ``203.0.113.5:443``, ``[2001:db8::1]:443`` or a bare address."""
    if ioc.startswith("["):
        return ioc[1 : ioc.find("]")]
    if ioc.count(":") == 1:
        return ioc.split(":", 1)[0]
    return ioc


def _not_listed(payload: Any, ignored: int) -> SourceResult:
    # A search term also finds records that merely contain it; those are not this indicator.
    context = {"partial_matches_ignored": ignored} if ignored else {}
    return SourceResult(
        source=NAME,
        status=Status.OK,
        summary="not listed by ThreatFox",
        context=context,
        raw=payload,
    )


def _result(records: tuple[_Record, ...], payload: Any, *, by_hash: bool) -> SourceResult:
    best = max(records, key=lambda record: record.confidence_level)
    family = best.malware_printable or best.malware or "unknown malware"
    first = [record.first_seen for record in records if record.first_seen is not None]
    last = [record.last_seen for record in records if record.last_seen is not None]
    noun = "linked IOC record" if by_hash else "IOC record"
    malware = [record.malware_printable or record.malware or "" for record in records]
    summary = f"{family} {best.threat_type or 'indicator'} (confidence {best.confidence_level})"
    summary += f"; {count(len(records), noun)}"
    if first:
        summary += f"; first seen {min(first).date().isoformat()}"
    context = {
        "records": len(records),
        "malware": list(unique(malware)),
        "ioc_types": list(unique([record.ioc_type or "" for record in records])),
        "malpedia": best.malware_malpedia,
        "external_references": list(unique([record.reference or "" for record in records])),
    }
    return SourceResult(
        source=NAME,
        status=Status.OK,
        found=True,
        flagged=True,
        # A stated 0 would read as "confidence not stated" in scoring, which counts as 100.
        confidence=max(best.confidence_level, 1),
        categories=unique([record.threat_type or "" for record in records]),
        tags=unique(malware + [tag for record in records for tag in record.tags]),
        first_seen=min(first, default=None),
        last_seen=max(last, default=None),
        reference=f"https://threatfox.abuse.ch/ioc/{best.id}/",
        summary=summary,
        context={key: value for key, value in context.items() if value not in (None, [])},
        raw=payload,
    )
