"""``iocscope run``: take alerts from the spool (and optionally alerts.json), enrich, report.

Each enriched observable becomes one event on analysisd's queue socket. The
spool file of an alert is deleted, or the follower's checkpoint advanced,
only after its events were handed to the queue writer, which buffers them
while the socket is absent. The delivery journal turns a crash between the
two into counted duplicates instead of lost or silently repeated events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from iocscope.config import WazuhSettings
from iocscope.engine.alerts import AlertEnricher
from iocscope.errors import AlertError
from iocscope.wazuh.events import build_event, fit_event
from iocscope.wazuh.follower import AlertsFollower, FollowedLine
from iocscope.wazuh.journal import Delivery, DeliveryJournal
from iocscope.wazuh.queue import MAX_MESSAGE_BYTES, QueueWriter, format_header
from iocscope.wazuh.spool import SpoolReader

logger = logging.getLogger(__name__)

# Spool files written by the active-response script: an analyst asked for
# these alerts explicitly, so the level and group filters do not apply.
ACTIVE_RESPONSE_KIND = "ar"


@dataclass
class DaemonStats:
    """Counters reported in the daemon's periodic and final log lines."""

    alerts: int = 0
    filtered: Counter[str] = field(default_factory=Counter)
    events_sent: int = 0
    duplicates_suppressed: int = 0
    possible_duplicates: int = 0
    bad_lines: int = 0
    bad_agent_headers: int = 0


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
    ) -> None:
        self._enricher = enricher
        self._writer = writer
        self._journal = journal
        self._settings = settings
        self._filter = AlertFilter(settings)
        self._spool = spool
        self._follower = follower
        self.stats = DaemonStats()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, polling at the configured interval when idle."""
        logger.info("iocscope daemon started")
        while not stop.is_set():
            done = await self.run_once()
            if done == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._settings.poll_interval)
        self._writer.flush()
        logger.info("iocscope daemon stopped: %s", self.summary())

    async def run_once(self) -> int:
        """Process what is waiting now; return how many alerts were handled."""
        self._writer.flush()
        handled = 0
        if self._spool is not None:
            handled += await self._drain_spool(self._spool)
        if self._follower is not None:
            handled += await self._drain_follower(self._follower)
        return handled

    def summary(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "alerts": stats.alerts,
            "filtered": dict(stats.filtered),
            "events_sent": stats.events_sent,
            "duplicates_suppressed": stats.duplicates_suppressed,
            "possible_duplicates": stats.possible_duplicates,
            "bad_lines": stats.bad_lines,
            "bad_agent_headers": stats.bad_agent_headers,
            "queue": self._writer.stats_dict(),
        }

    async def _drain_spool(self, spool: SpoolReader) -> int:
        handled = 0
        for path in spool.pending():
            item = spool.read(path)
            if item is None:
                continue  # moved to bad/ and counted by the reader
            await self._handle(f"spool:{path.name}", item.alert, item.kind)
            spool.done(path)
            handled += 1
        return handled

    async def _drain_follower(self, follower: AlertsFollower) -> int:
        lines = follower.read_lines()
        for line in lines:
            alert = _parse_line(line)
            if alert is None:
                self.stats.bad_lines += 1
            else:
                await self._handle(f"follow:{line.inode}:{line.end_offset}", alert, "alert")
            follower.commit(line)
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
        if state is Delivery.SENDING:
            # The daemon stopped while sending these: some may have arrived.
            self.stats.possible_duplicates += len(messages)
            logger.warning("resending %d events of %s after an interrupted run", len(messages), key)
        self._journal.mark(key, Delivery.SENDING, len(messages))
        for message in messages:
            self._writer.send(message)
        self._journal.mark(key, Delivery.SENT, len(messages))
        self.stats.events_sent += len(messages)

    def _messages(self, alert: Mapping[str, Any], records: list[dict[str, Any]]) -> list[bytes]:
        header = self._header(alert).encode("utf-8")
        messages = []
        for record in records:
            if not record["public"] and not self._settings.emit_not_public:
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
