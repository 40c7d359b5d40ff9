"""Per-source rate limits, daily budgets and provider-requested pauses.

The counts live in their own SQLite file in the data directory
(``limits.sqlite3``), apart from the cache, so that deleting the cache to
force fresh answers does not also forget how much of today's budget is
spent. Every CLI invocation and the daemon open the same file, and each
``acquire`` is one ``BEGIN IMMEDIATE`` transaction, so concurrent processes
spend one budget and never both take the last call.

The rate limit is a sliding window: at most ``n`` calls in any window of
``60 * n / rate`` seconds, where ``n`` is the rate rounded down (at least 1).
For a whole rate such as 4 per minute that is 4 calls in any 60 seconds,
which stays within the provider's limit whether the provider counts in fixed
or in sliding minutes. The daily budget counts calls per UTC day.

When the file cannot be read or written, ``acquire`` refuses the call with
``RateLimitedError``: an unchecked call could spend a budget that is already
gone. A corrupt file is moved aside and replaced by an empty one (see
``SqliteFile``), which forgets today's counts.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

from iocscope.engine.cache import SqliteFile
from iocscope.errors import ConfigError, QuotaExceededError, RateLimitedError

logger = logging.getLogger(__name__)

LIMITS_FILE_NAME = "limits.sqlite3"

# A Retry-After longer than a day is treated as a day, so that a wrong or
# hostile header cannot silence a source for good.
MAX_PAUSE = 24 * 3600.0

# Calls are kept at least this long so that usage() can report the last minute.
_MINUTE = 60.0

_LIMITS_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    source TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_source_at ON calls (source, at);
CREATE TABLE IF NOT EXISTS daily (
    source TEXT NOT NULL,
    day TEXT NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (source, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pauses (
    source TEXT PRIMARY KEY,
    until REAL NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class SourceUsage:
    """Calls one source has made today (UTC) and in the last minute, and any pause.

    ``paused_until`` is a time in seconds since the epoch, or None.
    """

    source: str
    day: str
    calls_today: int
    calls_last_minute: int
    paused_until: float | None


def rate_window(rate_per_minute: float) -> tuple[int, float]:
    """Return the calls allowed per window and the window length in seconds."""
    if rate_per_minute <= 0:
        raise ValueError(f"rate_per_minute must be positive, got {rate_per_minute}")
    calls = max(1, math.floor(rate_per_minute))
    return calls, _MINUTE * calls / rate_per_minute


def utc_day(moment: float) -> str:
    """Return the UTC date of a time in seconds since the epoch, as YYYY-MM-DD."""
    return datetime.fromtimestamp(moment, tz=UTC).date().isoformat()


def seconds_to_utc_midnight(moment: float) -> float:
    """Return the seconds from ``moment`` until the next 00:00 UTC."""
    today = datetime.fromtimestamp(moment, tz=UTC).date()
    midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return midnight.timestamp() - moment


class Limiter:
    """Rate limits and daily budgets shared by every process that opens ``path``.

    ``clock`` returns seconds since the epoch; tests pass a fake one and never
    sleep. Methods are safe to call from several threads.
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._file = SqliteFile(path, _LIMITS_SCHEMA, "limits", clock)

    @property
    def path(self) -> Path:
        return self._file.path

    def acquire(self, source: str, rate_per_minute: float | None, daily_budget: int | None) -> None:
        """Record one call of ``source``, or raise when the call must not happen now.

        Raises ``RateLimitedError`` while a provider-requested pause lasts or
        when the rate limit is reached, and ``QuotaExceededError`` when today's
        budget is spent. The error's ``retry_after`` gives the seconds to wait. None
        means no limit. A refused call is not counted.
        """
        now = self._clock()
        day = utc_day(now)

        def check_and_record(connection: sqlite3.Connection) -> None:
            _check_pause(connection, source, now)
            _check_budget(connection, source, day, daily_budget, now)
            _check_rate(connection, source, rate_per_minute, now)
            connection.execute("INSERT INTO calls (source, at) VALUES (?, ?)", (source, now))
            connection.execute(
                "INSERT INTO daily (source, day, calls) VALUES (?, ?, 1) "
                "ON CONFLICT (source, day) DO UPDATE SET calls = calls + 1",
                (source, day),
            )
            connection.execute("DELETE FROM daily WHERE source = ? AND day < ?", (source, day))

        try:
            self._file.write(check_and_record)
        except (sqlite3.Error, ConfigError) as exc:
            logger.warning("cannot check the limits of source %s in %s: %s", source, self.path, exc)
            raise RateLimitedError(
                source,
                f"cannot check its limits in {self.path}: {exc}; "
                f"the call is refused to protect the budget",
                retry_after=1.0,
            ) from exc

    def refund(self, source: str) -> None:
        """Take back the last recorded call of ``source``: it never reached the provider.

        Use it when no connection was made (a failed name lookup, a refused
        connection), so that an unreachable provider does not spend the budget.
        """
        now = self._clock()
        day = utc_day(now)

        def take_back(connection: sqlite3.Connection) -> None:
            connection.execute(
                "DELETE FROM calls WHERE rowid = "
                "(SELECT rowid FROM calls WHERE source = ? ORDER BY at DESC LIMIT 1)",
                (source,),
            )
            connection.execute(
                "UPDATE daily SET calls = MAX(0, calls - 1) WHERE source = ? AND day = ?",
                (source, day),
            )

        try:
            self._file.write(take_back)
        except (sqlite3.Error, ConfigError) as exc:
            # The budget then counts one call too many, which errs on the safe side.
            logger.warning("cannot refund a call of source %s in %s: %s", source, self.path, exc)

    def penalise(self, source: str, retry_after: float) -> None:
        """Refuse calls of ``source`` for ``retry_after`` seconds (at most ``MAX_PAUSE``).

        Use it when a provider answers 429 or 503 with ``Retry-After``. A
        shorter pause never cuts a longer one that is already running.
        """
        if not retry_after > 0:
            return
        pause = min(retry_after, MAX_PAUSE)
        until = self._clock() + pause

        def store(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO pauses (source, until) VALUES (?, ?) "
                "ON CONFLICT (source) DO UPDATE SET until = MAX(until, excluded.until)",
                (source, until),
            )

        logger.warning("pausing calls of source %s for %.0f s as the provider asked", source, pause)
        try:
            self._file.write(store)
        except (sqlite3.Error, ConfigError) as exc:
            # The provider rejects the next call with 429 again, which stores a new pause.
            logger.warning("cannot store the pause of source %s in %s: %s", source, self.path, exc)

    def budget_left(self, source: str, daily_budget: int | None) -> int | None:
        """Return how many calls today's budget still allows, or None without a budget."""
        if daily_budget is None:
            return None
        return max(0, daily_budget - self.usage(source).calls_today)

    def usage(self, source: str) -> SourceUsage:
        """Return what ``source`` has spent today and in the last minute.

        Raises ``ConfigError`` when the limits file cannot be read.
        """
        now = self._clock()
        day = utc_day(now)

        def count(connection: sqlite3.Connection) -> SourceUsage:
            today = connection.execute(
                "SELECT calls FROM daily WHERE source = ? AND day = ?", (source, day)
            ).fetchone()
            recent = connection.execute(
                "SELECT COUNT(*) FROM calls WHERE source = ? AND at > ?", (source, now - _MINUTE)
            ).fetchone()
            pause = connection.execute(
                "SELECT until FROM pauses WHERE source = ? AND until > ?", (source, now)
            ).fetchone()
            return SourceUsage(
                source=source,
                day=day,
                calls_today=0 if today is None else int(today[0]),
                calls_last_minute=int(recent[0]),
                paused_until=None if pause is None else float(pause[0]),
            )

        try:
            return self._file.read(count)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot read the limits database {self.path}: {exc}") from exc

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _check_pause(connection: sqlite3.Connection, source: str, now: float) -> None:
    row = connection.execute(
        "SELECT until FROM pauses WHERE source = ? AND until > ?", (source, now)
    ).fetchone()
    if row is None:
        return
    wait = float(row[0]) - now
    raise RateLimitedError(
        source,
        f"the provider asked to pause calls (Retry-After); calls resume in {math.ceil(wait)} s",
        retry_after=wait,
    )


