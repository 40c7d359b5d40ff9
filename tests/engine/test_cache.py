"""Tests of the SQLite result cache and its TTL policy."""

from __future__ import annotations

import logging
import sqlite3
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from iocscope.config import SourceSettings
from iocscope.engine.cache import (
    DEFAULT_TTL_FOUND,
    DEFAULT_TTL_NOT_FOUND,
    ResultCache,
    SqliteFile,
    ttl_for,
    ttl_for_source,
)
from iocscope.errors import ConfigError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.contract import SourceResult, Status

IP = Indicator(IndicatorType.IPV4, "203.0.113.9", "203.0.113[.]9", "203.0.113.9")
# The same text as IP with another type, to show that the type is part of the key.
SAME_VALUE_OTHER_TYPE = Indicator(IndicatorType.DOMAIN, "203.0.113.9", "203.0.113.9", "203.0.113.9")


class FakeClock:
    """A clock that moves only when a test advances it."""

    def __init__(self, now: float = 1_714_557_600.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(tmp_path: Path, clock: FakeClock) -> Iterator[ResultCache]:
    with ResultCache(tmp_path / "cache.sqlite3", clock) as opened:
        yield opened


def full_result() -> SourceResult:
    return SourceResult(
        source="abuseipdb",
        status=Status.OK,
        found=True,
        flagged=True,
        benign=False,
        confidence=87,
        categories=("ssh", "brute-force"),
        tags=("scanner",),
        first_seen=datetime(2024, 4, 30, 8, 15, 1, 123456, tzinfo=UTC),
        last_seen=datetime(2024, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=2))),
        reference="https://www.abuseipdb.com/check/203.0.113.9",
        summary="reported 42 times",
        context={"country": "NL", "reports": 42, "isp": None},
        error=None,
        retry_after=None,
        raw={"data": {"abuseConfidenceScore": 87, "totalReports": 42}},
    )


def test_put_then_get_round_trip(cache: ResultCache) -> None:
    result = full_result()
    cache.put("abuseipdb", IP, result, ttl=60)
    assert cache.get("abuseipdb", IP) == result


def test_round_trip_keeps_naive_datetime(cache: ResultCache) -> None:
    moment = datetime(2024, 5, 1, 10, 0, 0)  # a source may return a naive time
    result = SourceResult(source="otx", status=Status.OK, found=True, first_seen=moment)
    cache.put("otx", IP, result, ttl=60)
    cached = cache.get("otx", IP)
    assert cached is not None
    assert cached.first_seen == moment
    assert cached.first_seen.tzinfo is None


def test_round_trip_turns_nested_tuples_into_lists(cache: ResultCache) -> None:
    result = SourceResult(
        source="otx", status=Status.OK, context={"ports": (22, 80)}, raw={"ids": (1, 2)}
    )
    cache.put("otx", IP, result, ttl=60)
    cached = cache.get("otx", IP)
    assert cached is not None
    assert cached.context == {"ports": [22, 80]}
    assert cached.raw == {"ids": [1, 2]}


def test_raw_that_is_not_json_is_dropped(cache: ResultCache) -> None:
    result = SourceResult(source="otx", status=Status.OK, found=True, raw={1, 2})
    cache.put("otx", IP, result, ttl=60)
    cached = cache.get("otx", IP)
    assert cached is not None
    assert cached.raw is None
    assert cached.found


def test_context_that_is_not_json_is_not_stored(cache: ResultCache) -> None:
    result = SourceResult(source="otx", status=Status.OK, context={"odd": object()})
    cache.put("otx", IP, result, ttl=60)
    assert cache.get("otx", IP) is None


def test_get_unknown_is_miss(cache: ResultCache) -> None:
    assert cache.get("abuseipdb", IP) is None


@pytest.mark.parametrize(
    ("source", "indicator"),
    [("otx", IP), ("abuseipdb", SAME_VALUE_OTHER_TYPE)],
    ids=["other-source", "other-type"],
)
def test_key_includes_source_and_type(
    cache: ResultCache, source: str, indicator: Indicator
) -> None:
    cache.put("abuseipdb", IP, full_result(), ttl=60)
    assert cache.get(source, indicator) is None


def test_key_uses_canonical_value(cache: ResultCache) -> None:
    cache.put("abuseipdb", IP, full_result(), ttl=60)
    same = Indicator(IndicatorType.IPV4, "203.0.113.9", "203[.]0.113.9", "203.0.113.9")
    assert cache.get("abuseipdb", same) == full_result()


