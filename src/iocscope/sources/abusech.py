"""What URLhaus, ThreatFox and MalwareBazaar share: the Auth-Key, ``query_status`` and timestamps.

The three abuse.ch APIs return HTTP 200 for most outcomes and name the outcome
in a ``query_status`` word, so a source must read that word before it can tell
"not listed" from "the key was rejected". Since 2025 every query needs an
``Auth-Key`` header; one free key from https://auth.abuse.ch/ works for all
three APIs. Each source reads its own key (``IOCSCOPE_<NAME>_API_KEY`` or
``sources.<name>.api_key_file``) and falls back to ``IOCSCOPE_ABUSECH_API_KEY``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn, TypeVar

import httpx
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SecretStr,
    ValidationInfo,
)

from iocscope.config import SourceSettings, resolve_api_key
from iocscope.errors import (
    AuthenticationError,
    BadResponseError,
    RateLimitedError,
    SourceUnavailableError,
)
from iocscope.sources import drift
from iocscope.sources.http import Sleep, key_env, key_hint, request_json

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

SHARED_KEY_ENV = "IOCSCOPE_ABUSECH_API_KEY"
AUTH_KEY_URL = "https://auth.abuse.ch/"
# abuse.ch publishes no numeric limit for its query APIs. Its terms of use
# (https://abuse.ch/terms-of-use/) allow query volumes reasonable for
# non-commercial use and forbid high-volume harvesting, so this default is
# iocscope's own conservative choice, not a provider number.
RATE_PER_MINUTE = 60.0
LICENCE = (
    "abuse.ch terms of use: free for non-commercial use; commercial use needs a "
    "licence from abuse.ch and Spamhaus"
)
# Statuses after which the query itself was wrong, whatever their prefix.
_BAD_INPUT_STATUSES = frozenset({"no_hash_provided", "no_search_term", "missing_search_term"})
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S UTC", "%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, slots=True)
class AuthKey:
    """An abuse.ch Auth-Key and the hint that names where it came from."""

    value: SecretStr
    hint: str


def resolve_auth_key(name: str, title: str, settings: SourceSettings) -> AuthKey:
    """Return the Auth-Key of one abuse.ch source; raise ``SourceUnavailableError`` without one.

    The source's own key wins. Only when the configuration names neither an
    environment variable nor a key file does the shared ``IOCSCOPE_ABUSECH_API_KEY``
    apply.
    """
    own_env = key_env(name, settings)
    key = resolve_api_key(name, settings)
    if key is not None:
        return AuthKey(key, key_hint(name, settings))
    if settings.api_key_env is None:
        shared = os.environ.get(SHARED_KEY_ENV, "").strip()
        if shared:
            return AuthKey(SecretStr(shared), f"check {SHARED_KEY_ENV}")
        variables = f"{own_env} or {SHARED_KEY_ENV}"
    else:
        variables = own_env
    raise SourceUnavailableError(
        f"{title} needs an abuse.ch Auth-Key: set {variables}, or sources.{name}.api_key_file "
        f"(a free key comes from {AUTH_KEY_URL})"
    )


async def post(
    client: httpx.AsyncClient,
    source: str,
    url: str,
    key: AuthKey,
    *,
    timeout: float,
    sleep: Sleep = asyncio.sleep,
    form: dict[str, str] | None = None,
    json: Any = None,
) -> dict[str, Any]:
    """POST one query and return the response object; its ``query_status`` is a string.

    HTTP failures raise through ``request_json``: a missing or unknown key gets
    401 or 403 and becomes ``AuthenticationError``, never "not listed".
    """
    _, payload = await request_json(
        client,
        source,
        "POST",
        url,
        headers={"Auth-Key": key.value.get_secret_value(), "Accept": "application/json"},
        form=form,
        json=json,
        timeout=timeout,
        # The engine bounds the whole lookup by the same timeout, so retries
        # happen only when they fit inside it.
        deadline=timeout,
        sleep=sleep,
        # A 405 carries query_status http_post_expected, which names the problem.
        expect=(200, 405),
        key_hint=key.hint,
    )
    payload = drift.expect_object(source, payload)
    if not isinstance(payload.get("query_status"), str):
        message = "returned a response without a query_status; the API may have changed"
        raise BadResponseError(source, message)
    return payload


def raise_for_status(source: str, status: str, value: str, key_hint: str) -> NoReturn:
    """Raise the error that a ``query_status`` other than success or "not found" stands for."""
    if status == "unknown_auth_key":
        raise AuthenticationError(
            source, f"the API key was rejected (query_status unknown_auth_key); {key_hint}"
        )
    if status.startswith(("invalid_", "illegal_")) or status in _BAD_INPUT_STATUSES:
        raise BadResponseError(source, f"rejected {value} as invalid input (query_status {status})")
    if status == "http_post_expected":
        message = "rejected the request (query_status http_post_expected); the API may have changed"
        raise BadResponseError(source, message)
    if status == "rate_limited":
        # Not in the abuse.ch documentation; reported by other clients of the APIs.
        raise RateLimitedError(source, "rate limited (query_status rate_limited)")
    raise BadResponseError(
        source, f"returned an unknown query_status {status!r}; the API may have changed"
    )


def validate(source: str, model: type[ModelT], payload: Any) -> ModelT:
    """Validate a response object; raise ``BadResponseError`` naming the fields that failed.

    The source name reaches ``parse_time`` and ``parse_tags`` as validation context.
    """
    return drift.parse_response(source, model, payload, {"source": source})


def warn_drift(source: str, field: str, value: object) -> None:
    """Log once per process and (source, field) that a value was unexpected and ignored."""
    drift.warn_drift(log, source, field, value)


def parse_time(value: Any, info: ValidationInfo) -> datetime | None:
    """Read an abuse.ch timestamp (``2024-02-09 13:41:05 UTC``); anything unreadable is None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        for pattern in _TIME_FORMATS:
            try:
                return datetime.strptime(value, pattern).replace(tzinfo=UTC)
            except ValueError:
                continue
    warn_drift(_source(info), info.field_name or "timestamp", value)
    return None


def parse_tags(value: Any, info: ValidationInfo) -> tuple[str, ...]:
    """Read a tag list; abuse.ch sends ``null`` for "no tags"."""
    if value is None:
        return ()
    if not isinstance(value, list):
        warn_drift(_source(info), info.field_name or "tags", value)
        return ()
    return tuple(tag for tag in value if isinstance(tag, str) and tag)


def _source(info: ValidationInfo) -> str:
    context = info.context if isinstance(info.context, dict) else {}
    return str(context.get("source", "abuse.ch"))


class Payload(BaseModel):
    """Base of the abuse.ch response models: frozen, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


Timestamp = Annotated[datetime | None, BeforeValidator(parse_time)]
Tags = Annotated[tuple[str, ...], BeforeValidator(parse_tags)]


def count(number: int, noun: str) -> str:
    """Return ``"1 URL"`` or ``"3 URLs"``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def unique(values: list[str]) -> tuple[str, ...]:
    """Return the non-empty values in first-seen order without repeats."""
    return tuple(dict.fromkeys(value for value in values if value))
