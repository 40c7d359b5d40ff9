"""Tests of the persistent rate limiter and daily budgets."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from iocscope.engine.limits import (
    MAX_PAUSE,
    Limiter,
    rate_window,
    seconds_to_utc_midnight,
    utc_day,
)
from iocscope.errors import QuotaExceededError, RateLimitedError

# 2024-05-01 10:00:00 UTC
START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC).timestamp()


class FakeClock:
    """A clock that moves only when a test advances it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "limits.sqlite3"


@pytest.fixture
def limiter(path: Path, clock: FakeClock) -> Iterator[Limiter]:
    with Limiter(path, clock) as opened:
        yield opened


def spend(limiter: Limiter, calls: int, rate: float | None, budget: int | None) -> None:
    for _ in range(calls):
        limiter.acquire("virustotal", rate, budget)


def test_no_limits_always_allows(limiter: Limiter) -> None:
    spend(limiter, 500, None, None)
    assert limiter.usage("virustotal").calls_today == 500


def test_rate_limit_refuses_fifth_call(limiter: Limiter, clock: FakeClock) -> None:
    for _ in range(4):
        limiter.acquire("virustotal", 4, None)
        clock.advance(1)
    with pytest.raises(RateLimitedError) as caught:
        limiter.acquire("virustotal", 4, None)
    assert str(caught.value) == (
        "virustotal: rate limit of 4 calls per minute reached; retry in 56 s"
    )
    assert caught.value.retry_after == pytest.approx(56)
    assert type(caught.value) is RateLimitedError


def test_rate_limit_frees_slot_after_window(limiter: Limiter, clock: FakeClock) -> None:
    for _ in range(4):
        limiter.acquire("virustotal", 4, None)
        clock.advance(1)
    clock.advance(55.9)
    with pytest.raises(RateLimitedError):
        limiter.acquire("virustotal", 4, None)
    clock.advance(0.1)
    limiter.acquire("virustotal", 4, None)


def test_refused_call_is_not_counted(limiter: Limiter, clock: FakeClock) -> None:
    limiter.acquire("virustotal", 1, None)
    with pytest.raises(RateLimitedError):
        limiter.acquire("virustotal", 1, None)
    assert limiter.usage("virustotal").calls_today == 1
    clock.advance(60)
    limiter.acquire("virustotal", 1, None)


def test_sources_have_separate_limits(limiter: Limiter) -> None:
    limiter.acquire("virustotal", 1, 1)
    limiter.acquire("abuseipdb", 1, 1)
    assert limiter.usage("abuseipdb").calls_today == 1


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(4, (4, 60.0)), (0.5, (1, 120.0)), (2.5, (2, 48.0)), (1000, (1000, 60.0))],
)
def test_rate_window(rate: float, expected: tuple[int, float]) -> None:
    assert rate_window(rate) == expected


def test_rate_window_rejects_zero() -> None:
    with pytest.raises(ValueError, match=r"^rate_per_minute must be positive, got 0$"):
        rate_window(0)


def test_fractional_rate_spaces_calls(limiter: Limiter, clock: FakeClock) -> None:
    limiter.acquire("virustotal", 0.5, None)
    clock.advance(119)
    with pytest.raises(RateLimitedError, match=r"retry in 1 s$"):
        limiter.acquire("virustotal", 0.5, None)
    clock.advance(1)
    limiter.acquire("virustotal", 0.5, None)


def test_budget_spent_raises_quota_error(limiter: Limiter, clock: FakeClock) -> None:
    spend(limiter, 3, None, 3)
    with pytest.raises(QuotaExceededError) as caught:
        limiter.acquire("virustotal", None, 3)
    assert str(caught.value) == (
        "virustotal: daily budget of 3 calls is spent; it resets at 00:00 UTC"
    )
    assert caught.value.retry_after == pytest.approx(14 * 3600)


def test_budget_of_one_reads_singular(limiter: Limiter) -> None:
    limiter.acquire("virustotal", None, 1)
    with pytest.raises(QuotaExceededError, match="daily budget of 1 call is spent"):
        limiter.acquire("virustotal", None, 1)


def test_budget_of_zero_refuses_all(limiter: Limiter) -> None:
    with pytest.raises(QuotaExceededError):
        limiter.acquire("virustotal", None, 0)


def test_budget_resets_at_utc_midnight(limiter: Limiter, clock: FakeClock) -> None:
    spend(limiter, 2, None, 2)
    clock.advance(14 * 3600 - 1)
    with pytest.raises(QuotaExceededError):
        limiter.acquire("virustotal", None, 2)
    clock.advance(1)
    limiter.acquire("virustotal", None, 2)
    assert limiter.usage("virustotal").day == "2024-05-02"
    assert limiter.usage("virustotal").calls_today == 1


