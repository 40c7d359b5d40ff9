"""ASGI middleware: request ids, the error boundary and security headers.

Every error body has the same shape, ``{"detail", "code", "request_id"}``,
and never carries a traceback. An unexpected exception becomes a 500 whose
body names only the request id; the traceback goes to the log under that id.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

access_logger = logging.getLogger("iocscope.api.access")

REQUEST_ID_KEY = "iocscope.request_id"
REQUEST_ID_HEADER = "X-Request-ID"

# The analyst page, the docs page and the API load nothing from other origins.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "content_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


def request_id(scope: Scope) -> str:
    """Return the id the boundary gave this request ("-" outside one)."""
    value = scope.get(REQUEST_ID_KEY)
    return value if isinstance(value, str) else "-"


def error_response(
    scope: Scope,
    status: int,
    detail: str,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Return the JSON error response used by every endpoint."""
    body: dict[str, Any] = {
        "detail": detail,
        "code": code or _CODES.get(status, "error"),
        "request_id": request_id(scope),
    }
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


class ErrorBoundary:
    """Give each request an id and turn exceptions that escape the app into JSON errors."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[REQUEST_ID_KEY] = secrets.token_hex(8)
        started = False
        began = time.perf_counter()

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                # The access log line: never the query string, which may carry a key.
                access_logger.info(
                    "request=%s method=%s path=%s status=%s latency_ms=%.0f",
                    scope[REQUEST_ID_KEY],
                    scope["method"],
                    scope["path"],
                    message["status"],
                    (time.perf_counter() - began) * 1000,
                )
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.lower().encode(), scope[REQUEST_ID_KEY].encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except HTTPException as exc:
            if started:
                raise
            response = error_response(scope, exc.status_code, str(exc.detail), headers=exc.headers)
            await response(scope, receive, tracking_send)
        except Exception:
            logger.exception(
                "internal error %s on %s %s", scope[REQUEST_ID_KEY], scope["method"], scope["path"]
            )
            if started:
                raise
            response = error_response(
                scope,
                500,
                f"internal error; the server log has the details under id {scope[REQUEST_ID_KEY]}",
                "internal_error",
            )
            await response(scope, receive, tracking_send)


class SecurityHeaders:
    """Add the Content-Security-Policy and related headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [
            (b"content-security-policy", STRICT_CSP.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cache-control", b"no-store"),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *(header for header in extra if header[0] not in names),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
