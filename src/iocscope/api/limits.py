"""Per-key rate limits and the request body size limit.

The rate limit is a token bucket per API key, kept in memory: each request
takes one token, whatever its size, and a key earns ``rate_per_minute``
tokens per minute up to ``burst``. Several ``iocscope serve`` processes
each keep their own buckets, so the effective limit grows with the number
of processes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class _Bucket:
    tokens: float
    updated: float


class KeyRateLimiter:
    """Token buckets by key id; ``clock`` returns monotonic seconds."""

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate_per_minute
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key_id: str, rate_per_minute: float | None = None) -> float | None:
        """Take one token for ``key_id``; return None, or the seconds to wait when none is left.

        ``rate_per_minute`` overrides the default rate for this key.
        """
        per_second = (rate_per_minute or self._rate) / 60.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = _Bucket(float(self._burst), now)
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * per_second)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / per_second


def retry_after_header(seconds: float) -> str:
    """Return a Retry-After value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


def body_too_large(limit: int) -> HTTPException:
    return HTTPException(
        status_code=413,
        detail=f"request body is larger than the limit of {limit} bytes; send fewer indicators "
        "per request",
    )


class BodySizeLimit:
    """ASGI middleware: reject request bodies over ``limit`` bytes with 413.

    A declared Content-Length over the limit is rejected before any byte is
    read. A chunked body is counted while it is read, and reading stops at
    the first chunk past the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            raise body_too_large(self.limit)
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise body_too_large(self.limit)
            return message

        await self.app(scope, counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
