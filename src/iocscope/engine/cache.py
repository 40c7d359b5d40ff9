"""The result cache: source answers kept in SQLite so repeated lookups cost nothing.

One row per (source, indicator type, canonical value) with an expiry time.
Only answers with status ``ok`` are stored, so an error or a refusal is never
served later as if the source had answered. The file lives in the data
directory (``cache.sqlite3``), is private to the iocscope user (mode 0600)
and may be shared by several processes, such as the CLI and the daemon,
because it runs in WAL mode with a busy timeout and short transactions.

A cache failure never fails an enrichment. A file that SQLite reports as
corrupt or as not a database is renamed to ``<name>.corrupt-<UTC time>`` and
replaced by an empty one, with a warning, because everything in it can be
fetched again. A lock held past the busy timeout turns a read into a miss and
drops a write. Only a file that cannot be opened at all (missing permission,
read-only directory) raises ``ConfigError`` when the cache is opened.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import orjson

from iocscope.config import SourceSettings
from iocscope.errors import ConfigError
from iocscope.indicators.model import Indicator
from iocscope.sources.contract import SourceResult, Status

logger = logging.getLogger(__name__)

CACHE_FILE_NAME = "cache.sqlite3"

# Default lifetimes in seconds. Many lookups find nothing, and every miss
# spends part of a small free daily budget, so "not found" is kept longer.
# A listing keeps changing (reports accumulate, scores rise and fall), so
# "found" answers are refreshed sooner.
DEFAULT_TTL_FOUND = 6 * 3600.0
DEFAULT_TTL_NOT_FOUND = 24 * 3600.0

# Seconds SQLite waits for another process's lock before giving up.
BUSY_TIMEOUT = 5.0

# Expired rows are deleted after this many stores by one process; the daemon
# may also call purge_expired() on a schedule.
_PURGE_EVERY = 500

_PAYLOAD_VERSION = 1

# Primary SQLite result codes (the low byte of an extended code).
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26

_CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    source TEXT NOT NULL,
    type TEXT NOT NULL,
    value TEXT NOT NULL,
    stored_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (source, type, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS results_expires_at ON results (expires_at);
"""

T = TypeVar("T")

# Errors a cache operation may raise: SQLite errors, and ConfigError when a
# damaged file cannot be replaced. Both turn into a miss or a dropped write.
_STORE_ERRORS = (sqlite3.Error, ConfigError)


def is_corruption(exc: sqlite3.Error) -> bool:
    """Tell whether SQLite reported a damaged file rather than a busy or missing one."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


class SqliteFile:
    """One private SQLite file in WAL mode that replaces itself when corrupt.

    ``label`` names the store in messages ("cache", "limits"). Every call to
    ``read`` or ``write`` runs under one lock, so a single instance may be
    shared by threads. ``write`` runs its work in one ``BEGIN IMMEDIATE``
    transaction so that concurrent processes serialise on the write lock.
    """

    def __init__(
        self, path: Path, schema: str, label: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self._schema = schema
        self._label = label
        self._clock = clock
        self._lock = threading.Lock()
        self._identity: tuple[int, int] | None = None
        self._closed = False
        self._connection: sqlite3.Connection | None = self._open()

    def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` outside an explicit transaction; each statement reads a snapshot."""
        return self._run(work, write=False)

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one write transaction, rolled back if it raises."""
        return self._run(work, write=True)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _run(self, work: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        with self._lock:
            try:
                return self._run_once(work, write=write)
            except sqlite3.DatabaseError as exc:
                if not is_corruption(exc):
                    raise
                self._recover(exc)
                return self._run_once(work, write=write)

    def _run_once(self, work: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        if self._closed:
            raise sqlite3.ProgrammingError(f"the {self._label} database {self.path} is closed")
        if self._connection is None:
            # An earlier recovery failed to open a new file; try again.
            self._connection = self._connect()
        connection = self._connection
        if not write:
            return work(connection)
        connection.execute("BEGIN IMMEDIATE")
        try:
            outcome = work(connection)
            connection.commit()
        except BaseException:
            if connection.in_transaction:
                connection.rollback()
            raise
        return outcome

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise self._open_error(exc) from exc
            self._move_aside(exc)
        try:
            return self._connect()
        except sqlite3.Error as exc:
            raise self._open_error(exc) from exc

    def _open_error(self, exc: Exception) -> ConfigError:
        return ConfigError(
            f"cannot open the {self._label} database {self.path}: {exc}; check that the data "
            f"directory exists and is writable by the user running iocscope"
        )

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _create_private_file(self.path)
        except OSError as exc:
            raise self._open_error(exc) from exc
        connection = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL survives a process crash. Only a power loss or an
            # OS crash can undo the last transactions, and those are rebuildable.
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(self._schema)
        except BaseException:
            connection.close()
            raise
        stat = os.stat(self.path)
        self._identity = (stat.st_dev, stat.st_ino)
        return connection

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        try:
            stat = os.stat(self.path)
            current: tuple[int, int] | None = (stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            current = None
        # Another process may already have replaced the damaged file; moving
        # its fresh file aside would throw away good data.
        if current == self._identity:
            self._move_aside(exc)
        self._connection = self._connect()

    def _move_aside(self, exc: sqlite3.DatabaseError) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        suffix = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{suffix}")
            suffix += 1
        logger.warning(
            "the %s database %s is unusable (%s); moved it to %s and starting an empty one",
            self._label,
            self.path,
            exc,
            target,
        )
        try:
            self.path.rename(target)
            for extension in ("-wal", "-shm"):
                companion = self.path.with_name(self.path.name + extension)
                if companion.exists():
                    companion.rename(target.with_name(target.name + extension))
        except OSError as move_exc:
            raise self._open_error(move_exc) from move_exc


def _create_private_file(path: Path) -> None:
    """Create ``path`` with mode 0600, or tighten the mode of an existing file.

    SQLite's Unix VFS gives the ``-wal`` and ``-shm`` files the mode of the
    database file, so they stay private too.
    """
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        mode = os.fstat(descriptor).st_mode & 0o777
        if mode & 0o077:
            logger.warning("tightening the mode of %s from %o to 600", path, mode)
            os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counts of one cache: rows in the file, and events seen by this process."""

    entries: int
    expired: int
    hits: int
    misses: int
    stores: int
    errors: int


