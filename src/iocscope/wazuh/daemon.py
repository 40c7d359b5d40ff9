"""``iocscope run``: take alerts from the spool (and optionally alerts.json), enrich, report.

Each enriched observable becomes one event on analysisd's queue socket. The
spool file of an alert is deleted, or the follower's checkpoint advanced,
only after its events were handed to the queue writer, which buffers them
while the socket is absent. The delivery journal turns a crash between the
two into counted duplicates instead of lost or silently repeated events.

Up to ``concurrency`` alerts are enriched at once, so one slow source does
not hold back the alerts behind it. Each alert's events are still handed
to the writer in one step between its ``sending`` and ``sent`` marks, and
the follower's checkpoint only moves past a line once that line's alert
and every alert before it are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from iocscope.config import WazuhSettings
from iocscope.engine.alerts import AlertEnricher
from iocscope.errors import AlertError
from iocscope.wazuh.events import build_event, fit_event
from iocscope.wazuh.follower import AlertsFollower, FollowedLine
from iocscope.wazuh.journal import Delivery, DeliveryJournal
from iocscope.wazuh.queue import MAX_MESSAGE_BYTES, QueueWriter, format_header
from iocscope.wazuh.spool import SpoolItem, SpoolReader

logger = logging.getLogger(__name__)

# Spool files written by the active-response script: an analyst asked for
# these alerts explicitly, so the level and group filters do not apply.
ACTIVE_RESPONSE_KIND = "ar"

# Seconds between removals of stale spool tmp/ files and journal pruning.
MAINTENANCE_INTERVAL = 600.0

DEFAULT_CONCURRENCY = 16

_SENT_NOTE = "; its events were sent and are not sent again"
_SPOOL_ACCESS_FIX = (
    "the daemon's user needs write access to the spool directory and read access to "
    "its files (group wazuh, modes 0770 and 0640)"
)


@dataclass
class DaemonStats:
    """Counters reported in the daemon's periodic and final log lines.

    ``events_queued`` counts events handed to the queue writer. The writer's
    own counters tell how many of them were sent and how many were kept for later.
    ``skipped`` counts observables that got no event, by reason (``no_source``:
    no source was asked about them). ``spool_errors`` counts spool files that
    could not be read or removed.
    """

    alerts: int = 0
    filtered: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    events_queued: int = 0
    duplicates_suppressed: int = 0
    possible_duplicates: int = 0
    bad_lines: int = 0
    bad_agent_headers: int = 0
    spool_errors: int = 0


class AlertFilter:
    """The level, group, rule ID and location filters of the configuration."""

    def __init__(self, settings: WazuhSettings) -> None:
        self._settings = settings

    def reject_reason(self, alert: Mapping[str, Any]) -> str | None:
        """Return why the alert is filtered out, or None to enrich it."""
        rule = alert.get("rule")
        rule = rule if isinstance(rule, Mapping) else {}
        settings = self._settings
        if _as_int(rule.get("level")) < settings.min_level:
            return "level"
        groups = rule.get("groups")
        groups = groups if isinstance(groups, list) else []
        if settings.groups and not set(settings.groups).intersection(map(str, groups)):
            return "groups"
        if settings.rule_ids and str(rule.get("id")) not in settings.rule_ids:
            return "rule_id"
        location = str(alert.get("location", ""))
        if settings.locations and not any(part in location for part in settings.locations):
            return "location"
        return None


class TaskWindow:
    """Runs jobs as asyncio tasks, at most ``limit`` of them unfinished at once.

    Used as an async context manager: leaving the block waits for every
    job. The first job that raises cancels the others, and its exception
    leaves the block (from ``start`` or from the exit).
    """

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._running: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> TaskWindow:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is not None:
            await self._cancel()
            return
        try:
            while self._running:
                await self._wait_one()
        except BaseException:
            # Also a cancellation of the caller: no job may outlive the block.
            await self._cancel()
            raise

    async def start(self, job: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
        """Wait for a free place, then start ``job()`` as a task and return it."""
        while len(self._running) >= self._limit:
            await self._wait_one()
        task = asyncio.create_task(job())
        self._running.add(task)
        return task

    async def _wait_one(self) -> None:
        done, pending = await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
        self._running = pending
        # Every exception is retrieved, so asyncio reports none as lost.
        errors = [task.exception() for task in done if not task.cancelled()]
        for error in errors:
            if error is not None:
                await self._cancel()
                raise error

    async def _cancel(self) -> None:
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        self._running = set()


class Daemon:
    """Moves alerts from the spool or alerts.json to enrichment events."""

    def __init__(
        self,
        enricher: AlertEnricher,
        writer: QueueWriter,
        journal: DeliveryJournal,
        settings: WazuhSettings,
        *,
        spool: SpoolReader | None,
        follower: AlertsFollower | None,
        concurrency: int = DEFAULT_CONCURRENCY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._enricher = enricher
        self._writer = writer
        self._journal = journal
        self._settings = settings
        self._filter = AlertFilter(settings)
        self._spool = spool
        self._follower = follower
        self._concurrency = concurrency
        self._clock = clock
        self._next_maintenance: float | None = None
        # Names of spool files already reported as unreadable or undeletable,
        # so each is logged once and does not count as work on every poll.
        self._unreadable: set[str] = set()
        self._undeletable: set[str] = set()
        self._spool_listing_failed = False
        self.stats = DaemonStats()

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> None:
        """Work until ``stop`` is set (or one pass with ``once``), polling when idle."""
        self._log_start()
        if once:
            await self.run_once()
        else:
            await self._poll(stop)
        self._writer.flush()
        logger.info("iocscope daemon stopped: %s", orjson.dumps(self.summary()).decode())

    async def run_once(self) -> int:
        """Process what is waiting now; return how many alerts were handled."""
        self._maintain()
        self._writer.flush()
        handled = 0
        if self._spool is not None:
            handled += await self._drain_spool(self._spool)
        if self._follower is not None:
            handled += await self._drain_follower(self._follower)
        return handled

    async def _poll(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            done = await self.run_once()
            if done == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._settings.poll_interval)

    def summary(self) -> dict[str, Any]:
        """Return the counters, the queue writer's included, as plain JSON values."""
        stats = self.stats
        return {
            "alerts": stats.alerts,
            "filtered": dict(stats.filtered),
            "skipped": dict(stats.skipped),
            "events_queued": stats.events_queued,
            "duplicates_suppressed": stats.duplicates_suppressed,
            "possible_duplicates": stats.possible_duplicates,
            "bad_lines": stats.bad_lines,
            "bad_agent_headers": stats.bad_agent_headers,
            "spool_errors": stats.spool_errors,
            "queue": self._writer.stats_dict(),
        }

    def _log_start(self) -> None:
        follower = self._follower
        logger.info(
            "iocscope daemon started: spool %s, follow %s, analysisd socket %s, "
            "up to %d alerts at once",
            self._spool.spool_dir if self._spool is not None else "off",
            follower.path if follower is not None else "off",
            self._writer.socket_path,
            self._concurrency,
        )

    def _maintain(self) -> None:
        """Remove stale spool tmp/ files and old journal entries, at most every 10 minutes."""
        now = self._clock()
        if self._next_maintenance is not None and now < self._next_maintenance:
            return
        self._next_maintenance = now + MAINTENANCE_INTERVAL
        if self._spool is not None:
            try:
                self._spool.cleanup_stale_tmp()
            except OSError as exc:
                self.stats.spool_errors += 1
                _log_spool_error("remove stale files in", self._spool.spool_dir / "tmp", exc)
        pruned = self._journal.prune()
        if pruned:
            logger.info("pruned %d old entries from the delivery journal", pruned)

    async def _drain_spool(self, spool: SpoolReader) -> int:
        paths = self._list_spool(spool)
        names = {path.name for path in paths}
        self._unreadable &= names
        self._undeletable &= names
        handled = 0
        async with TaskWindow(self._concurrency) as window:
            for path in paths:
                if path.name in self._undeletable:
                    self._retry_remove(spool, path)
                    continue
                item = self._read_spool(spool, path)
                if item is None:
                    continue
                await window.start(partial(self._handle_spooled, spool, item))
                handled += 1
        return handled

    def _list_spool(self, spool: SpoolReader) -> list[Path]:
        try:
            paths = spool.pending()
        except OSError as exc:
            if not self._spool_listing_failed:
                self._spool_listing_failed = True
                self.stats.spool_errors += 1
                _log_spool_error("list spool directory", spool.spool_dir / "new", exc)
            return []
        self._spool_listing_failed = False
        return paths

    def _read_spool(self, spool: SpoolReader, path: Path) -> SpoolItem | None:
        try:
            item = spool.read(path)
        except OSError as exc:
            if path.name not in self._unreadable:
                self._unreadable.add(path.name)
                self.stats.spool_errors += 1
                _log_spool_error("read spool file", path, exc)
            return None
        self._unreadable.discard(path.name)
        return item  # None: moved to bad/ and counted by the reader

    async def _handle_spooled(self, spool: SpoolReader, item: SpoolItem) -> None:
        await self._handle(f"spool:{item.path.name}", item.alert, item.kind)
        try:
            spool.done(item.path)
        except OSError as exc:
            # The journal has the alert as sent, so it is never sent twice.
            self._undeletable.add(item.path.name)
            self.stats.spool_errors += 1
            _log_spool_error("remove spool file", item.path, exc, _SENT_NOTE)

    def _retry_remove(self, spool: SpoolReader, path: Path) -> None:
        try:
            spool.done(path)
        except OSError:
            return  # reported when it first failed
        self._undeletable.discard(path.name)
        logger.info("removed spool file %s, which could not be removed before", path)

    async def _drain_follower(self, follower: AlertsFollower) -> int:
        lines = follower.read_lines()
        started: deque[tuple[FollowedLine, asyncio.Task[None] | None]] = deque()
        try:
            async with TaskWindow(self._concurrency) as window:
                for line in lines:
                    alert = _parse_line(line)
                    task = None
                    if alert is None:
                        self.stats.bad_lines += 1
                    else:
                        key = f"follow:{line.inode}:{line.end_offset}"
                        task = await window.start(partial(self._handle, key, alert, "alert"))
                    started.append((line, task))
                    _commit_finished(follower, started)
        finally:
            _commit_finished(follower, started)
        return len(lines)

    async def _handle(self, key: str, alert: Mapping[str, Any], kind: str) -> None:
        self.stats.alerts += 1
        state = self._journal.state(key)
        if state is Delivery.SENT:
            self.stats.duplicates_suppressed += 1
            return
        if kind != ACTIVE_RESPONSE_KIND:
            reason = self._filter.reject_reason(alert)
            if reason is not None:
                self.stats.filtered[reason] += 1
                return
        records = await self._enricher.enrich_alert(alert)
        messages = self._messages(alert, records)
        # No await from here on: the events of one alert go out in one step.
        if state is Delivery.SENDING:
            # The daemon stopped while sending these: some may have arrived.
            self.stats.possible_duplicates += len(messages)
            logger.warning("resending %d events of %s after an interrupted run", len(messages), key)
        self._journal.mark(key, Delivery.SENDING, len(messages))
        for message in messages:
            self._writer.send(message)
        self._journal.mark(key, Delivery.SENT, len(messages))
        self.stats.events_queued += len(messages)

    def _messages(self, alert: Mapping[str, Any], records: list[dict[str, Any]]) -> list[bytes]:
        header = self._header(alert).encode("utf-8")
        messages = []
        for record in records:
            if not record["public"]:
                if not self._settings.emit_not_public:
                    continue
            elif _asked_no_source(record):
                self.stats.skipped["no_source"] += 1
                continue
            origin = record["alert"]
            event = build_event(record, alert, role=origin["role"], field=origin["field"])
            if self._settings.srcip_for_active_response and _blockable(record):
                event["srcip"] = record["value"]
            messages.append(header + fit_event(event, MAX_MESSAGE_BYTES - len(header)))
        return messages

    def _header(self, alert: Mapping[str, Any]) -> str:
        try:
            return format_header(alert)
        except AlertError as exc:
            # The event still reaches Wazuh, attributed to the manager.
            self.stats.bad_agent_headers += 1
            logger.warning("%s; sending its events with the manager header", exc)
            return format_header({})


