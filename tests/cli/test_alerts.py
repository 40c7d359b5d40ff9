"""``iocscope alerts`` through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import Runner
from tests.support.corpus import CORPUS
from tests.support.offline import write_offline_config

REPO = Path(__file__).resolve().parents[2]


def alert(alert_id: str, srcip: str) -> str:
    return json.dumps(
        {
            "timestamp": "2026-12-04T10:00:00.000+0000",
            "rule": {"level": 10, "id": "5712", "groups": ["sshd"]},
            "agent": {"id": "001", "name": "web01"},
            "id": alert_id,
            "location": "/var/log/auth.log",
            "data": {"srcip": srcip},
        }
    )


@pytest.fixture
def offline(tmp_path: Path) -> str:
    return str(write_offline_config(tmp_path / "offline-alerts.toml"))


def test_records_and_summary_from_stdin(iocscope: Runner, offline: str) -> None:
    lines = "\n".join([alert("1", "203.0.114.5"), alert("2", "10.0.0.8"), "{broken", ""])
    result = iocscope("--config", offline, "alerts", "-", stdin=lines)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0
    assert [(r["alert"]["alert_id"], r["value"]) for r in records] == [
        ("1", "203.0.114.5"),
        ("2", "10.0.0.8"),
    ]
    assert records[0]["alert"]["role"] == "source"
    assert "  alerts read: 2\n" in result.stderr
    assert "  invalid lines: 1\n" in result.stderr
    assert "non_public:private=1" in result.stderr


def test_missing_file_is_usage_error(iocscope: Runner, tmp_path: Path) -> None:
    result = iocscope("alerts", str(tmp_path / "absent.json"))
    assert result.returncode == 2
    assert "absent.json is not a readable file" in result.stderr


def test_example_alerts_enrich(iocscope: Runner, offline: str) -> None:
    result = iocscope("--config", offline, "alerts", str(REPO / "examples" / "alerts.jsonl"))
    assert result.returncode == 0, result.stderr
    assert "own events skipped: 1" in result.stderr
    assert len(result.stdout.splitlines()) > 10


@pytest.mark.skipif(not (CORPUS / "wazuh-alerts").is_dir(), reason="shared corpus is absent")
def test_corpus_alerts_complete(iocscope: Runner, offline: str) -> None:
    files = sorted(str(path) for path in (CORPUS / "wazuh-alerts").glob("*.jsonl"))
    result = iocscope("--config", offline, "alerts", *files)
    assert result.returncode == 0, result.stderr
    assert "summary:" in result.stderr
    assert "Traceback" not in result.stderr
    assert "  source errors: " in result.stderr
    for line in result.stdout.splitlines():
        record = json.loads(line)
        if not record["public"]:
            assert record["sources"] == []


def test_no_alert_at_all_fails(iocscope: Runner, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01binary\n[1, 2]\nnot json\n")
    result = iocscope("alerts", str(garbage))
    assert result.returncode == 1
    assert "  invalid lines: 3\n" in result.stderr
    assert "error: no input line is a Wazuh alert in the alerts.json format" in result.stderr


def test_reads_from_a_pipe(iocscope: Runner, tmp_path: Path) -> None:
    fifo = tmp_path / "alerts.fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"printf '%s\\n' '{alert('1', '10.0.0.8')}' > {fifo}"])
    result = iocscope("alerts", str(fifo))
    writer.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert "  alerts read: 1\n" in result.stderr