def test_budget_checked_before_rate(limiter: Limiter) -> None:
    limiter.acquire("virustotal", 1, 1)
    with pytest.raises(QuotaExceededError):
        limiter.acquire("virustotal", 1, 1)


@pytest.mark.parametrize(
    ("calls", "budget", "expected"), [(0, 10, 10), (4, 10, 6), (4, None, None), (4, 2, 0)]
)
def test_budget_left(
    limiter: Limiter, calls: int, budget: int | None, expected: int | None
) -> None:
    spend(limiter, calls, None, None)
    assert limiter.budget_left("virustotal", budget) == expected


def test_budget_shared_between_instances(path: Path, clock: FakeClock) -> None:
    with Limiter(path, clock) as first, Limiter(path, clock) as second:
        first.acquire("virustotal", None, 2)
        second.acquire("virustotal", None, 2)
        with pytest.raises(QuotaExceededError):
            first.acquire("virustotal", None, 2)


def test_budget_survives_reopen(path: Path, clock: FakeClock) -> None:
    with Limiter(path, clock) as first:
        spend(first, 2, None, 2)
    with Limiter(path, clock) as second, pytest.raises(QuotaExceededError):
        second.acquire("virustotal", None, 2)


def test_penalise_refuses_until_retry_after(limiter: Limiter, clock: FakeClock) -> None:
    limiter.penalise("virustotal", 30)
    clock.advance(10)
    with pytest.raises(RateLimitedError) as caught:
        limiter.acquire("virustotal", None, None)
    assert str(caught.value) == (
        "virustotal: the provider asked to pause calls (Retry-After); calls resume in 20 s"
    )
    assert caught.value.retry_after == pytest.approx(20)
    clock.advance(20)
    limiter.acquire("virustotal", None, None)


def test_shorter_penalty_keeps_longer(limiter: Limiter, clock: FakeClock) -> None:
    limiter.penalise("virustotal", 300)
    limiter.penalise("virustotal", 5)
    assert limiter.usage("virustotal").paused_until == clock.now + 300


def test_penalty_is_capped(limiter: Limiter, clock: FakeClock) -> None:
    limiter.penalise("virustotal", 10 * MAX_PAUSE)
    assert limiter.usage("virustotal").paused_until == clock.now + MAX_PAUSE


@pytest.mark.parametrize("retry_after", [0, -1, float("nan")])
def test_penalty_not_positive_is_ignored(limiter: Limiter, retry_after: float) -> None:
    limiter.penalise("virustotal", retry_after)
    limiter.acquire("virustotal", None, None)


def test_usage_reports_last_minute(limiter: Limiter, clock: FakeClock) -> None:
    spend(limiter, 3, None, None)
    clock.advance(61)
    limiter.acquire("virustotal", None, None)
    usage = limiter.usage("virustotal")
    assert (usage.calls_today, usage.calls_last_minute, usage.paused_until) == (4, 1, None)


def test_usage_of_unknown_source(limiter: Limiter) -> None:
    usage = limiter.usage("otx")
    assert (usage.source, usage.day, usage.calls_today) == ("otx", "2024-05-01", 0)


def test_old_calls_are_pruned(limiter: Limiter, clock: FakeClock) -> None:
    spend(limiter, 50, None, None)
    clock.advance(3600)
    limiter.acquire("virustotal", None, None)
    connection = sqlite3.connect(limiter.path)
    try:
        rows = connection.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    finally:
        connection.close()
    assert rows == 1


def test_locked_file_refuses_call(
    path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("iocscope.engine.cache.BUSY_TIMEOUT", 0.01)
    with Limiter(path, clock) as limiter:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(RateLimitedError) as caught:
                limiter.acquire("virustotal", None, None)
        finally:
            holder.rollback()
            holder.close()
    assert str(caught.value) == (
        f"virustotal: cannot check its limits in {path}: database is locked; "
        f"the call is refused to protect the budget"
    )


def test_file_is_private(limiter: Limiter) -> None:
    assert stat.S_IMODE(limiter.path.stat().st_mode) == 0o600


def test_corrupt_file_starts_empty(path: Path, clock: FakeClock) -> None:
    path.write_bytes(b"\x00not sqlite\x00" * 500)
    with Limiter(path, clock) as limiter:
        limiter.acquire("virustotal", None, 1)
    assert (path.parent / "limits.sqlite3.corrupt-20240501T100000Z").exists()


@pytest.mark.parametrize(
    ("moment", "day", "to_midnight"),
    [
        (START, "2024-05-01", 14 * 3600),
        (datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp(), "2024-12-31", 1),
        (datetime(2024, 5, 2, tzinfo=UTC).timestamp(), "2024-05-02", 24 * 3600),
    ],
)
def test_utc_day_and_midnight(moment: float, day: str, to_midnight: float) -> None:
    assert utc_day(moment) == day
    assert seconds_to_utc_midnight(moment) == pytest.approx(to_midnight)
