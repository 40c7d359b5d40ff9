"""OpenCTI: the score, indicators and labels your own OpenCTI platform holds for an observable.

One GraphQL query (``POST {base_url}/graphql``) finds the STIX cyber observables
whose value, or whose file hash, is the indicator. The highest
``x_opencti_score`` of those observables and of their indicators that are not
revoked becomes the confidence, and a score from ``FLAG_THRESHOLD`` up flags the
indicator. An observable with a lower score is a clean answer. The filter uses
the ``FilterGroup`` format, so OpenCTI 5.12 or later is required; an older
platform responds with a GraphQL error that names the filter.

OpenCTI reports GraphQL errors with HTTP 200 or 400 and an ``errors`` list.
An ``AUTH_REQUIRED`` or ``FORBIDDEN_ACCESS`` code is an authentication error.

The platform is self-hosted, yet it is asked like any other third party: the
engine decides, from the scope rules, whether an indicator may be sent to it.
TLS certificates are always verified; for a private CA, set ``SSL_CERT_FILE``
as described in ``iocscope.sources.misp``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from iocscope.config import resolve_api_key
from iocscope.errors import AuthenticationError, BadResponseError, SourceUnavailableError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import Source, SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.drift import expect_object, parse_response, warn_drift
from iocscope.sources.http import Sleep, key_env, key_hint, request_json

log = logging.getLogger(__name__)

NAME = "opencti"
GRAPHQL_PATH = "/graphql"
FLAG_THRESHOLD = 50  # x_opencti_score (0-100) from which an observable is flagged
MAX_OBSERVABLES = 10
MAX_INDICATORS = 10  # per observable
AUTH_CODES = frozenset({"AUTH_REQUIRED", "FORBIDDEN_ACCESS", "UNAUTHENTICATED"})
# Filter keys of file hashes; every other type is matched on "value".
HASH_KEYS = MappingProxyType(
    {
        IndicatorType.MD5: "hashes.MD5",
        IndicatorType.SHA1: "hashes.SHA-1",
        IndicatorType.SHA256: "hashes.SHA-256",
        IndicatorType.SHA512: "hashes.SHA-512",
    }
)

QUERY = """
query IocscopeObservables($filters: FilterGroup, $first: Int, $indicators: Int) {
  stixCyberObservables(filters: $filters, first: $first) {
    edges {
      node {
        id
        entity_type
        observable_value
        x_opencti_score
        created_at
        updated_at
        objectLabel { value }
        indicators(first: $indicators) {
          edges { node { id name x_opencti_score indicator_types revoked } }
        }
      }
    }
  }
}
"""

META = SourceMeta(
    name=NAME,
    title="OpenCTI",
    kind=SourceKind.API,
    types=frozenset(IndicatorType),
    needs_key=True,
    weight=0.7,
    # A self-hosted platform responds to a filtered search more slowly than a cloud API.
    timeout=10.0,
    # Self-hosted: no provider limit or budget applies.
    rate_per_minute=None,
    reference="https://filigran.io/solutions/open-cti/",
    licence="your own OpenCTI platform; the markings of its data apply",
)


_DRIFT_MESSAGE = (
    "source=%(source)s field=%(field)s has an unexpected value %(value).80r; it is ignored "
    "(the OpenCTI API may have changed)"
)


def _score(value: Any) -> int | None:
    """Read an ``x_opencti_score``; a value that is not a number from 0 to 100 is dropped."""
    if value is None:
        return None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = int(value)
        except ValueError:
            number = -1
        if 0 <= number <= 100:
            return number
    warn_drift(log, NAME, "x_opencti_score", value, _DRIFT_MESSAGE)
    return None


def _nodes(value: Any) -> Any:
    # Connections arrive as {"edges": [{"node": ...}]}; labels are a plain list
    # since OpenCTI 5.12 and a connection before.
    if isinstance(value, dict) and isinstance(value.get("edges"), list):
        return [edge.get("node") for edge in value["edges"] if isinstance(edge, dict)]
    return [] if value is None else value


Score = Annotated[int | None, BeforeValidator(_score)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class _Label(_Model):
    value: str


class _Indicator(_Model):
    id: str
    name: str = ""
    x_opencti_score: Score = None
    indicator_types: tuple[str, ...] | None = None
    revoked: bool = False


class _Observable(_Model):
    id: str
    entity_type: str
    observable_value: str | None = None
    x_opencti_score: Score = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    labels: Annotated[tuple[_Label, ...], BeforeValidator(_nodes)] = Field(
        default=(), alias="objectLabel"
    )
    indicators: Annotated[tuple[_Indicator, ...], BeforeValidator(_nodes)] = ()


class _Observables(_Model):
    observables: Annotated[tuple[_Observable, ...], BeforeValidator(_nodes)] = Field(
        alias="stixCyberObservables"
    )


class OpenCtiSource:
    """Searches the STIX cyber observables of one OpenCTI platform.

    The key travels only in the ``Authorization: Bearer`` header.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: SecretStr,
        *,
        base_url: str,
        timeout: float = META.timeout,
        threshold: int = FLAG_THRESHOLD,
        key_hint: str = f"check IOCSCOPE_{NAME.upper()}_API_KEY",
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._threshold = threshold
        self._key_hint = key_hint
        self._sleep = sleep

    @property
    def meta(self) -> SourceMeta:
        return META

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Search one value; a value OpenCTI does not hold is a result with found False."""
        _, payload = await request_json(
            self._http,
            NAME,
            "POST",
            self._base_url + GRAPHQL_PATH,
            headers={
                "Authorization": f"Bearer {self._api_key.get_secret_value()}",
                "Accept": "application/json",
            },
            json={"query": QUERY, "variables": _variables(indicator)},
            timeout=self._timeout,
            # The engine bounds the whole lookup by the same timeout, so
            # retries happen only when they fit inside it.
            deadline=self._timeout,
            sleep=self._sleep,
            # Apollo returns 400 and an errors list for a query that fails validation.
            expect=(200, 400),
            key_hint=self._key_hint,
        )
        observables = self._parse(payload)
        if not observables:
            summary = "not in OpenCTI"
            return SourceResult(source=NAME, status=Status.OK, summary=summary, raw=payload)
        return _result(observables, payload, self._base_url, self._threshold)

    def _parse(self, payload: Any) -> tuple[_Observable, ...]:
        payload = expect_object(NAME, payload)
        errors = payload.get("errors")
        if isinstance(errors, list) and errors:
            raise _graphql_error(errors, self._key_hint)
        data = payload.get("data")
        if not isinstance(data, dict):
            message = "returned a response in an unexpected format (no data object)"
            raise BadResponseError(NAME, message)
        return parse_response(NAME, _Observables, data).observables


def create(deps: SourceDeps) -> Source:
    """Build the source; raise ``SourceUnavailableError`` without a base URL or a key."""
    settings = deps.settings.source(NAME)
    if not settings.base_url:
        raise SourceUnavailableError(
            f"OpenCTI needs the address of your platform: set sources.{NAME}.base_url "
            "(for example https://opencti.example.org)"
        )
    key = resolve_api_key(NAME, settings)
    if key is None:
        raise SourceUnavailableError(
            "OpenCTI needs an API key (the token of an OpenCTI user): "
            f"set {key_env(NAME, settings)} or sources.{NAME}.api_key_file"
        )
    if settings.base_url.startswith("http://"):
        log.warning("source=%s base_url uses http: the API key travels unencrypted", NAME)
    return OpenCtiSource(
        deps.http,
        key,
        base_url=settings.base_url,
        timeout=settings.timeout or META.timeout,
        key_hint=key_hint(NAME, settings),
    )


def _variables(indicator: Indicator) -> dict[str, Any]:
    key = HASH_KEYS.get(indicator.type, "value")
    condition = {"key": key, "values": [indicator.value], "operator": "eq", "mode": "or"}
    return {
        "filters": {"mode": "and", "filters": [condition], "filterGroups": []},
        "first": MAX_OBSERVABLES,
        "indicators": MAX_INDICATORS,
    }


def _graphql_error(errors: list[Any], key_hint: str) -> Exception:
    first = errors[0] if isinstance(errors[0], dict) else {}
    message = str(first.get("message") or "no message")
    extensions = first.get("extensions")
    code = str(extensions.get("code", "")) if isinstance(extensions, dict) else ""
    detail = f"{code}: {message}" if code else message
    if code in AUTH_CODES:
        return AuthenticationError(NAME, f"the API key was rejected ({detail}); {key_hint}")
    return BadResponseError(NAME, f"returned a GraphQL error ({detail})")


def _result(
    observables: tuple[_Observable, ...], payload: Any, base_url: str, threshold: int
) -> SourceResult:
    active = [i for o in observables for i in o.indicators if not i.revoked]
    scores = [o.x_opencti_score for o in observables] + [i.x_opencti_score for i in active]
    score = max((value for value in scores if value is not None), default=None)
    best = max(observables, key=lambda observable: observable.x_opencti_score or 0)
    created = [o.created_at for o in observables if o.created_at is not None]
    updated = [o.updated_at for o in observables if o.updated_at is not None]
    flagged = score is not None and score >= threshold
    return SourceResult(
        source=NAME,
        status=Status.OK,
        found=True,
        flagged=flagged,
        confidence=score or 0,
        categories=_unique([kind for i in active for kind in i.indicator_types or ()]),
        tags=_unique([label.value for o in observables for label in o.labels]),
        first_seen=min(created, default=None),
        last_seen=max(updated, default=None),
        reference=f"{base_url}/dashboard/observations/observables/{best.id}",
        summary=_summary(score, threshold, active, observables),
        context={
            "score": score,
            "observables": len(observables),
            "entity_types": list(_unique([o.entity_type for o in observables])),
            "indicators": [i.name for i in active],
        },
        raw=payload,
    )


def _summary(
    score: int | None,
    threshold: int,
    active: list[_Indicator],
    observables: tuple[_Observable, ...],
) -> str:
    parts = [f"score {score} (flag threshold {threshold})" if score is not None else "no score"]
    if active:
        names = ", ".join(f'"{indicator.name}"' for indicator in active[:3] if indicator.name)
        noun = "indicator" if len(active) == 1 else "indicators"
        parts.append(f"{len(active)} {noun}" + (f" ({names})" if names else ""))
    labels = _unique([label.value for o in observables for label in o.labels])
    if labels:
        parts.append(f"labels {', '.join(labels)}")
    return "; ".join(parts)


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))
