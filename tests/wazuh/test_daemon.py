"""The daemon end to end: forwarder, spool, engine, queue socket, rules.

Alerts go through the forwarder exactly as integratord runs it, the daemon
enriches them with real feed data in a temporary data directory, and a real
datagram socket plays analysisd: every message is split with analysisd's
header rules, flattened like the JSON decoder and run through the rule
emulation.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from iocscope.config import Settings, settings_from_mapping
from iocscope.engine.alerts import AlertEnricher
from iocscope.runtime import open_runtime
from iocscope.sources.feeds.store import import_feed
from iocscope.wazuh.analysisd import QueueMessage, flatten_json_like_wazuh, parse_queue_message
from iocscope.wazuh.daemon import Daemon
from iocscope.wazuh.follower import AlertsFollower
from iocscope.wazuh.journal import DeliveryJournal
from iocscope.wazuh.queue import QueueWriter
from iocscope.wazuh.rules import expected_rule, render_rules
from iocscope.wazuh.spool import SpoolReader, SpoolWriter
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


def settings_for(tree: WazuhTree, data_dir: Path, **wazuh: Any) -> Settings:
    return settings_from_mapping(
        {
            "data_dir": str(data_dir),
            "scope": {"public_overrides": [BAD_IP]},
            "sources": offline_sources(),
            "wazuh": {"wazuh_dir": str(tree.root), "poll_interval": 0.05, **wazuh},
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


@asynccontextmanager
async def daemon_for(settings: Settings, *, follow: bool = False) -> AsyncIterator[Daemon]:
    wazuh = settings.wazuh
    async with open_runtime(settings) as runtime:
        journal = DeliveryJournal(settings.data_dir / "delivery.sqlite3")
        writer = QueueWriter(wazuh.queue_socket_path(), spill_dir=settings.data_dir / "buffer")
        follower = (
            AlertsFollower(wazuh.alerts_json_path(), settings.data_dir / "checkpoint")
            if follow
            else None
        )
        try:
            yield Daemon(
                AlertEnricher(runtime.engine, settings.alerts.max_observables),
                writer,
                journal,
                wazuh,
                spool=SpoolReader(wazuh.spool_path()),
                follower=follower,
            )
        finally:
            writer.close()
            journal.close()


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
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr.decode()
    seen.extend(analysisd.receive_all())
    ids = Counter(
        body(parse_queue_message(data))["iocscope"]["source_alert"]["id"] for data in seen
    )
    assert set(ids) == {f"8.{number}" for number in range(total)}
    duplicates = sum(count - 1 for count in ids.values())
    reported = json.loads(stderr.decode().split("processed: ", 1)[1].replace("'", '"'))
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
    assert run_integratord(tree, raised).returncode == 0
    assert tree.spooled() == []
