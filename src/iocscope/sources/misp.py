"""MISP: the attributes your own MISP instance holds for an indicator.

``POST {base_url}/attributes/restSearch`` finds every attribute whose value is
the indicator, with the tags of the attribute and of its event and with
warning list hits. An attribute marked ``to_ids`` (meant for detection) flags
the indicator. MISP states no confidence, so a flag carries none and the
source weight alone sets how far it is trusted. A warning list hit (a list of
known benign or shared infrastructure) is a benign hint. Attributes without
``to_ids`` make the indicator known but not flagged.

The instance is self-hosted, yet it is asked like any other third party: the
engine decides, from the scope rules, whether an indicator may be sent to it.

TLS certificates are always verified. For an instance behind a private CA, set
``SSL_CERT_FILE`` (or ``SSL_CERT_DIR``) before iocscope starts: httpx reads it
when the shared client is built, and it then replaces the default roots for
every source, so the bundle must hold the public roots as well as the private CA.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Annotated, Any

import httpx
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)

from iocscope.config import resolve_api_key
from iocscope.errors import BadResponseError, SourceUnavailableError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.drift import parse_response, warn_drift
from iocscope.sources.http import Sleep, key_env, key_hint, request_json

log = logging.getLogger(__name__)

NAME = "misp"
SEARCH_PATH = "/attributes/restSearch"
# Attributes requested per lookup. The limit bounds the response for a value
# that appears in many events, and more would not change the result.
MAX_ATTRIBUTES = 100

META = SourceMeta(
    name=NAME,
    title="MISP",
    kind=SourceKind.API,
    types=frozenset(IndicatorType),
    needs_key=True,
    # Instances often import public feeds with to_ids set on every attribute,
    # so one MISP flag alone reaches "suspicious", not "malicious".
    weight=0.6,
    # A self-hosted instance responds to a value search more slowly than a cloud API.
    timeout=10.0,
    # Self-hosted: no provider limit or budget applies.
    rate_per_minute=None,
    reference="https://www.misp-project.org",
    licence="your own MISP instance; each event's distribution and TLP tags apply",
)

_TIME = TypeAdapter(datetime)
_DRIFT_MESSAGE = (
    "source=%(source)s field=%(field)s has an unexpected value %(value).80r; it is ignored "
    "(the MISP API may have changed)"
)


def _lenient_time(value: Any, info: ValidationInfo) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return _TIME.validate_python(value)
    except ValidationError:
        warn_drift(log, NAME, info.field_name or "time", value, _DRIFT_MESSAGE)
        return None


def _as_text(value: Any) -> Any:
    # MISP sends ids as strings; some versions and proxies turn them into numbers.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Time = Annotated[datetime | None, BeforeValidator(_lenient_time)]
Text = Annotated[str, BeforeValidator(_as_text)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class _Tag(_Model):
    name: str


class _Warning(_Model):
    warninglist_name: str


class _Event(_Model):
    id: Text
    info: str = ""


class _Attribute(_Model):
    """One attribute of a restSearch response, limited to the fields iocscope uses."""

    id: Text
    event_id: Text
    type: str
    category: str | None = None
    to_ids: bool = False
    value: str
    timestamp: Time = None
    first_seen: Time = None
    last_seen: Time = None
    event: _Event | None = Field(default=None, alias="Event")
    tags: tuple[_Tag, ...] = Field(default=(), alias="Tag")
    warnings: tuple[_Warning, ...] = ()


class _Found(_Model):
    attributes: tuple[_Attribute, ...] = Field(default=(), alias="Attribute")


class MispSource:
    """Searches the attributes of one MISP instance by value.

    The key travels only in the ``Authorization`` header, as MISP expects it
    (the bare key, with no scheme).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: SecretStr,
        *,
        base_url: str,
        timeout: float = META.timeout,
        key_hint: str = f"check IOCSCOPE_{NAME.upper()}_API_KEY",
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._key_hint = key_hint
        self._sleep = sleep

    @property
    def meta(self) -> SourceMeta:
        return META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Search one value; a value MISP does not hold is a result with found False."""
        _, payload = await request_json(
            self._http,
            NAME,
            "POST",
            self._base_url + SEARCH_PATH,
            headers={
                "Authorization": self._api_key.get_secret_value(),
                "Accept": "application/json",
            },
            json={
                "returnFormat": "json",
                "value": indicator.value,
                "includeWarninglistHits": True,
                "includeEventTags": True,
                "limit": MAX_ATTRIBUTES,
                "page": 1,
            },
            timeout=self._timeout,
            # The engine bounds the whole lookup by the same timeout, so
            # retries happen only when they fit inside it.
            deadline=self._timeout,
            sleep=self._sleep,
            key_hint=self._key_hint,
        )
        attributes = _parse(payload)
        if not attributes:
            return SourceResult(source=NAME, status=Status.OK, summary="not in MISP", raw=payload)
        return _result(attributes, payload, self._base_url)


def create(deps: SourceDeps) -> Source:
    """Build the source; raise ``SourceUnavailableError`` without a base URL or a key."""
    settings = deps.settings.source(NAME)
    if not settings.base_url:
        raise SourceUnavailableError(
            f"MISP needs the address of your instance: set sources.{NAME}.base_url "
            "(for example https://misp.example.org)"
        )
    key = resolve_api_key(NAME, settings)
    if key is None:
        raise SourceUnavailableError(
            f"MISP needs an API key: set {key_env(NAME, settings)} or sources.{NAME}.api_key_file"
        )
    if settings.base_url.startswith("http://"):
        log.warning("source=%s base_url uses http: the API key travels unencrypted", NAME)
    return MispSource(
        deps.http,
        key,
        base_url=settings.base_url,
        timeout=settings.timeout or META.timeout,
        key_hint=key_hint(NAME, settings),
    )


def _parse(payload: Any) -> tuple[_Attribute, ...]:
    found = payload.get("response") if isinstance(payload, dict) else None
    if found == []:
        # Some MISP versions return an empty list for a search without matches.
        return ()
    if not isinstance(found, dict):
        message = "returned a response in an unexpected format (no response object)"
        raise BadResponseError(NAME, message)
    return parse_response(NAME, _Found, found).attributes


def _result(attributes: tuple[_Attribute, ...], payload: Any, base_url: str) -> SourceResult:
    for_ids = [attribute for attribute in attributes if attribute.to_ids]
    warnings = _unique(
        [warning.warninglist_name for attribute in attributes for warning in attribute.warnings]
    )
    first = _times([attribute.first_seen or attribute.timestamp for attribute in attributes])
    last = _times([attribute.last_seen or attribute.timestamp for attribute in attributes])
    main = (for_ids or list(attributes))[0]
    return SourceResult(
        source=NAME,
        status=Status.OK,
        found=True,
        flagged=bool(for_ids),
        benign=bool(warnings),
        categories=_unique([attribute.category or "" for attribute in for_ids or attributes]),
        tags=_unique([tag.name for attribute in attributes for tag in attribute.tags]),
        first_seen=min(first, default=None),
        last_seen=max(last, default=None),
        reference=f"{base_url}/events/view/{main.event_id}",
        summary=_summary(attributes, len(for_ids), warnings),
        context={
            "events": [{"id": event_id, "info": info} for event_id, info in _events(attributes)],
            "attributes": len(attributes),
            "for_ids": len(for_ids),
            "types": list(_unique([attribute.type for attribute in attributes])),
            "warninglists": list(warnings),
        },
        raw=payload,
    )


def _summary(attributes: tuple[_Attribute, ...], for_ids: int, warnings: tuple[str, ...]) -> str:
    events = _events(attributes)
    titles = ", ".join(f'"{info}"' for _, info in events[:3] if info)
    noun = "event" if len(events) == 1 else "events"
    parts = [f"in {len(events)} {noun}" + (f" ({titles})" if titles else "")]
    parts.append(f"{for_ids} of {len(attributes)} attributes marked for IDS")
    if warnings:
        parts.append(f"on warning list {', '.join(warnings)}")
    if len(attributes) >= MAX_ATTRIBUTES:
        parts.append(f"only the first {MAX_ATTRIBUTES} attributes were read")
    return "; ".join(parts)


def _events(attributes: tuple[_Attribute, ...]) -> list[tuple[str, str]]:
    infos: dict[str, str] = {}
    for attribute in attributes:
        info = attribute.event.info if attribute.event is not None else ""
        infos.setdefault(attribute.event_id, info)
    return list(infos.items())


def _times(values: list[datetime | None]) -> list[datetime]:
    return [value for value in values if value is not None]


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))