def test_entry_expires_after_ttl(cache: ResultCache, clock: FakeClock) -> None:
    cache.put("abuseipdb", IP, full_result(), ttl=60)
    clock.advance(59.9)
    assert cache.get("abuseipdb", IP) is not None
    clock.advance(0.1)
    assert cache.get("abuseipdb", IP) is None


@pytest.mark.parametrize("ttl", [0, -5])
def test_put_with_ttl_not_positive_stores_nothing(cache: ResultCache, ttl: float) -> None:
    cache.put("abuseipdb", IP, full_result(), ttl=ttl)
    assert cache.get("abuseipdb", IP) is None


@pytest.mark.parametrize("status", [Status.ERROR, Status.RATE_LIMITED, Status.SKIPPED])
def test_put_never_stores_failures(cache: ResultCache, status: Status) -> None:
    failed = SourceResult(source="abuseipdb", status=status, error="abuseipdb: timed out")
    cache.put("abuseipdb", IP, failed, ttl=3600)
    assert cache.get("abuseipdb", IP) is None
    assert cache.stats().entries == 0


def test_failure_keeps_earlier_answer(cache: ResultCache) -> None:
    cache.put("abuseipdb", IP, full_result(), ttl=3600)
    failed = SourceResult(source="abuseipdb", status=Status.ERROR, error="timed out")
    cache.put("abuseipdb", IP, failed, ttl=3600)
    assert cache.get("abuseipdb", IP) == full_result()


def test_put_replaces_entry(cache: ResultCache) -> None:
    cache.put("abuseipdb", IP, full_result(), ttl=60)
    newer = SourceResult(source="abuseipdb", status=Status.OK, found=False)
    cache.put("abuseipdb", IP, newer, ttl=60)
    assert cache.get("abuseipdb", IP) == newer


def test_purge_expired_counts_rows(cache: ResultCache, clock: FakeClock) -> None:
    cache.put("abuseipdb", IP, full_result(), ttl=10)
    cache.put("otx", IP, full_result(), ttl=100)
    clock.advance(50)
    assert cache.purge_expired() == 1
    assert cache.stats().entries == 1
    assert cache.stats().expired == 0


def test_stats_count_events(cache: ResultCache, clock: FakeClock) -> None:
    cache.put("abuseipdb", IP, full_result(), ttl=10)
    cache.get("abuseipdb", IP)
    cache.get("otx", IP)
    clock.advance(20)
    stats = cache.stats()
    assert (stats.entries, stats.expired) == (0, 1)
    assert (stats.hits, stats.misses, stats.stores, stats.errors) == (1, 1, 1, 0)


