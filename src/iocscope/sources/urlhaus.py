"""URLhaus (abuse.ch): URLs that distribute malware, the hosts that serve them and their payloads.

A URL listed by URLhaus is flagged with a confidence that follows what URLhaus
last saw: a URL that is online now counts more than one that was taken down. A
host (domain or IPv4 address) is flagged with less confidence than a URL,
because URLhaus lists shared and compromised hosts too: a whole site or cloud
address is listed when one URL on it served malware. A payload hash is flagged
when URLhaus saw a malware URL deliver that file.

The API responds with HTTP 200 and a ``query_status``: ``ok``, ``no_results``
(not listed), ``invalid_url``, ``invalid_host``, ``invalid_md5_hash`` or
``invalid_sha256_hash`` (some documentation spells them ``invalid_md5`` and
``invalid_sha256``; every ``invalid_*`` is handled alike), ``http_post_expected``
and ``unknown_auth_key``. A missing or unknown Auth-Key can also come back as
HTTP 401 or 403; both are authentication errors and never "not listed".
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from types import MappingProxyType
from typing import Any

import httpx

from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources import abusech
from iocscope.sources.abusech import AuthKey, Payload, Tags, Timestamp, count, unique
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.http import Sleep

NAME = "urlhaus"
DEFAULT_BASE_URL = "https://urlhaus-api.abuse.ch"
URL_PATH = "/v1/url/"
HOST_PATH = "/v1/host/"
PAYLOAD_PATH = "/v1/payload/"
NOT_LISTED = "no_results"

# Confidence of a listed URL by its url_status.
URL_CONFIDENCE = MappingProxyType({"online": 100, "unknown": 75, "offline": 50})
# A listed host: lower than a URL because one bad URL lists a whole shared host.
HOST_ONLINE_CONFIDENCE = 70
HOST_OFFLINE_CONFIDENCE = 40
PAYLOAD_CONFIDENCE = 90

META = SourceMeta(
    name=NAME,
    title="URLhaus",
    kind=SourceKind.API,
    types=frozenset(
        {
            IndicatorType.URL,
            IndicatorType.DOMAIN,
            IndicatorType.IPV4,
            IndicatorType.MD5,
            IndicatorType.SHA256,
        }
    ),
    needs_key=True,
    weight=0.8,
    timeout=5.0,
    rate_per_minute=abusech.RATE_PER_MINUTE,
    reference="https://urlhaus.abuse.ch",
    licence=abusech.LICENCE,
)


class _Blacklists(Payload):
    spamhaus_dbl: str | None = None
    surbl: str | None = None


class _UrlAnswer(Payload):
    """The response of ``/v1/url/``, limited to the fields iocscope uses."""

    url: str
    url_status: str
    urlhaus_reference: str
    host: str | None = None
    threat: str | None = None
    date_added: Timestamp = None
    last_online: Timestamp = None
    tags: Tags = ()
    blacklists: _Blacklists | None = None
    payloads: list[Any] | None = None


class _HostUrl(Payload):
    url: str
    url_status: str = "unknown"
    threat: str | None = None
    date_added: Timestamp = None
    tags: Tags = ()


class _HostAnswer(Payload):
    """The response of ``/v1/host/``; ``urls`` may be capped, ``url_count`` is the total."""

    host: str
    urlhaus_reference: str
    firstseen: Timestamp = None
    url_count: int | None = None
    blacklists: _Blacklists | None = None
    urls: tuple[_HostUrl, ...] = ()


class _VirusTotal(Payload):
    result: str | None = None
    percent: float | None = None
    link: str | None = None


class _PayloadAnswer(Payload):
    """The response of ``/v1/payload/``."""

    md5_hash: str
    sha256_hash: str
    file_type: str | None = None
    file_size: int | None = None
    signature: str | None = None
    firstseen: Timestamp = None
    lastseen: Timestamp = None
    url_count: int | None = None
    virustotal: _VirusTotal | None = None


class UrlhausSource:
    """Looks URLs, hosts and payload hashes up in the URLhaus API v1.

    The Auth-Key travels only in the ``Auth-Key`` header; the indicator is a
    form field of the POST body, as the API requires.
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
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._sleep = sleep

    @property
    def meta(self) -> SourceMeta:
        return META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Look one indicator up; "not listed" is a result with found False."""
        path, form = _query(indicator)
        payload = await abusech.post(
            self._http,
            NAME,
            self._base_url + path,
            self._key,
            timeout=self._timeout,
            sleep=self._sleep,
            form=form,
        )
        status = payload["query_status"]
        if status == NOT_LISTED:
            return SourceResult(
                source=NAME, status=Status.OK, summary="not listed by URLhaus", raw=payload
            )
        if status != "ok":
            abusech.raise_for_status(NAME, status, indicator.value, self._key.hint)
        if path == URL_PATH:
            return _url_result(abusech.validate(NAME, _UrlAnswer, payload), payload)
        if path == HOST_PATH:
            return _host_result(abusech.validate(NAME, _HostAnswer, payload), payload)
        return _payload_result(abusech.validate(NAME, _PayloadAnswer, payload), payload)


def create(deps: SourceDeps) -> Source:
    """Build the source; raise ``SourceUnavailableError`` naming the variables without a key."""
    settings = deps.settings.source(NAME)
    return UrlhausSource(
        deps.http,
        abusech.resolve_auth_key(NAME, META.title, settings),
        base_url=settings.base_url or DEFAULT_BASE_URL,
        timeout=settings.timeout or META.timeout,
    )


def _query(indicator: Indicator) -> tuple[str, dict[str, str]]:
    kind = indicator.type
    if kind is IndicatorType.URL:
        return URL_PATH, {"url": indicator.value}
    if kind in (IndicatorType.DOMAIN, IndicatorType.IPV4):
        return HOST_PATH, {"host": indicator.value}
    if kind is IndicatorType.MD5:
        return PAYLOAD_PATH, {"md5_hash": indicator.value}
    if kind is IndicatorType.SHA256:
        return PAYLOAD_PATH, {"sha256_hash": indicator.value}
    raise ValueError(f"URLhaus cannot look up indicators of type {kind}")


def _url_result(answer: _UrlAnswer, payload: Any) -> SourceResult:
    status = answer.url_status
    confidence = URL_CONFIDENCE.get(status)
    if confidence is None:
        abusech.warn_drift(NAME, "url_status", status)
        confidence = URL_CONFIDENCE["unknown"]
    parts = [f"listed as {answer.threat or 'malware'}, {status}"]
    if answer.date_added is not None:
        parts.append(f"added {answer.date_added.date().isoformat()}")
    parts.extend(_blacklist_parts(answer.blacklists))
    if answer.tags:
        parts.append(f"tags {', '.join(answer.tags)}")
    context = {
        "url_status": status,
        "threat": answer.threat,
        "host": answer.host,
        "payloads": len(answer.payloads or ()),
        **_blacklist_context(answer.blacklists),
    }
    return _flagged(
        confidence,
        categories=unique([answer.threat or ""]),
        tags=answer.tags,
        first_seen=answer.date_added,
        last_seen=answer.last_online,
        reference=answer.urlhaus_reference,
        summary="; ".join(parts),
        context=context,
        payload=payload,
    )


def _host_result(answer: _HostAnswer, payload: Any) -> SourceResult:
    online = sum(1 for url in answer.urls if url.url_status == "online")
    for url in answer.urls:
        if url.url_status not in URL_CONFIDENCE:
            abusech.warn_drift(NAME, "urls.url_status", url.url_status)
    total = answer.url_count if answer.url_count is not None else len(answer.urls)
    added = [url.date_added for url in answer.urls if url.date_added is not None]
    threats = unique([url.threat or "" for url in answer.urls])
    parts = [f"{count(total, 'malware URL')} listed, {online} online"]
    if answer.firstseen is not None:
        parts.append(f"first seen {answer.firstseen.date().isoformat()}")
    parts.extend(_blacklist_parts(answer.blacklists))
    return _flagged(
        HOST_ONLINE_CONFIDENCE if online else HOST_OFFLINE_CONFIDENCE,
        categories=threats,
        tags=unique([tag for url in answer.urls for tag in url.tags]),
        first_seen=answer.firstseen,
        last_seen=max(added, default=None),
        reference=answer.urlhaus_reference,
        summary="; ".join(parts),
        context={
            "url_count": total,
            "online_urls": online,
            **_blacklist_context(answer.blacklists),
        },
        payload=payload,
    )


def _payload_result(answer: _PayloadAnswer, payload: Any) -> SourceResult:
    urls = answer.url_count or 0
    parts = [f"payload delivered by {count(urls, 'malware URL')}"]
    if answer.file_type:
        parts.append(f"file type {answer.file_type}")
    if answer.signature:
        parts.append(f"signature {answer.signature}")
    if answer.virustotal is not None and answer.virustotal.result:
        parts.append(f"VirusTotal {answer.virustotal.result}")
    context = {
        "file_type": answer.file_type,
        "file_size": answer.file_size,
        "signature": answer.signature,
        "url_count": urls,
        "md5": answer.md5_hash,
        "sha256": answer.sha256_hash,
    }
    return _flagged(
        PAYLOAD_CONFIDENCE,
        categories=("malware",),
        tags=unique([answer.signature or ""]),
        first_seen=answer.firstseen,
        last_seen=answer.lastseen,
        reference=f"https://urlhaus.abuse.ch/browse.php?search={answer.sha256_hash}",
        summary="; ".join(parts),
        context={key: value for key, value in context.items() if value is not None},
        payload=payload,
    )


def _flagged(
    confidence: int,
    *,
    categories: tuple[str, ...],
    tags: tuple[str, ...],
    first_seen: datetime | None,
    last_seen: datetime | None,
    reference: str,
    summary: str,
    context: dict[str, Any],
    payload: Any,
) -> SourceResult:
    return SourceResult(
        source=NAME,
        status=Status.OK,
        found=True,
        flagged=True,
        confidence=confidence,
        categories=categories,
        tags=tags,
        first_seen=first_seen,
        last_seen=last_seen,
        reference=reference,
        summary=summary,
        context=context,
        raw=payload,
    )


def _blacklist_parts(lists: _Blacklists | None) -> list[str]:
    parts: list[str] = []
    if lists is None:
        return parts
    if lists.spamhaus_dbl and lists.spamhaus_dbl != "not listed":
        parts.append(f"Spamhaus DBL {lists.spamhaus_dbl}")
    if lists.surbl and lists.surbl != "not listed":
        parts.append(f"SURBL {lists.surbl}")
    return parts


def _blacklist_context(lists: _Blacklists | None) -> dict[str, str]:
    if lists is None:
        return {}
    context = {"spamhaus_dbl": lists.spamhaus_dbl, "surbl": lists.surbl}
    return {key: value for key, value in context.items() if value}
