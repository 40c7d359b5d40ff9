"""The alerts.json follower: checkpoints, partial lines, rotation and truncation."""

from __future__ import annotations

import os
from pathlib import Path

from iocscope.wazuh.follower import AlertsFollower, load_checkpoint


def lines_of(follower: AlertsFollower) -> list[bytes]:
    batch = follower.read_lines()
    for line in batch:
        follower.commit(line)
    return [line.data for line in batch]


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def test_first_start_skips_existing_lines(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.json"
    alerts.write_bytes(b'{"old": 1}\n')
    follower = AlertsFollower(alerts, tmp_path / "checkpoint")
    append(alerts, b'{"new": 1}\n')
    assert lines_of(follower) == [b'{"new": 1}']


def test_first_start_saves_checkpoint(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.json"
    alerts.write_bytes(b'{"old": 1}\n')
    # A first `iocscope run --once --follow` that finds no new line.
    AlertsFollower(alerts, tmp_path / "checkpoint")
    append(alerts, b'{"new": 1}\n')
    follower = AlertsFollower(alerts, tmp_path / "checkpoint")
    assert lines_of(follower) == [b'{"new": 1}']


def test_from_start_reads_everything(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.json"
    alerts.write_bytes(b"a\nb\n")
    follower = AlertsFollower(alerts, tmp_path / "checkpoint", start_at_end=False)
    assert lines_of(follower) == [b"a", b"b"]


def test_partial_line_waits_for_newline(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.json"
    alerts.write_bytes(b"")
    follower = AlertsFollower(alerts, tmp_path / "checkpoint")
    append(alerts, b'{"half": ')
    assert lines_of(follower) == []
    append(alerts, b"1}\n")
    assert lines_of(follower) == [b'{"half": 1}']


def test_restart_resumes_at_checkpoint(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.json"
    checkpoint = tmp_path / "checkpoint"
    alerts.write_bytes(b"")
    first = AlertsFollower(alerts, checkpoint)
    append(alerts, b"one\n")
    assert lines_of(first) == [b"one"]
    append(alerts, b"two\nthree\n")  # written while the daemon is down
    second = AlertsFollower(alerts, checkpoint)
    assert lines_of(second) == [b"two", b"three"]


def test_uncommitted_lines_come_again(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.json"
    checkpoint = tmp_path / "checkpoint"
    alerts.write_bytes(b"")
    first = AlertsFollower(alerts, checkpoint)
    append(alerts, b"one\ntwo\n")
    batch = first.read_lines()
    first.commit(batch[0])  # killed before "two" was processed
    assert lines_of(AlertsFollower(alerts, checkpoint)) == [b"two"]


def test_rotation_drains_old_file_first(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.json"
    alerts.write_bytes(b"")
    follower = AlertsFollower(alerts, tmp_path / "checkpoint")
    append(alerts, b"before\n")
    assert lines_of(follower) == [b"before"]
    append(alerts, b"late\n")
    archive = tmp_path / "2026" / "Dec"
    archive.mkdir(parents=True)
    os.rename(alerts, archive / "ossec-alerts-04.json")
    alerts.write_bytes(b"fresh\n")
    assert lines_of(follower) == [b"late"]
    assert lines_of(follower) == [b"fresh"]
    assert follower.rotations == 1


def test_rotation_while_stopped_drains_old_file(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.json"
    checkpoint = tmp_path / "checkpoint"
    alerts.write_bytes(b"")
    first = AlertsFollower(alerts, checkpoint)
    append(alerts, b"seen\n")
    lines_of(first)
    append(alerts, b"unseen\n")
    os.rename(alerts, tmp_path / "ossec-alerts-03.json")
    alerts.write_bytes(b"today\n")
    second = AlertsFollower(alerts, checkpoint)
    assert lines_of(second) + lines_of(second) == [b"unseen", b"today"]


def test_truncation_restarts_at_zero(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.json"
    alerts.write_bytes(b"")
    follower = AlertsFollower(alerts, tmp_path / "checkpoint")
    append(alerts, b"a long first line\n")
    lines_of(follower)
    with alerts.open("r+b") as handle:
        handle.truncate(0)
    append(alerts, b"x\n")
    assert lines_of(follower) == [b"x"]
    assert follower.truncations == 1


def test_damaged_checkpoint_is_ignored(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint"
    checkpoint.write_bytes(b"not json")
    assert load_checkpoint(checkpoint) is None


def test_missing_file_yields_nothing(tmp_path: Path) -> None:
    follower = AlertsFollower(tmp_path / "absent.json", tmp_path / "checkpoint")
    assert follower.read_lines() == []
