"""Shared handling of responses that do not match the schema an API source expects.

Providers change their APIs without notice. A response that cannot be used
at all raises ``BadResponseError`` naming the fields that failed
(``parse_response``). A single optional field with an unexpected value is
ignored, and ``warn_drift`` logs it once per process and (source, field), so
that the change shows in the log without a warning on every lookup.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from iocscope.errors import BadResponseError

ModelT = TypeVar("ModelT", bound=BaseModel)

# The default drift warning. A message passed to warn_drift may use the same
# three keys: source, field and value.
DRIFT_MESSAGE = (
    "source=%(source)s field=%(field)s has an unexpected value %(value).80r; it is ignored "
    "(the provider's API may have changed)"
)

# (source, field) pairs already warned about in this process. No lock: two
# threads that race on one pair can log it twice, which is harmless.
_warned: set[tuple[str, str]] = set()


def warn_drift(
    logger: logging.Logger,
    source: str,
    field: str,
    value: object,
    message: str = DRIFT_MESSAGE,
) -> None:
    """Log at WARNING that ``field`` had an unexpected ``value``, once per (source, field).

    ``message`` is a %-format with the keys ``source``, ``field`` and ``value``;
    it is formatted lazily by ``logger``.
    """
    if (source, field) in _warned:
        return
    _warned.add((source, field))
    logger.warning(message, {"source": source, "field": field, "value": value})


def reset_drift_warnings() -> None:
    """Forget which drift was already logged, so that the next drift is logged again (for tests)."""
    _warned.clear()


def expect_object(source: str, payload: Any) -> dict[str, Any]:
    """Return ``payload`` if it is a JSON object; raise ``BadResponseError`` otherwise."""
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        message = f"returned a response in an unexpected format (a JSON {kind}, not an object)"
        raise BadResponseError(source, message)
    return payload


def parse_response(
    source: str,
    model: type[ModelT],
    payload: Any,
    context: dict[str, Any] | None = None,
) -> ModelT:
    """Validate a JSON object into ``model``; raise ``BadResponseError`` naming the failed fields.

    ``context`` reaches the model's validators as pydantic's validation context.
    """
    try:
        return model.model_validate(expect_object(source, payload), context=context)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        message = f"returned a response in an unexpected format ({problems})"
        raise BadResponseError(source, message) from exc