def test_entries_shared_between_instances(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "cache.sqlite3"
    with ResultCache(path, clock) as writer, ResultCache(path, clock) as reader:
        writer.put("abuseipdb", IP, full_result(), ttl=60)
        assert reader.get("abuseipdb", IP) == full_result()


def test_entries_survive_reopen(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "cache.sqlite3"
    with ResultCache(path, clock) as first:
        first.put("abuseipdb", IP, full_result(), ttl=60)
    with ResultCache(path, clock) as second:
        assert second.get("abuseipdb", IP) == full_result()


def test_file_uses_wal(cache: ResultCache) -> None:
    connection = sqlite3.connect(cache.path)
    try:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        connection.close()
    assert mode == "wal"


def test_files_are_private(cache: ResultCache) -> None:
    cache.put("abuseipdb", IP, full_result(), ttl=60)
    for path in (cache.path, cache.path.with_name(cache.path.name + "-wal")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_open_tightens_loose_mode(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    path.touch(mode=0o644)
    path.chmod(0o644)
    with ResultCache(path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_open_creates_private_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with ResultCache(data_dir / "cache.sqlite3"):
        assert stat.S_IMODE(data_dir.stat().st_mode) & 0o077 == 0


def test_corrupt_file_is_moved_aside(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.sqlite3"
    path.write_bytes(b"this is not a database, it is a note" * 200)
    with caplog.at_level(logging.WARNING), ResultCache(path, clock) as cache:
        cache.put("abuseipdb", IP, full_result(), ttl=60)
        assert cache.get("abuseipdb", IP) == full_result()
    moved = tmp_path / "cache.sqlite3.corrupt-20240501T100000Z"
    assert moved.read_bytes().startswith(b"this is not a database")
    assert f"moved it to {moved}" in caplog.text


def test_second_corrupt_file_gets_new_name(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "cache.sqlite3"
    for _ in range(2):
        path.write_bytes(b"garbage" * 1000)
        ResultCache(path, clock).close()
    assert (tmp_path / "cache.sqlite3.corrupt-20240501T100000Z").exists()
    assert (tmp_path / "cache.sqlite3.corrupt-20240501T100000Z-1").exists()


def test_unwritable_directory_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(
        ConfigError, match=r"^cannot open the cache database .*/file/cache\.sqlite3"
    ):
        ResultCache(blocker / "cache.sqlite3")


def test_locked_file_turns_put_into_noop(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("iocscope.engine.cache.BUSY_TIMEOUT", 0.01)
    path = tmp_path / "cache.sqlite3"
    with ResultCache(path, clock) as cache:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            cache.put("abuseipdb", IP, full_result(), ttl=60)
        finally:
            holder.rollback()
            holder.close()
        assert cache.get("abuseipdb", IP) is None
        assert cache.stats().errors == 1


def test_unreadable_row_is_a_miss(cache: ResultCache) -> None:
    cache.put("abuseipdb", IP, full_result(), ttl=60)
    connection = sqlite3.connect(cache.path)
    with connection:
        connection.execute("UPDATE results SET payload = ?", (b'{"v": 99}',))
    connection.close()
    assert cache.get("abuseipdb", IP) is None
    assert cache.stats().entries == 0


def test_closed_cache_misses(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache.sqlite3")
    cache.close()
    assert cache.get("abuseipdb", IP) is None


def corruption_once() -> Callable[[sqlite3.Connection], int]:
    """Return work that fails once as SQLite does on a damaged page, then counts rows."""
    calls = 0

    def work(connection: sqlite3.Connection) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            error = sqlite3.DatabaseError("database disk image is malformed")
            error.sqlite_errorcode = 11  # SQLITE_CORRUPT
            raise error
        return int(connection.execute("SELECT COUNT(*) FROM t").fetchone()[0])

    return work


def test_corruption_while_open_starts_fresh_file(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "store.sqlite3"
    store = SqliteFile(path, "CREATE TABLE IF NOT EXISTS t (x);", "test", clock)
    store.write(lambda connection: connection.execute("INSERT INTO t VALUES (1)"))
    try:
        assert store.read(corruption_once()) == 0
    finally:
        store.close()
    assert (tmp_path / "store.sqlite3.corrupt-20240501T100000Z").exists()


def test_corruption_after_replacement_keeps_new_file(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "store.sqlite3"
    schema = "CREATE TABLE IF NOT EXISTS t (x);"
    store = SqliteFile(path, schema, "test", clock)
    # Another process found the file damaged first and started a new one.
    path.rename(tmp_path / "moved-by-other-process")
    other = SqliteFile(path, schema, "test", clock)
    other.write(lambda connection: connection.execute("INSERT INTO t VALUES (1)"))
    other.close()
    try:
        assert store.read(corruption_once()) == 1
    finally:
        store.close()
    assert not list(tmp_path.glob("*.corrupt-*"))


FOUND = SourceResult(source="s", status=Status.OK, found=True)
FLAGGED = SourceResult(source="s", status=Status.OK, flagged=True)
BENIGN = SourceResult(source="s", status=Status.OK, benign=True)
NOT_FOUND = SourceResult(source="s", status=Status.OK)
FAILED = SourceResult(source="s", status=Status.ERROR, error="timed out")


@pytest.mark.parametrize(
    ("result", "expected"),
    [(FOUND, 100.0), (FLAGGED, 100.0), (BENIGN, 100.0), (NOT_FOUND, 900.0), (FAILED, 0.0)],
    ids=["found", "flagged", "benign", "not-found", "failed"],
)
def test_ttl_by_outcome(result: SourceResult, expected: float) -> None:
    assert ttl_for(result, found_ttl=100.0, not_found_ttl=900.0) == expected


@pytest.mark.parametrize(
    ("settings", "result", "expected"),
    [
        (SourceSettings(), FOUND, DEFAULT_TTL_FOUND),
        (SourceSettings(), NOT_FOUND, DEFAULT_TTL_NOT_FOUND),
        (SourceSettings(ttl_found=60), FOUND, 60.0),
        (SourceSettings(ttl_not_found=0), NOT_FOUND, 0.0),
    ],
    ids=["default-found", "default-not-found", "configured-found", "configured-off"],
)
def test_ttl_for_source(settings: SourceSettings, result: SourceResult, expected: float) -> None:
    assert ttl_for_source(result, settings) == expected
