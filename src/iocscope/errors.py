"""The exception tree of iocscope.

Every error that crosses a module boundary is one of these types. Source
clients catch transport errors at their edge and raise a ``SourceError``
subclass with ``from exc``; only the command-line entry point turns an error
into an exit code.

    IocscopeError
    ├── InvalidIndicatorError      a value is not a valid indicator
    ├── ConfigError                the configuration file or a setting is wrong
    ├── FeedError                  a feed file cannot be read or parsed
    ├── AlertError                 an alert is not a Wazuh alert
    ├── SourceUnavailableError     a source cannot be used (no key, no feed data)
    └── SourceError                a source call failed
        ├── SourceTimeoutError     no answer within the timeout
        ├── AuthenticationError    the key was rejected (401/403)
        ├── RateLimitedError       429 or a local limit; carries retry_after
        ├── QuotaExceededError     the daily budget is spent
        ├── BadResponseError       5xx, HTML instead of JSON, schema drift
        └── ConnectionFailedError  no connection: DNS failure, refused, unreachable
"""

from __future__ import annotations

from iocscope.redact import redact_userinfo


class IocscopeError(Exception):
    """Base class of every error iocscope raises on purpose."""


class InvalidIndicatorError(IocscopeError, ValueError):
    """A value is not a valid indicator; the message names the value and the rule."""

    def __init__(self, value: str, rule: str) -> None:
        # Credentials in a rejected URL must not travel on in messages and logs.
        self.value = redact_userinfo(value)
        self.rule = redact_userinfo(rule)
        super().__init__(f"invalid indicator {self.value!r}: {self.rule}")


class ConfigError(IocscopeError):
    """The configuration file or one of its settings is invalid."""


class FeedError(IocscopeError):
    """A feed file is missing, unreadable or in an unexpected format."""


class AlertError(IocscopeError):
    """An input line is not a Wazuh alert in the alerts.json format."""


class SourceError(IocscopeError):
    """A call to an intelligence source failed; ``source`` names it."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        super().__init__(f"{source}: {message}")


class SourceTimeoutError(SourceError):
    """The source did not answer within its timeout."""


class AuthenticationError(SourceError):
    """The source rejected the API key (HTTP 401 or 403)."""


class RateLimitedError(SourceError):
    """The source or a local limiter refused the call for now."""

    def __init__(self, source: str, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(source, message)


class QuotaExceededError(RateLimitedError):
    """The daily budget of the source is spent until it resets."""


class BadResponseError(SourceError):
    """The source answered with a server error or a body that cannot be used."""


class SourceUnavailableError(IocscopeError):
    """A source cannot be built: its key is missing, its feed is not synced, or it is disabled."""


class ConnectionFailedError(SourceError):
    """No connection to the provider was made, so the call cost no quota."""
