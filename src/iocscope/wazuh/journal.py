"""A delivery journal, so a restart neither loses nor silently repeats events.

Before the daemon sends the events of an alert it marks the alert
``sending``; after the last event it marks it ``sent``. After a crash, an
alert found ``sent`` is not sent again, and one found ``sending`` is sent
again with its events counted as possible duplicates: delivery is at least
once, and every duplicate is counted and reported.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

# Entries older than this are removed; a crash is noticed long before.
RETENTION_SECONDS = 7 * 24 * 3600


class Delivery(StrEnum):
    """Where an alert's events are on their way to analysisd."""

    NEW = "new"
    SENDING = "sending"
    SENT = "sent"


class DeliveryJournal:
    """Delivery state per alert key (a spool file name or a file offset), in SQLite."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS delivery ("
            " key TEXT PRIMARY KEY, state TEXT NOT NULL, events INTEGER NOT NULL,"
            " updated REAL NOT NULL)"
        )
        path.chmod(0o600)

    def close(self) -> None:
        self._db.close()

    def state(self, key: str) -> Delivery:
        row = self._db.execute("SELECT state FROM delivery WHERE key = ?", (key,)).fetchone()
        return Delivery(row[0]) if row else Delivery.NEW

    def mark(self, key: str, state: Delivery, events: int) -> None:
        self._db.execute(
            "INSERT INTO delivery (key, state, events, updated) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET state = excluded.state,"
            " events = excluded.events, updated = excluded.updated",
            (key, state.value, events, self._clock()),
        )

    def prune(self) -> int:
        """Remove entries older than the retention period; return how many."""
        cutoff = self._clock() - RETENTION_SECONDS
        cursor = self._db.execute("DELETE FROM delivery WHERE updated < ?", (cutoff,))
        return cursor.rowcount