class ResultCache:
    """Source results by (source, indicator type, canonical value), with a TTL each.

    ``clock`` returns seconds since the epoch; tests pass a fake one. Methods
    are safe to call from several threads.
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._file = SqliteFile(path, _CACHE_SCHEMA, "cache", clock)
        self._hits = 0
        self._misses = 0
        self._stores = 0
        self._errors = 0

    @property
    def path(self) -> Path:
        return self._file.path

    def get(self, source: str, indicator: Indicator) -> SourceResult | None:
        """Return the stored result, or None when absent, expired, unreadable or locked."""
        key = (source, indicator.type.value, indicator.value)
        now = self._clock()

        def select(connection: sqlite3.Connection) -> bytes | None:
            row = connection.execute(
                "SELECT payload FROM results "
                "WHERE source = ? AND type = ? AND value = ? AND expires_at > ?",
                (*key, now),
            ).fetchone()
            return None if row is None else bytes(row[0])

        try:
            payload = self._file.read(select)
        except _STORE_ERRORS as exc:
            self._note_error("read", source, exc)
            return None
        result = None if payload is None else self._decode_or_drop(payload, key)
        if result is None:
            self._misses += 1
        else:
            self._hits += 1
        return result

    def put(self, source: str, indicator: Indicator, result: SourceResult, ttl: float) -> None:
        """Store ``result`` for ``ttl`` seconds.

        Nothing is stored when ``ttl`` is zero or negative, or when the status
        is not ``ok``: a failure must never come back later as an answer.
        """
        if result.status is not Status.OK or ttl <= 0:
            return
        payload = _encode(result)
        if payload is None:
            logger.warning("cannot cache the %s result: its context is not JSON", source)
            return
        now = self._clock()
        row = (source, indicator.type.value, indicator.value, now, now + ttl, payload)

        def upsert(connection: sqlite3.Connection) -> None:
            connection.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)", row)

        try:
            self._file.write(upsert)
        except _STORE_ERRORS as exc:
            self._note_error("write", source, exc)
            return
        self._stores += 1
        if self._stores % _PURGE_EVERY == 0:
            self.purge_expired()

    def purge_expired(self) -> int:
        """Delete expired rows and return how many went; 0 when the file is locked."""
        now = self._clock()

        def delete(connection: sqlite3.Connection) -> int:
            return connection.execute("DELETE FROM results WHERE expires_at <= ?", (now,)).rowcount

        try:
            return self._file.write(delete)
        except _STORE_ERRORS as exc:
            self._note_error("purge", "*", exc)
            return 0

    def stats(self) -> CacheStats:
        """Count live and expired rows, plus this process's hits, misses, stores and errors."""
        now = self._clock()

        def count(connection: sqlite3.Connection) -> tuple[int, int]:
            row = connection.execute(
                "SELECT COALESCE(SUM(expires_at > ?), 0), COALESCE(SUM(expires_at <= ?), 0) "
                "FROM results",
                (now, now),
            ).fetchone()
            return int(row[0]), int(row[1])

        try:
            entries, expired = self._file.read(count)
        except _STORE_ERRORS as exc:
            self._note_error("count", "*", exc)
            entries, expired = 0, 0
        return CacheStats(entries, expired, self._hits, self._misses, self._stores, self._errors)

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

    def _decode_or_drop(self, payload: bytes, key: tuple[str, str, str]) -> SourceResult | None:
        try:
            return _decode(payload)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            # A row written by another version of iocscope: drop it and look up again.
            logger.warning("dropping an unreadable cache row of source %s: %s", key[0], exc)
            self._errors += 1

        def delete(connection: sqlite3.Connection) -> None:
            connection.execute(
                "DELETE FROM results WHERE source = ? AND type = ? AND value = ?", key
            )

        try:
            self._file.write(delete)
        except _STORE_ERRORS as exc:
            self._note_error("write", key[0], exc)
        return None

    def _note_error(self, action: str, source: str, exc: Exception) -> None:
        self._errors += 1
        # The first failure is worth a warning; repeats of a stuck lock are counted.
        level = logging.WARNING if self._errors == 1 else logging.DEBUG
        logger.log(
            level,
            "cache %s failed for source %s in %s: %s (%d cache errors so far)",
            action,
            source,
            self.path,
            exc,
            self._errors,
        )