def _check_budget(
    connection: sqlite3.Connection, source: str, day: str, budget: int | None, now: float
) -> None:
    if budget is None:
        return
    row = connection.execute(
        "SELECT calls FROM daily WHERE source = ? AND day = ?", (source, day)
    ).fetchone()
    spent = 0 if row is None else int(row[0])
    if spent < budget:
        return
    noun = "call" if budget == 1 else "calls"
    raise QuotaExceededError(
        source,
        f"daily budget of {budget} {noun} is spent; it resets at 00:00 UTC",
        retry_after=seconds_to_utc_midnight(now),
    )


def _check_rate(
    connection: sqlite3.Connection, source: str, rate_per_minute: float | None, now: float
) -> None:
    window = _MINUTE
    allowed = 0
    if rate_per_minute is not None:
        allowed, window = rate_window(rate_per_minute)
    connection.execute(
        "DELETE FROM calls WHERE source = ? AND at <= ?", (source, now - max(window, _MINUTE))
    )
    if rate_per_minute is None:
        return
    recent = [
        float(row[0])
        for row in connection.execute(
            "SELECT at FROM calls WHERE source = ? AND at > ? ORDER BY at",
            (source, now - window),
        )
    ]
    if len(recent) < allowed:
        return
    # The call may go when enough of the oldest calls have left the window.
    wait = recent[len(recent) - allowed] + window - now
    raise RateLimitedError(
        source,
        f"rate limit of {rate_per_minute:g} calls per minute reached; retry in {math.ceil(wait)} s",
        retry_after=wait,
    )
