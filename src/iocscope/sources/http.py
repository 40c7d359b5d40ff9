"""The shared HTTP client and the one request helper that API sources use.

Sources do not interpret httpx errors or HTTP statuses themselves.
``request_json`` turns transport errors, statuses and unusable bodies into the
``SourceError`` types of ``iocscope.errors``. It retries timeouts, 5xx and 429
within a total deadline and writes one log line per outbound call. That line
carries the URL path only, never the query string or headers, because those
are where credentials could appear.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from iocscope import __version__
from iocscope.config import Settings, SourceSettings
from iocscope.errors import (
    AuthenticationError,
    BadResponseError,
    ConnectionFailedError,
    QuotaExceededError,
    RateLimitedError,
    SourceError,
    SourceTimeoutError,
)

log = logging.getLogger(__name__)

USER_AGENT = f"iocscope/{__version__}"
DEFAULT_TIMEOUT = 10.0  # seconds; sources pass their own per-request timeout
CONNECT_TIMEOUT = 5.0
MAX_BODY_BYTES = 8 * 1024 * 1024  # bounds memory; no provider response comes near it
BACKOFF_BASE = 0.5  # seconds before the first retry of a timeout or 5xx; doubles each time
DETAIL_LIMIT = 200  # characters of a provider's error text quoted in a message

# Header values that are never credentials. Every other header value a caller
# passes is treated as one and removed from provider text quoted in errors.
_PUBLIC_HEADERS = frozenset({"accept", "content-type", "user-agent"})

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
QuotaCheck = Callable[[httpx.Headers], bool]
QuotaBodyCheck = Callable[[Any], bool]

# Sentinel that _parse_error_body returns for a body that is not JSON, because
# a JSON null parses to None.
_NOT_JSON = object()


# Seconds the outer asyncio deadline waits beyond the httpx timeout, so that
# httpx ends a slow request itself. Cancelling a request while it connects can
# leave its pool slot stuck (seen with httpcore 1.0 under contention).
CANCEL_GRACE = 0.5


def max_connections(settings: Settings) -> int:
    """Return the size of the shared connection pool."""
    return max(32, 4 * settings.concurrency)


def build_http_client(settings: Settings) -> httpx.AsyncClient:
    """Build the one ``AsyncClient`` shared by every source.

    Redirects are not followed: a response must never move a request, and the
    key header it carries, to another host.
    """
    # Each indicator fans out to several sources at once, so the pool grows
    # with the number of indicators enriched concurrently.
    limits = httpx.Limits(
        max_connections=max_connections(settings),
        max_keepalive_connections=max(8, settings.concurrency),
        keepalive_expiry=30.0,
    )
    return httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT},
        timeout=httpx.Timeout(DEFAULT_TIMEOUT, connect=CONNECT_TIMEOUT),
        limits=limits,
        follow_redirects=False,
        http2=False,
    )


def key_env(name: str, settings: SourceSettings) -> str:
    """Return the name of the environment variable that contains a source's key.

    It is ``sources.<name>.api_key_env`` when set, else ``IOCSCOPE_<NAME>_API_KEY``.
    """
    return settings.api_key_env or f"IOCSCOPE_{name.upper()}_API_KEY"


def key_hint(name: str, settings: SourceSettings, credential: str = "key") -> str:
    """Return the ``key_hint`` of ``request_json``: where the user finds the rejected key.

    ``credential`` is the provider's word for it ("key", "token").
    """
    if settings.api_key_file is not None:
        return f"check the {credential} in {settings.api_key_file}"
    return f"check {key_env(name, settings)}"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Return the wait in seconds that a ``Retry-After`` header value requests.

    Both forms of RFC 9110 are accepted: delay-seconds and an HTTP-date. A date
    in the past gives 0. An absent or unreadable value gives None.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, now or datetime.now(UTC))
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _seconds_until(text: str, now: datetime) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


async def request_json(
    client: httpx.AsyncClient,
    source: str,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    json: Any = None,
    form: Mapping[str, str] | None = None,
    timeout: float,
    retries: int = 2,
    retry_cap: float = 30.0,
    sleep: Sleep = asyncio.sleep,
    deadline: float | None = None,
    expect: Collection[int] = (200,),
    key_hint: str | None = None,
    is_quota: QuotaCheck | None = None,
    quota_body: QuotaBodyCheck | None = None,
    clock: Clock = time.monotonic,
) -> tuple[int, Any]:
    """Send a request and return ``(status, parsed JSON body)``.

    The body is ``json`` encoded as JSON, or ``form`` encoded as
    ``application/x-www-form-urlencoded`` for APIs that read only form fields.
    Only statuses in ``expect`` return. Errors raised, all with ``source`` set:

    - ``SourceTimeoutError`` when no attempt got a response within ``timeout``;
    - ``AuthenticationError`` on 401 and 403, never retried (``key_hint``
      names where the key comes from; None means a keyless source);
    - ``QuotaExceededError`` on a 429 that ``is_quota`` recognises from its
      headers or ``quota_body`` from its parsed JSON body, never retried;
    - ``RateLimitedError`` on 429 when the ``Retry-After`` wait exceeds
      ``retry_cap`` or the retries are spent, with ``retry_after`` set;
    - ``BadResponseError`` on persistent 5xx, any other unexpected status,
      an HTML or non-JSON body, or a transport failure.

    Timeouts, 5xx and 429 are retried up to ``retries`` times. A 429 waits for
    its ``Retry-After``; the others back off from ``BACKOFF_BASE``. No retry
    starts when its wait would pass ``deadline`` seconds after the first
    attempt (default: every attempt may use its full timeout, plus one wait of
    ``retry_cap``). ``sleep`` and ``clock`` are injectable for tests.
    """
    call = _Call(
        client,
        source,
        method,
        url,
        dict(headers or {}),
        params,
        json,
        expect,
        form,
        key_hint=key_hint,
        is_quota=is_quota,
        quota_body=quota_body,
    )
    budget = deadline if deadline is not None else timeout * (retries + 1) + retry_cap
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        remaining = max(budget - (clock() - started), 0.01)
        try:
            return await _send_once(call, min(timeout, remaining), attempt)
        except _Retryable as retry:
            wait = retry.wait if retry.wait is not None else BACKOFF_BASE * 2 ** (attempt - 1)
            if attempt > retries or wait > retry_cap or clock() - started + wait >= budget:
                raise retry.give_up(source, attempt, timeout) from retry.cause
            log.warning(
                "source=%s retry=%d/%d reason=%s wait_s=%g", source, attempt, retries, retry, wait
            )
            await sleep(wait)


@dataclass(frozen=True, slots=True)
class _Call:
    client: httpx.AsyncClient
    source: str
    method: str
    url: str
    headers: dict[str, str]
    params: Mapping[str, str] | None
    json: Any
    expect: Collection[int]
    form: Mapping[str, str] | None = None  # sent form-encoded, for APIs that take no JSON body
    key_hint: str | None = None
    is_quota: QuotaCheck | None = None
    quota_body: QuotaBodyCheck | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        values = [
            value
            for name, value in self.headers.items()
            if name.lower() not in _PUBLIC_HEADERS and value
        ]
        # A provider can echo the token of "Bearer <token>" without its scheme.
        tokens = [value.split(None, 1)[1] for value in values if len(value.split(None, 1)) == 2]
        return (*values, *tokens)


class _Retryable(Exception):  # noqa: N818 - internal control flow, never escapes request_json
    """An attempt failed in a way worth retrying; ``give_up`` builds the final error."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        wait: float | None = None,
        detail: str = "",
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(reason if status is None else f"{reason} {status}")
        self.reason = reason
        self.status = status
        self.wait = wait
        self.detail = detail
        self.cause = cause

    def give_up(self, source: str, attempts: int, timeout: float) -> SourceError:
        tries = f"{attempts} attempt" if attempts == 1 else f"{attempts} attempts"
        if self.reason == "timeout":
            return SourceTimeoutError(
                source,
                f"no response within {timeout:g} s after {tries}; "
                f"check the network or raise sources.{source}.timeout",
            )
        status = _status_text(self.status or 0, self.detail)
        if self.reason == "server error":
            return BadResponseError(source, f"server error ({status}) after {tries}")
        message = f"rate limited ({status}) after {tries}"
        if self.wait is not None:
            message += f"; retry after {self.wait:g} s"
        return RateLimitedError(source, message, retry_after=self.wait)