def _log_spool_error(action: str, path: Path, exc: OSError, note: str = "") -> None:
    """Log one ERROR line: what failed on which path, why, and the fix."""
    reason = exc.strerror or str(exc)
    logger.error("cannot %s %s: %s; %s%s", action, path, reason, _SPOOL_ACCESS_FIX, note)


def _commit_finished(
    follower: AlertsFollower, started: deque[tuple[FollowedLine, asyncio.Task[None] | None]]
) -> None:
    """Advance the checkpoint past the leading lines whose alerts finished without error."""
    last = None
    while started and _succeeded(started[0][1]):
        last, _task = started.popleft()
    if last is not None:
        follower.commit(last)


def _succeeded(task: asyncio.Task[None] | None) -> bool:
    # None stands for a line that needed no work (not JSON).
    if task is None:
        return True
    return task.done() and not task.cancelled() and task.exception() is None


def _asked_no_source(record: Mapping[str, Any]) -> bool:
    """Tell whether no source was asked about a public observable, so its event says nothing.

    That is the case for types no enabled source answers (verdict unknown)
    and for allowlisted values (benign by the operator's own decision).
    """
    if record["sources_queried"]:
        return False
    return record["verdict"] == "unknown" or not record["sources"]


def _blockable(record: Mapping[str, Any]) -> bool:
    """Tell whether firewall-drop may act on the record: a malicious source address."""
    return (
        record["verdict"] == "malicious"
        and record["alert"]["role"] == "source"
        and record["type"] in ("ipv4", "ipv6")
    )


def _parse_line(line: FollowedLine) -> Mapping[str, Any] | None:
    try:
        alert = orjson.loads(line.data)
    except orjson.JSONDecodeError:
        logger.warning("alerts.json line ending at offset %d is not JSON; skipped", line.end_offset)
        return None
    return alert if isinstance(alert, dict) else None


def _as_int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0
