"""Shared state of the endpoints (runtime, keys, limiters, metrics) and the key check.

``require_key`` is the dependency of every protected endpoint. It accepts
the key in ``X-API-Key`` (the header of hosted enrichment APIs) or as
``Authorization: Bearer``, checks it against the keys file, then takes a
token from the key's rate limit bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from iocscope.api.auth import KeyRecord, KeyStore
from iocscope.api.limits import KeyRateLimiter, retry_after_header
from iocscope.api.metrics import Metrics
from iocscope.api.settings import ApiSettings
from iocscope.engine.limits import Limiter
from iocscope.runtime import Runtime

API_KEY_HEADER = "X-API-Key"


@dataclass(frozen=True)
class Services:
    """The shared state of one running app, created by its lifespan."""

    runtime: Runtime
    api: ApiSettings
    keys: KeyStore
    rate_limiter: KeyRateLimiter
    metrics: Metrics
    # A second handle on the limits database, to report budgets in /v1/sources.
    source_limits: Limiter


def get_services(request: Request) -> Services:
    services = getattr(request.app.state, "services", None)
    if not isinstance(services, Services):
        # The lifespan has not run: the app was mounted without it.
        raise HTTPException(status_code=503, detail="the service is starting; retry shortly")
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

_api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, description="An API key from `iocscope keys add`."
)
_bearer_scheme = HTTPBearer(
    auto_error=False, description="The same API key as `Authorization: Bearer <key>`."
)


def require_key(
    services: ServicesDep,
    api_key: Annotated[str | None, Depends(_api_key_scheme)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> KeyRecord:
    """Return the record of the presented key; raise 401 or 429 otherwise."""
    presented = api_key or (bearer.credentials if bearer is not None else None)
    if not presented:
        raise _unauthorized(
            f"missing API key: send it in the {API_KEY_HEADER} header or as Authorization: Bearer"
        )
    record = services.keys.authenticate(presented)
    if record is None:
        raise _unauthorized("invalid or revoked API key")
    wait = services.rate_limiter.acquire(record.key_id, record.rate_per_minute)
    if wait is not None:
        retry = retry_after_header(wait)
        raise HTTPException(
            status_code=429,
            detail=f"rate limit of this API key reached; retry in {retry} s",
            headers={"Retry-After": retry},
        )
    return record


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


KeyDep = Annotated[KeyRecord, Depends(require_key)]