async def _send_once(call: _Call, timeout: float, attempt: int) -> tuple[int, Any]:
    started = time.perf_counter()
    outcome = "error"
    try:
        # httpx timeouts bound each network operation; this bounds the attempt.
        async with asyncio.timeout(timeout + CANCEL_GRACE):
            response, body = await _fetch(call, timeout)
        outcome = str(response.status_code)
    except (httpx.TimeoutException, TimeoutError) as exc:
        outcome = "timeout"
        raise _Retryable("timeout", cause=exc) from exc
    except httpx.ConnectError as exc:
        host = httpx.URL(call.url).netloc.decode("ascii", "replace")
        message = f"request to {host} failed ({type(exc).__name__}: {exc})"
        raise ConnectionFailedError(call.source, message) from exc
    except httpx.TransportError as exc:
        host = httpx.URL(call.url).netloc.decode("ascii", "replace")
        message = f"request to {host} failed ({type(exc).__name__}: {exc})"
        raise BadResponseError(call.source, message) from exc
    finally:
        log.info(
            "source=%s method=%s path=%s status=%s latency_ms=%.0f attempt=%d",
            call.source,
            call.method,
            httpx.URL(call.url).path,
            outcome,
            (time.perf_counter() - started) * 1000,
            attempt,
        )
    return _interpret(call, response, body)


