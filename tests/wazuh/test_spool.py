"""The spool: writer, reader, bad files, claims, stale files, and the scripts' copy of it."""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import pytest

from iocscope.wazuh import spool
from iocscope.wazuh.spool import SpoolItem, SpoolReader, SpoolWriter
from tests.wazuh.harness import (
    ACTIVE_RESPONSE,
    FORWARDER,
    load_script,
    make_tree,
    run_integratord,
    sample_alert,
)

ALERT = b'{"id":"1714557600.1000","rule":{"level":10,"id":"5712"}}'


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


def test_written_file_read_back(spool_dir: Path) -> None:
    path = SpoolWriter(spool_dir).write(ALERT, "alert")
    reader = SpoolReader(spool_dir)
    assert reader.pending() == [path]
    item = reader.read(path)
    assert item == SpoolItem(
        path, "alert", {"id": "1714557600.1000", "rule": {"level": 10, "id": "5712"}}
    )
    reader.done(path)
    assert reader.pending() == []
    assert not path.exists()


@pytest.mark.parametrize("kind", spool.KINDS)
def test_name_format(spool_dir: Path, kind: str) -> None:
    path = SpoolWriter(spool_dir).write(ALERT, kind)
    match = spool.NAME_PATTERN.match(path.name)
    assert match is not None
    assert int(match.group(2)) == os.getpid()
    assert match.group(4) == kind
    assert path.parent == spool_dir / "new"
    assert list((spool_dir / "tmp").iterdir()) == []


def test_pending_in_name_order(spool_dir: Path) -> None:
    writer = SpoolWriter(spool_dir)
    written = [writer.write(ALERT, "alert") for _ in range(20)]
    assert SpoolReader(spool_dir).pending() == sorted(written)
    assert sorted(written) == written  # nanosecond names sort by write time


def test_unknown_kind_rejected(spool_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"^unknown spool kind 'rest': expected one of alert, ar$"):
        SpoolWriter(spool_dir).write(ALERT, "rest")


def test_modes_despite_umask(spool_dir: Path) -> None:
    old_umask = os.umask(0o077)
    try:
        path = SpoolWriter(spool_dir).write(ALERT, "alert")
        SpoolReader(spool_dir)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == spool.FILE_MODE == 0o640
    for name in ("", "tmp", "new", "cur", "bad"):
        assert stat.S_IMODE((spool_dir / name).stat().st_mode) == spool.DIR_MODE == 0o770, name


def test_existing_dir_mode_kept(spool_dir: Path) -> None:
    spool_dir.mkdir(mode=0o750)
    spool_dir.chmod(0o750)
    SpoolReader(spool_dir)
    assert stat.S_IMODE(spool_dir.stat().st_mode) == 0o750


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("notes.txt", ALERT, "name"),
        ("1714557600000000000.12.ab.webhook.json", ALERT, "name"),
        ("1714557600000000000.12.ab.alert.json", b'{"id": ', "json"),
        ("1714557600000000000.12.ab.alert.json", b'{"id": "\xff"}', "json"),
        ("1714557600000000000.12.ab.alert.json", b"", "json"),
        ("1714557600000000000.12.ab.alert.json", b'{"score": NaN}', "json"),
        ("1714557600000000000.12.ab.ar.json", b"[1, 2]", "not_object"),
    ],
)
def test_bad_file_moved_and_counted(
    spool_dir: Path, caplog: pytest.LogCaptureFixture, name: str, content: bytes, reason: str
) -> None:
    reader = SpoolReader(spool_dir)
    path = spool_dir / "new" / name
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="iocscope.wazuh.spool"):
        assert reader.read(path) is None
    assert reader.pending() == []
    assert (spool_dir / "bad" / name).read_bytes() == content
    assert reader.bad_counts == {reason: 1}
    assert caplog.messages[0].startswith(
        f"moved spool file {name} to {spool_dir / 'bad'}: {reason}"
    )