def ttl_for(result: SourceResult, found_ttl: float, not_found_ttl: float) -> float:
    """Choose the cache lifetime of a result by its outcome, in seconds.

    A result the source knows (found, flagged or a benign hint) keeps
    ``found_ttl``; an answer that the source does not know the indicator keeps
    ``not_found_ttl``. A result whose status is not ``ok`` gets 0, which
    ``ResultCache.put`` treats as "do not store".
    """
    if result.status is not Status.OK:
        return 0.0
    if result.found or result.flagged or result.benign:
        return found_ttl
    return not_found_ttl


def ttl_for_source(result: SourceResult, settings: SourceSettings) -> float:
    """Choose the lifetime from a source's ``ttl_found``/``ttl_not_found`` or the defaults."""
    found = DEFAULT_TTL_FOUND if settings.ttl_found is None else float(settings.ttl_found)
    not_found = (
        DEFAULT_TTL_NOT_FOUND if settings.ttl_not_found is None else float(settings.ttl_not_found)
    )
    return ttl_for(result, found, not_found)


def _encode(result: SourceResult) -> bytes | None:
    """Serialise a result to JSON; ``raw`` is dropped when JSON cannot hold it."""
    fields = _as_json_fields(result)
    try:
        return orjson.dumps(fields, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        fields["raw"] = None
    try:
        encoded = orjson.dumps(fields, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return None
    logger.debug("caching the %s result without its raw payload: not JSON", result.source)
    return encoded


def _as_json_fields(result: SourceResult) -> dict[str, Any]:
    return {
        "v": _PAYLOAD_VERSION,
        "source": result.source,
        "status": result.status.value,
        "found": result.found,
        "flagged": result.flagged,
        "benign": result.benign,
        "confidence": result.confidence,
        "categories": list(result.categories),
        "tags": list(result.tags),
        "first_seen": _isoformat(result.first_seen),
        "last_seen": _isoformat(result.last_seen),
        "reference": result.reference,
        "summary": result.summary,
        "context": dict(result.context),
        "error": result.error,
        "retry_after": result.retry_after,
        "raw": result.raw,
    }


def _isoformat(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _parse_moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _decode(payload: bytes) -> SourceResult:
    """Rebuild a result; nested tuples inside ``context`` and ``raw`` come back as lists."""
    fields = orjson.loads(payload)
    if fields["v"] != _PAYLOAD_VERSION:
        raise ValueError(f"payload version {fields['v']!r} is not {_PAYLOAD_VERSION}")
    return SourceResult(
        source=fields["source"],
        status=Status(fields["status"]),
        found=bool(fields["found"]),
        flagged=bool(fields["flagged"]),
        benign=bool(fields["benign"]),
        confidence=int(fields["confidence"]),
        categories=tuple(fields["categories"]),
        tags=tuple(fields["tags"]),
        first_seen=_parse_moment(fields["first_seen"]),
        last_seen=_parse_moment(fields["last_seen"]),
        reference=fields["reference"],
        summary=fields["summary"],
        context=fields["context"],
        error=fields["error"],
        retry_after=fields["retry_after"],
        raw=fields["raw"],
    )