async def _fetch(call: _Call, timeout: float) -> tuple[httpx.Response, bytes]:
    request = call.client.stream(
        call.method,
        call.url,
        headers=call.headers,
        params=call.params,
        json=call.json,
        data=call.form,
        timeout=timeout,
    )
    async with request as response:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                message = f"returned a body larger than {MAX_BODY_BYTES} bytes"
                raise BadResponseError(call.source, message)
    return response, bytes(body)


def _interpret(call: _Call, response: httpx.Response, body: bytes) -> tuple[int, Any]:
    status = response.status_code
    if status in (401, 403):
        raise _auth_error(call, status, body)
    if status == 429:
        raise _rate_limit_error(call, response.headers, body)
    if status >= 500:
        detail = _provider_detail(body, call.secrets)
        raise _Retryable("server error", status=status, detail=detail)
    if status not in call.expect:
        detail = _provider_detail(body, call.secrets)
        raise BadResponseError(call.source, f"unexpected response ({_status_text(status, detail)})")
    return status, decode_json(call.source, status, response.headers, body)


def _rate_limit_error(
    call: _Call, headers: httpx.Headers, body: bytes
) -> QuotaExceededError | _Retryable:
    """Build the error of a 429: a final ``QuotaExceededError`` or a ``_Retryable``."""
    wait = parse_retry_after(headers.get("Retry-After"))
    payload = _parse_error_body(body)
    detail = "" if payload is _NOT_JSON else error_detail(payload, call.secrets)
    if _quota_spent(call, headers, payload):
        message = f"quota exhausted ({_status_text(429, detail)})"
        if wait is not None:
            message += f"; retry after {wait:g} s"
        return QuotaExceededError(call.source, message, retry_after=wait)
    return _Retryable("rate limited", status=429, wait=wait, detail=detail)


def _quota_spent(call: _Call, headers: httpx.Headers, payload: Any) -> bool:
    if call.is_quota is not None and call.is_quota(headers):
        return True
    return call.quota_body is not None and payload is not _NOT_JSON and call.quota_body(payload)


def _auth_error(call: _Call, status: int, body: bytes) -> SourceError:
    status_text = _status_text(status, _provider_detail(body, call.secrets))
    if call.key_hint is None:
        return AuthenticationError(call.source, f"access was denied ({status_text})")
    message = f"the API key was rejected ({status_text}); {call.key_hint}"
    return AuthenticationError(call.source, message)


def decode_json(source: str, status: int, headers: httpx.Headers, body: bytes) -> Any:
    """Parse a JSON body; raise ``BadResponseError`` on HTML, an empty body or invalid JSON."""
    stripped = body.lstrip()
    if "html" in headers.get("content-type", "").lower() or stripped.startswith(b"<"):
        raise BadResponseError(
            source,
            f"returned an HTML page instead of JSON (status {status}); "
            "the provider may be showing a challenge page",
        )
    if not stripped:
        raise BadResponseError(source, f"returned an empty body (status {status})")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadResponseError(
            source, f"returned a body that is not valid JSON (status {status}, {len(body)} bytes)"
        ) from exc


def _status_text(status: int, detail: str) -> str:
    return f"status {status}: {detail}" if detail else f"status {status}"


def _parse_error_body(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _NOT_JSON


def _provider_detail(body: bytes, secrets: Collection[str]) -> str:
    payload = _parse_error_body(body)
    return "" if payload is _NOT_JSON else error_detail(payload, secrets)


def error_detail(payload: Any, secrets: Collection[str] = ()) -> str:
    """Return the provider's error text from a parsed error body, shortened and redacted.

    Recognised shapes: ``{"errors": [{"detail": ...}]}`` (AbuseIPDB),
    ``{"detail": ...}``, ``{"message": ...}``, ``{"error": ...}`` and
    ``{"error": {"code": ..., "message": ...}}`` (VirusTotal, the DFIR
    Platform), where the message is read and the code only when there is no
    message. Each of ``secrets`` is replaced by ``***`` in case a provider
    echoes a credential.
    """
    text = _first_text(payload)
    for secret in secrets:
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 3] + "..."


def _first_text(payload: Any) -> str:
    if not isinstance(payload, dict):
        return ""
    errors = payload.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        payload = errors[0]
    nested = payload.get("error")
    return _text_field(payload, ("detail", "message", "error")) or (
        _text_field(nested, ("message", "code")) if isinstance(nested, dict) else ""
    )


def _text_field(payload: dict[str, Any], fields: tuple[str, ...]) -> str:
    for field in fields:
        value = payload.get(field)
        if isinstance(value, str):
            return value
    return ""