def test_json_beyond_orjson_accepted(spool_dir: Path) -> None:
    # The scripts accept what Python's json accepts; orjson rejects these two.
    reader = SpoolReader(spool_dir)
    path = spool_dir / "new" / "1714557600000000000.12.ab.alert.json"
    path.write_bytes(b'{"big": 1e400, "lone": "\\ud83d"}')
    item = reader.read(path)
    assert item is not None
    assert item.alert == {"big": float("inf"), "lone": "\ud83d"}


def test_vanished_file_not_counted(spool_dir: Path) -> None:
    reader = SpoolReader(spool_dir)
    path = SpoolWriter(spool_dir).write(ALERT, "alert")
    path.unlink()
    assert reader.read(path) is None
    assert reader.bad_counts == {}


def test_done_twice_is_harmless(spool_dir: Path) -> None:
    reader = SpoolReader(spool_dir)
    path = SpoolWriter(spool_dir).write(ALERT, "alert")
    reader.done(path)
    reader.done(path)
    assert not path.exists()


def test_claim_once(spool_dir: Path) -> None:
    path = SpoolWriter(spool_dir).write(ALERT, "ar")
    first, second = SpoolReader(spool_dir), SpoolReader(spool_dir)
    claimed = first.claim(path)
    assert claimed == spool_dir / "cur" / path.name
    assert second.claim(path) is None
    assert first.pending() == []
    item = first.read(claimed)
    assert item is not None
    assert item.kind == "ar"
    first.done(claimed)
    assert first.claimed() == []


def test_release_claims(spool_dir: Path) -> None:
    writer = SpoolWriter(spool_dir)
    reader = SpoolReader(spool_dir)
    paths = [writer.write(ALERT, "alert") for _ in range(3)]
    for path in paths:
        reader.claim(path)
    assert SpoolReader(spool_dir).release_claims() == 3
    assert reader.pending() == paths
    assert reader.claimed() == []


def test_stale_tmp_removed(spool_dir: Path) -> None:
    reader = SpoolReader(spool_dir)
    stale = spool_dir / "tmp" / "1.1.aa.alert.json"
    fresh = spool_dir / "tmp" / "2.2.bb.alert.json"
    stale.write_bytes(b'{"id": "part')
    fresh.write_bytes(b'{"id": "part')
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    assert reader.cleanup_stale_tmp() == 1
    assert not stale.exists()
    assert fresh.exists()
    assert reader.cleanup_stale_tmp(max_age=0) == 1
    assert not fresh.exists()


def test_forwarder_file_read_by_reader(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    alert = sample_alert()
    assert run_integratord(tree, alert).returncode == 0
    reader = SpoolReader(spool.default_spool_dir(tree.root))
    [path] = reader.pending()
    item = reader.read(path)
    assert item is not None
    assert (item.kind, item.alert) == ("alert", alert)


@pytest.mark.parametrize("script", [FORWARDER, ACTIVE_RESPONSE])
def test_script_layout_matches_spool(script: str) -> None:
    module = load_script(script)
    assert module.SPOOL_ENV == spool.SPOOL_ENV
    assert module.SPOOL_DEFAULT == spool.SPOOL_DEFAULT
    assert module.SPOOL_TMP == spool.TMP_DIR
    assert module.SPOOL_NEW == spool.NEW_DIR
    assert module.SPOOL_DIR_MODE == spool.DIR_MODE
    assert module.SPOOL_FILE_MODE == spool.FILE_MODE
    assert module.SPOOL_NAME_FORMAT == spool.NAME_FORMAT
    assert module.SPOOL_KIND in spool.KINDS


@pytest.mark.parametrize("script", [FORWARDER, ACTIVE_RESPONSE])
def test_script_writer_matches_pattern(script: str, spool_dir: Path) -> None:
    module = load_script(script)
    name = module.write_spool_file(str(spool_dir), ALERT, module.SPOOL_KIND)
    assert spool.NAME_PATTERN.match(name) is not None
    item = SpoolReader(spool_dir).read(spool_dir / "new" / name)
    assert item is not None
    assert item.kind == module.SPOOL_KIND
