"""The FastAPI application of ``iocscope serve``.

``create_app`` wires the routes, the middleware and the error handlers. The
app's lifespan opens the runtime (engine, sources, feeds) once and closes it
at shutdown, so every request shares one engine, one cache and one HTTP
client pool.

Request path, outermost first: metrics, security headers, the error
boundary (request id, JSON errors), CORS when origins are configured, the
body size limit, then FastAPI's routing with the key check as a dependency.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from iocscope import __version__
from iocscope.api import routes_alerts, routes_enrich, routes_lookup, routes_page, routes_status
from iocscope.api.auth import KeyStore
from iocscope.api.limits import BodySizeLimit, KeyRateLimiter
from iocscope.api.metrics import Metrics, MetricsMiddleware
from iocscope.api.middleware import ErrorBoundary, SecurityHeaders, error_response
from iocscope.api.routes_docs import mount_docs
from iocscope.api.services import API_KEY_HEADER, Services
from iocscope.api.settings import ApiSettings, api_settings
from iocscope.config import Settings
from iocscope.engine.limits import Limiter
from iocscope.errors import AlertError, InvalidIndicatorError
from iocscope.runtime import LIMITS_FILE, open_runtime

logger = logging.getLogger(__name__)

# Validation problems listed in one 422 message; the rest are counted.
_MAX_LISTED_PROBLEMS = 5

DESCRIPTION = """Self-hosted threat-intelligence enrichment.

Every endpoint but `/healthz`, `/`, `/docs` and `/openapi.json` needs an API key
from `iocscope keys add NAME`, sent as `X-API-Key: <key>` or
`Authorization: Bearer <key>`.
"""


def create_app(settings: Settings, api: ApiSettings | None = None) -> FastAPI:
    """Build the app; the engine is opened by the app's lifespan, not here."""
    api = api or api_settings(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime:
            collector = metrics.watch(runtime)
            source_limits = Limiter(settings.data_dir / LIMITS_FILE)
            keys = KeyStore(api.keys_path(settings.data_dir))
            app.state.services = Services(
                runtime=runtime,
                api=api,
                keys=keys,
                rate_limiter=KeyRateLimiter(api.rate_per_minute, api.rate_burst),
                metrics=metrics,
                source_limits=source_limits,
            )
            _log_start(app.state.services)
            try:
                yield
            finally:
                app.state.services = None
                source_limits.close()
                metrics.unwatch(collector)
                logger.info("API stopped")

    app = FastAPI(
        title="iocscope",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    _add_error_handlers(app)
    for router in (
        routes_enrich.router,
        routes_lookup.router,
        routes_alerts.router,
        routes_status.router,
        routes_page.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=routes_page.STATIC_DIR), name="static")
    mount_docs(app)
    _add_middleware(app, api, metrics)
    return app


def _log_start(services: Services) -> None:
    runtime = services.runtime
    active = services.keys.active_count
    logger.info(
        "API ready: %d of %d sources enabled, %d API keys in %s",
        sum(state.enabled for state in runtime.states),
        len(runtime.states),
        active,
        services.keys.path,
    )
    if active == 0:
        logger.warning(
            "no active API key in %s: every request but /healthz gets 401 until you run "
            "iocscope keys add NAME",
            services.keys.path,
        )


def _add_middleware(app: FastAPI, api: ApiSettings, metrics: Metrics) -> None:
    # Starlette puts the middleware added last outermost.
    app.add_middleware(BodySizeLimit, limit=api.max_body_bytes)
    if api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(api.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=[API_KEY_HEADER, "Authorization", "Content-Type"],
            allow_credentials=False,
        )
    app.add_middleware(ErrorBoundary)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(MetricsMiddleware, metrics=metrics)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return error_response(request.scope, exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request.scope, 422, validation_message(exc))

    @app.exception_handler(InvalidIndicatorError)
    async def invalid_indicator(request: Request, exc: InvalidIndicatorError) -> Response:
        return error_response(request.scope, 422, str(exc), "invalid_indicator")

    @app.exception_handler(AlertError)
    async def invalid_alert(request: Request, exc: AlertError) -> Response:
        return error_response(request.scope, 422, str(exc), "invalid_alert")


def validation_message(exc: RequestValidationError) -> str:
    """Return one sentence listing where the request is invalid and why."""
    problems = [
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
        for error in exc.errors()
    ]
    listed = "; ".join(problems[:_MAX_LISTED_PROBLEMS])
    more = len(problems) - _MAX_LISTED_PROBLEMS
    suffix = f"; and {more} more" if more > 0 else ""
    return f"invalid request: {listed}{suffix}"


def build_server(app: FastAPI, host: str, port: int, log_level: str = "info") -> uvicorn.Server:
    """Return a uvicorn server for ``app``; ``port`` 0 picks a free port.

    Proxy headers are ignored (the client address is the peer's) and the
    ``Server`` header is not sent.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
        # iocscope configures logging itself; uvicorn's own config would replace it.
        log_config=None,
        # uvicorn's access log writes the query string, where a careless client
        # may put its key; iocscope.api.access logs method, path and status.
        access_log=False,
        lifespan="on",
    )
    return uvicorn.Server(config)
