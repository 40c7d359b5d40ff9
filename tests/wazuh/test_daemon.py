"""The daemon end to end: forwarder, spool, engine, queue socket, rules.

Alerts go through the forwarder exactly as integratord runs it, the daemon
enriches them with real feed data in a temporary data directory, and a real
datagram socket plays analysisd: every message is split with analysisd's
header rules, flattened like the JSON decoder and run through the rule
emulation.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from iocscope.config import Settings, settings_from_mapping
from iocscope.engine.alerts import AlertEnricher
from iocscope.engine.pipeline import Engine
from iocscope.indicators.model import Indicator
from iocscope.runtime import open_runtime
from iocscope.sources.contract import SourceMeta, SourceResult, Status
from iocscope.sources.feeds.store import import_feed
from iocscope.sources.registry import SourceState
from iocscope.wazuh.analysisd import QueueMessage, flatten_json_like_wazuh, parse_queue_message
from iocscope.wazuh.daemon import Daemon, TaskWindow
from iocscope.wazuh.follower import AlertsFollower, load_checkpoint
from iocscope.wazuh.journal import Delivery, DeliveryJournal
from iocscope.wazuh.queue import QueueWriter
from iocscope.wazuh.rules import expected_rule, render_rules
from iocscope.wazuh.spool import SpoolItem, SpoolReader, SpoolWriter
from tests.engine.doubles import meta
from tests.support.corpus import CORPUS
from tests.support.offline import offline_sources, offline_toml
from tests.wazuh.analysisd_socket import Analysisd, CollectingAnalysisd
from tests.wazuh.harness import WazuhTree, make_tree, run_integratord
from tests.wazuh.ruleengine import evaluate, parse_rules

BAD_IP = "198.51.100.0/24"  # documentation range, made public for this lab by an override
FEED = "# sample\n198.51.100.7\t9\n198.51.100.8\t2\n"


def agent_alert(alert_id: str, srcip: str, **agent: str) -> dict[str, Any]:
    return {
        "timestamp": "2026-12-04T10:00:00.000+0000",
        "rule": {"level": 10, "id": "5712", "description": "sshd: brute force", "groups": ["sshd"]},
        "agent": agent or {"id": "001", "name": "web01", "ip": "192.0.2.10"},
        "manager": {"name": "wazuh-manager"},
        "id": alert_id,
        "location": "/var/log/auth.log",
        "decoder": {"name": "sshd"},
        "data": {"srcip": srcip},
    }


def settings_for(
    tree: WazuhTree, data_dir: Path, *, top: dict[str, Any] | None = None, **wazuh: Any
) -> Settings:
    return settings_from_mapping(
        {
            "data_dir": str(data_dir),
            "scope": {"public_overrides": [BAD_IP]},
            "sources": offline_sources(),
            "wazuh": {"wazuh_dir": str(tree.root), "poll_interval": 0.05, **wazuh},
            **(top or {}),
        }
    )


@pytest.fixture
def tree(tmp_path: Path) -> WazuhTree:
    return make_tree(tmp_path)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    feed = tmp_path / "ipsum.txt"
    feed.write_text(FEED, encoding="utf-8")
    import_feed(tmp_path / "data", "ipsum", feed)
    return tmp_path / "data"


@pytest.fixture
def analysisd(tree: WazuhTree) -> Iterator[Analysisd]:
    server = CollectingAnalysisd(tree.root / "queue" / "sockets" / "queue")
    yield server
    server.close()


@contextmanager
def daemon_with(
    settings: Settings,
    engine: Engine,
    *,
    follow: bool = False,
    spool: SpoolReader | None = None,
    journal: DeliveryJournal | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Daemon]:
    """Build the daemon as ``iocscope run`` does, around ``engine``."""
    wazuh = settings.wazuh
    journal = journal or DeliveryJournal(settings.data_dir / "delivery.sqlite3")
    writer = QueueWriter(wazuh.queue_socket_path(), spill_dir=settings.data_dir / "buffer")
    follower = (
        AlertsFollower(wazuh.alerts_json_path(), settings.data_dir / "checkpoint")
        if follow
        else None
    )
    try:
        yield Daemon(
            AlertEnricher(engine, settings.alerts.max_observables),
            writer,
            journal,
            wazuh,
            spool=spool or SpoolReader(wazuh.spool_path()),
            follower=follower,
            concurrency=settings.concurrency,
            clock=clock,
        )
    finally:
        writer.close()
        journal.close()


@asynccontextmanager
async def daemon_for(
    settings: Settings, *, follow: bool = False, **options: Any
) -> AsyncIterator[Daemon]:
    async with open_runtime(settings) as runtime:
        with daemon_with(settings, runtime.engine, follow=follow, **options) as daemon:
            yield daemon


def received(analysisd: Analysisd) -> list[QueueMessage]:
    return [parse_queue_message(data) for data in analysisd.receive_all()]


def body(message: QueueMessage) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(message.payload)
    return payload


async def test_spooled_alert_becomes_event(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd
) -> None:
    run = run_integratord(tree, agent_alert("1.1", "198.51.100.7"))
    assert run.returncode == 0
    async with daemon_for(settings_for(tree, data_dir)) as daemon:
        await daemon.run_once()
    (message,) = received(analysisd)
    event = body(message)
    assert (message.agent_id, message.agent_name, message.agent_ip) == (
        "001",
        "web01",
        "192.0.2.10",
    )
    assert message.location == "iocscope"
    assert event["integration"] == "iocscope"
    assert event["iocscope"]["verdict"] == "malicious"
    assert event["iocscope"]["source_alert"]["id"] == "1.1"
    assert tree.spooled() == []


async def test_event_reaches_promised_rule(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd
) -> None:
    rules = parse_rules(render_rules())
    for number, address in enumerate(("198.51.100.7", "198.51.100.8", "198.51.100.9")):
        run_integratord(tree, agent_alert(f"2.{number}", address))
    async with daemon_for(settings_for(tree, data_dir)) as daemon:
        await daemon.run_once()
    messages = received(analysisd)
    assert len(messages) == 3
    for message in messages:
        event = body(message)
        rule = evaluate(rules, flatten_json_like_wazuh(event))
        assert rule is not None
        assert (rule.id, rule.level) == expected_rule(event)


async def test_manager_alert_uses_manager_header(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd
) -> None:
    alert = agent_alert("3.1", "198.51.100.7", id="000", name="wazuh-manager")
    run_integratord(tree, alert)
    async with daemon_for(settings_for(tree, data_dir)) as daemon:
        await daemon.run_once()
    (message,) = received(analysisd)
    assert (message.agent_id, message.agent_name) == ("000", None)
    assert message.location == "iocscope"


async def test_ipv6_agent_header_parses(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd
) -> None:
    alert = agent_alert("4.1", "198.51.100.7", id="007", name="v6host", ip="2001:db8::7")
    run_integratord(tree, alert)
    async with daemon_for(settings_for(tree, data_dir)) as daemon:
        await daemon.run_once()
    (message,) = received(analysisd)
    assert message.agent_ip == "2001:db8::7"


async def test_filters_and_loop_guard(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd
) -> None:
    quiet = agent_alert("5.1", "198.51.100.7")
    quiet["rule"]["level"] = 2
    own = agent_alert("5.2", "198.51.100.7")
    own["data"] = {"integration": "iocscope", "iocscope": {"verdict": "malicious"}}
    own["location"] = "iocscope"
    writer = SpoolWriter(tree.spool)
    for alert in (quiet, own):
        writer.write(orjson.dumps(alert), "alert")
    async with daemon_for(settings_for(tree, data_dir, min_level=3)) as daemon:
        await daemon.run_once()
        summary = daemon.summary()
    assert received(analysisd) == []
    assert summary["filtered"] == {"level": 1}


async def test_socket_absent_then_back(tree: WazuhTree, data_dir: Path) -> None:
    # No analysisd fixture here: the socket appears only halfway.
    run_integratord(tree, agent_alert("6.1", "198.51.100.7"))
    settings = settings_for(tree, data_dir)
    async with daemon_for(settings) as daemon:
        await daemon.run_once()  # manager restarting: no socket
        assert tree.spooled() == []
        server = Analysisd(settings.wazuh.queue_socket_path())
        try:
            await daemon.run_once()
            messages = received(server)
        finally:
            server.close()
    assert [body(m)["iocscope"]["source_alert"]["id"] for m in messages] == ["6.1"]


async def test_follows_alerts_json(tree: WazuhTree, data_dir: Path, analysisd: Analysisd) -> None:
    alerts_json = tree.root / "logs" / "alerts" / "alerts.json"
    alerts_json.parent.mkdir(parents=True)
    alerts_json.write_bytes(b"")
    settings = settings_for(tree, data_dir)
    async with daemon_for(settings, follow=True) as daemon:
        with alerts_json.open("ab") as handle:
            handle.write(orjson.dumps(agent_alert("7.1", "198.51.100.7")) + b"\n")
            handle.write(b"not json\n")
            handle.write(orjson.dumps(agent_alert("7.2", "198.51.100.8"))[:20])
        await daemon.run_once()
        summary = daemon.summary()
    messages = received(analysisd)
    assert [body(m)["iocscope"]["source_alert"]["id"] for m in messages] == ["7.1"]
    assert summary["bad_lines"] == 1


def write_config(path: Path, settings: Settings) -> Path:
    wazuh = settings.wazuh
    path.write_text(
        "\n".join(
            [
                f'data_dir = "{settings.data_dir}"',
                "[scope]",
                f'public_overrides = ["{BAD_IP}"]',
                "[wazuh]",
                f'wazuh_dir = "{wazuh.wazuh_dir}"',
                "poll_interval = 0.05",
                offline_toml(),
            ]
        ),
        encoding="utf-8",
    )
    return path


def start_daemon(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    """Start ``iocscope run`` without -v, so it logs at its default level."""
    return subprocess.Popen(
        [sys.executable, "-m", "iocscope", "--config", str(config), "run", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_killed_daemon_loses_nothing(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "iocscope.toml", settings_for(tree, data_dir))
    total = 120
    for number in range(total):
        run_integratord(tree, agent_alert(f"8.{number}", "198.51.100.7"))
    first = start_daemon(config)
    seen: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(seen) < 10 and time.monotonic() < deadline:
        seen.extend(analysisd.receive_all())
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    second = start_daemon(config, "--once")
    stdout, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr.decode()
    seen.extend(analysisd.receive_all())
    ids = Counter(
        body(parse_queue_message(data))["iocscope"]["source_alert"]["id"] for data in seen
    )
    assert set(ids) == {f"8.{number}" for number in range(total)}
    duplicates = sum(count - 1 for count in ids.values())
    reported = json.loads(stdout)
    assert duplicates <= reported["possible_duplicates"]
    assert tree.spooled() == []


@pytest.mark.skipif(not (CORPUS / "wazuh-alerts").is_dir(), reason="shared corpus is absent")
async def test_corpus_alerts_through_harness(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd
) -> None:
    rules = parse_rules(render_rules())
    alerts = []
    for path in sorted((CORPUS / "wazuh-alerts").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            alert = json.loads(line)
            alerts.append(alert["parameters"]["alert"] if "parameters" in alert else alert)
    for alert in alerts:
        assert run_integratord(tree, alert).returncode == 0
    settings = settings_for(tree, data_dir, min_level=0, emit_not_public=True)
    async with daemon_for(settings) as daemon:
        await daemon.run_once()
    messages = received(analysisd)
    by_id = {str(alert.get("id")): alert for alert in alerts}
    assert messages, "the corpus alerts produced no event"
    for message in messages:
        event = body(message)
        origin = by_id[event["iocscope"]["source_alert"]["id"]]
        agent = origin.get("agent", {})
        if agent.get("id", "000") == "000":
            assert (message.agent_id, message.agent_name) == ("000", None)
        else:
            assert (message.agent_id, message.agent_name) == (agent["id"], agent["name"])
            assert message.agent_ip == agent.get("ip", "any")
        rule = evaluate(rules, flatten_json_like_wazuh(event))
        assert rule is not None
        assert (rule.id, rule.level) == expected_rule(event)


async def test_srcip_for_firewall_drop_and_no_loop(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd
) -> None:
    run_integratord(tree, agent_alert("9.1", "198.51.100.7"))
    settings = settings_for(tree, data_dir, srcip_for_active_response=True)
    async with daemon_for(settings) as daemon:
        await daemon.run_once()
    (message,) = received(analysisd)
    event = body(message)
    assert event["srcip"] == "198.51.100.7"
    # The alert Wazuh raises from this event goes back through integratord:
    # the forwarder must drop it instead of spooling it again.
    raised = agent_alert("9.2", "198.51.100.7")
    raised["rule"] = {"level": 12, "id": "100807", "groups": ["iocscope", "threat_intel"]}
    raised["data"] = {"srcip": event["srcip"], "integration": "iocscope", **event}
    raised["location"] = message.location
    assert run_integratord(tree, raised).returncode == 0
    assert tree.spooled() == []


# --- concurrency ----------------------------------------------------------------

GATE_TIMEOUT = 5.0  # seconds a lookup waits for company before it gives up
PROGRESS_STEPS = 1000  # event loop turns a test waits for progress before it fails


@dataclass
class GatedSource:
    """A source double that counts the lookups in flight.

    Every lookup waits until ``release_at`` lookups are in flight at once
    (or ``GATE_TIMEOUT`` passed), so a daemon that enriches one alert at a
    time never reaches the count. Values in ``held`` wait further until
    ``release`` is set.
    """

    meta: SourceMeta
    release_at: int
    held: set[str] = field(default_factory=set)
    in_flight: int = 0
    max_in_flight: int = 0
    answered: list[str] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def lookup(self, indicator: Indicator) -> SourceResult:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.in_flight >= self.release_at:
                self.gate.set()
            # Alone until the timeout: answer anyway, the test fails on max_in_flight.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.gate.wait(), GATE_TIMEOUT)
            if indicator.value in self.held:
                await self.release.wait()
        finally:
            self.in_flight -= 1
        self.answered.append(indicator.value)
        return SourceResult(
            source=self.meta.name, status=Status.OK, found=True, flagged=True, confidence=90
        )


def gated_engine(settings: Settings, source: GatedSource) -> Engine:
    return Engine(settings, [SourceState(source.meta, source, "enabled")])


def gated_source(release_at: int, held: set[str] | None = None) -> GatedSource:
    # The engine's timeout must not end a held lookup while the test looks on.
    return GatedSource(replace(meta("gate"), timeout=60.0), release_at, held or set())


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(PROGRESS_STEPS):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the daemon made no progress")


def source_ids(messages: list[QueueMessage]) -> list[str]:
    return sorted(body(message)["iocscope"]["source_alert"]["id"] for message in messages)


async def test_spool_alerts_enriched_concurrently(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd
) -> None:
    count = 4
    writer = SpoolWriter(tree.spool)
    for number in range(count):
        writer.write(
            orjson.dumps(agent_alert(f"10.{number}", f"198.51.100.{20 + number}")), "alert"
        )
    settings = settings_for(tree, data_dir)
    source = gated_source(release_at=count)
    with daemon_with(settings, gated_engine(settings, source)) as daemon:
        assert await daemon.run_once() == count
        summary = daemon.summary()
    assert source.max_in_flight == count
    assert source_ids(received(analysisd)) == [f"10.{number}" for number in range(count)]
    assert summary["events_queued"] == count
    assert tree.spooled() == []


async def test_concurrency_is_bounded(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd
) -> None:
    writer = SpoolWriter(tree.spool)
    for number in range(6):
        writer.write(
            orjson.dumps(agent_alert(f"11.{number}", f"198.51.100.{30 + number}")), "alert"
        )
    settings = settings_for(tree, data_dir, top={"concurrency": 2})
    source = gated_source(release_at=2)
    with daemon_with(settings, gated_engine(settings, source)) as daemon:
        await daemon.run_once()
    assert source.max_in_flight == 2
    assert len(received(analysisd)) == 6


async def test_checkpoint_waits_for_earlier_alert(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd
) -> None:
    alerts_json = tree.root / "logs" / "alerts" / "alerts.json"
    alerts_json.parent.mkdir(parents=True)
    alerts_json.write_bytes(b"")
    checkpoint = data_dir / "checkpoint"
    settings = settings_for(tree, data_dir)
    source = gated_source(release_at=3, held={"198.51.100.40"})
    with daemon_with(settings, gated_engine(settings, source), follow=True) as daemon:
        with alerts_json.open("ab") as handle:
            for number in range(3):
                alert = agent_alert(f"12.{number}", f"198.51.100.{40 + number}")
                handle.write(orjson.dumps(alert) + b"\n")
        run = asyncio.create_task(daemon.run_once())
        await wait_until(lambda: len(source.answered) == 2)
        # The later alerts are sent, but the first line's alert is not done.
        assert source_ids(received(analysisd)) == ["12.1", "12.2"]
        held = load_checkpoint(checkpoint)
        assert held is not None
        assert held.offset == 0
        source.release.set()
        await run
    saved = load_checkpoint(checkpoint)
    assert saved is not None
    assert saved.offset == alerts_json.stat().st_size


# --- spool faults and housekeeping ----------------------------------------------


class LockedSpoolReader(SpoolReader):
    """A spool whose files cannot be removed or read while ``locked`` holds that action.

    Root ignores file modes, and the tests run as root, so the fault is raised here.
    """

    def __init__(self, spool_dir: Path, locked: set[str]) -> None:
        super().__init__(spool_dir)
        self.locked = locked

    def read(self, path: Path) -> SpoolItem | None:
        if "read" in self.locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return super().read(path)

    def done(self, path: Path) -> None:
        if "remove" in self.locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        super().done(path)


SPOOL_FIX = (
    "the daemon's user needs write access to the spool directory and read access to "
    "its files (group wazuh, modes 0770 and 0640)"
)


def errors_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


async def test_undeletable_spool_file_reported_once(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd, caplog: pytest.LogCaptureFixture
) -> None:
    path = SpoolWriter(tree.spool).write(orjson.dumps(agent_alert("13.1", "198.51.100.7")), "alert")
    spool = LockedSpoolReader(tree.spool, {"remove"})
    async with daemon_for(settings_for(tree, data_dir), spool=spool) as daemon:
        assert await daemon.run_once() == 1
        assert await daemon.run_once() == 0  # nothing new: the daemon goes idle
        assert tree.spooled() == [path]
        spool.locked.clear()  # the operator fixed the group
        await daemon.run_once()
        summary = daemon.summary()
    assert errors_of(caplog) == [
        f"cannot remove spool file {path}: Permission denied; {SPOOL_FIX}; "
        "its events were sent and are not sent again"
    ]
    assert source_ids(received(analysisd)) == ["13.1"]
    assert summary["spool_errors"] == 1
    assert tree.spooled() == []


async def test_unreadable_spool_file_reported_once(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd, caplog: pytest.LogCaptureFixture
) -> None:
    path = SpoolWriter(tree.spool).write(orjson.dumps(agent_alert("14.1", "198.51.100.7")), "alert")
    spool = LockedSpoolReader(tree.spool, {"read"})
    async with daemon_for(settings_for(tree, data_dir), spool=spool) as daemon:
        assert await daemon.run_once() == 0
        assert await daemon.run_once() == 0
        assert received(analysisd) == []
        spool.locked.clear()
        assert await daemon.run_once() == 1
        summary = daemon.summary()
    assert errors_of(caplog) == [f"cannot read spool file {path}: Permission denied; {SPOOL_FIX}"]
    assert source_ids(received(analysisd)) == ["14.1"]
    assert summary["spool_errors"] == 1


def stale_tmp_file(tree: WazuhTree, name: str) -> Path:
    path = tree.spool / "tmp" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"{")
    old = time.time() - 2 * 3600
    os.utime(path, (old, old))
    return path


async def test_housekeeping_at_start_and_every_ten_minutes(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd
) -> None:
    wall = [time.time() - 30 * 24 * 3600]  # the journal's clock: a month ago
    journal = DeliveryJournal(data_dir / "delivery.sqlite3", clock=lambda: wall[0])
    journal.mark("spool:old", Delivery.SENT, 1)
    wall[0] = time.time()
    monotonic = [1000.0]
    first = stale_tmp_file(tree, "1.1.aa.alert.json")
    settings = settings_for(tree, data_dir)
    async with daemon_for(settings, journal=journal, clock=lambda: monotonic[0]) as daemon:
        await daemon.run_once()
        assert not first.exists()
        assert journal.state("spool:old") is Delivery.NEW
        second = stale_tmp_file(tree, "2.2.bb.alert.json")
        monotonic[0] += 599
        await daemon.run_once()
        assert second.exists()
        monotonic[0] += 1
        await daemon.run_once()
        assert not second.exists()


# --- events without a source, summary and logging --------------------------------


async def test_observable_without_source_gets_no_event(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd
) -> None:
    alert = agent_alert("15.1", "198.51.100.7")
    alert["data"]["fileinfo"] = {"sha256": "a" * 64}  # no enabled source answers hashes
    alert["data"]["dstip"] = "198.51.100.9"  # allowlisted: benign by the operator's decision
    run_integratord(tree, alert)
    settings = settings_for(tree, data_dir, top={"allowlist": ["198.51.100.9"]})
    async with daemon_for(settings) as daemon:
        await daemon.run_once()
        summary = daemon.summary()
    events = [body(message)["iocscope"] for message in received(analysisd)]
    assert [event["indicator"]["value"] for event in events] == ["198.51.100.7"]
    assert summary["skipped"] == {"no_source": 2}
    assert summary["events_queued"] == 1


async def test_log_line_with_forged_marker_is_enriched(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd
) -> None:
    forged = agent_alert("16.1", "198.51.100.7")
    forged["location"] = "/var/log/app.log"
    forged["data"]["integration"] = "iocscope"
    assert run_integratord(tree, forged).returncode == 0
    async with daemon_for(settings_for(tree, data_dir)) as daemon:
        await daemon.run_once()
    assert source_ids(received(analysisd)) == ["16.1"]


async def test_daemon_logs_start_and_stop(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="iocscope.wazuh.daemon")
    settings = settings_for(tree, data_dir)
    async with daemon_for(settings) as daemon:
        await daemon.run(asyncio.Event(), once=True)
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == (
        f"iocscope daemon started: spool {tree.spool}, follow off, analysisd socket "
        f"{tree.root / 'queue' / 'sockets' / 'queue'}, up to 16 alerts at once"
    )
    stopped = messages[-1].removeprefix("iocscope daemon stopped: ")
    assert json.loads(stopped)["alerts"] == 0


def test_run_once_prints_json_and_logs_info(
    tree: WazuhTree, data_dir: Path, analysisd: Analysisd, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "iocscope.toml", settings_for(tree, data_dir))
    run_integratord(tree, agent_alert("17.1", "198.51.100.7"))
    process = start_daemon(config, "--once", "--follow")
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr.decode()
    (line,) = stdout.decode().splitlines()
    summary = json.loads(line)
    assert summary["events_queued"] == 1
    assert summary["queue"]["sent"] == 1
    assert "INFO iocscope.wazuh.daemon: iocscope daemon started: spool " in stderr.decode()


async def test_window_failure_cancels_other_jobs() -> None:
    cancelled: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise

    async def failing() -> None:
        raise RuntimeError("lookup crashed")

    async def run_both() -> None:
        async with TaskWindow(4) as window:
            await window.start(slow)
            await window.start(failing)

    with pytest.raises(RuntimeError) as raised:
        await run_both()
    assert str(raised.value) == "lookup crashed"
    assert cancelled == ["slow"]
