from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from iocscope.errors import FeedError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.sources.feeds.catalogue import FEEDS, FEEDS_BY_NAME
from iocscope.sources.feeds.store import (
    SIDECAR,
    FeedStore,
    FileState,
    data_files,
    feed_dir,
    import_feed,
    read_sidecar,
    update_sidecar,
)

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def ip(value: str) -> Indicator:
    kind = IndicatorType.IPV6 if ":" in value else IndicatorType.IPV4
    return Indicator(type=kind, value=value, original=value, display=value)


def place(data_dir: Path, feed: str, fixture: str, filename: str) -> Path:
    target = feed_dir(data_dir, feed) / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURES / fixture, target)
    return target


def test_load_and_match(tmp_path: Path) -> None:
    place(tmp_path, "ipsum", "ipsum.txt", "ipsum.txt")
    store = FeedStore.load(tmp_path, clock=clock)
    assert store.loaded("ipsum")
    found = store.match("ipsum", ip("198.51.100.11"))
    assert found is not None
    assert found.meta.detail == "listed by 6 of the IPsum blocklists"
    assert store.match("ipsum", ip("198.51.100.99")) is None


def test_missing_feed_is_not_loaded(tmp_path: Path) -> None:
    store = FeedStore.load(tmp_path)
    assert not store.loaded("ipsum")
    assert store.match("ipsum", ip("198.51.100.11")) is None
    status = {row.name: row for row in store.status()}
    assert set(status) == {spec.name for spec in FEEDS}
    assert status["ipsum"].loaded is False
    assert status["ipsum"].path is None
    assert status["ipsum"].age is None


def test_corrupt_file_is_counted_not_fatal(tmp_path: Path) -> None:
    place(tmp_path, "ipsum", "ipsum.txt", "ipsum.txt")
    broken = feed_dir(tmp_path, "tor_exits") / "torbulkexitlist.txt"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"PK\x03\x04\xff")
    store = FeedStore.load(tmp_path)
    assert store.loaded("ipsum")
    assert not store.loaded("tor_exits")
    assert store.corrupt_files == 1
    status = {row.name: row for row in store.status()}["tor_exits"]
    assert status.errors == (
        f"{broken}: no valid entry (expected one IP address or CIDR network per line); "
        "1 rejected, first line 1: 'PK\\x03\\x04�': not an IP address or network",
    )


def test_status_reports_sync_record(tmp_path: Path) -> None:
    place(tmp_path, "ipsum", "ipsum.txt", "ipsum.txt")
    checked = NOW - timedelta(hours=3)
    state = FileState(
        url="https://feeds.example/ipsum.txt",
        etag='"v1"',
        last_modified="Sat, 01 Jun 2024 06:00:00 GMT",
        checked_at=checked,
        changed_at=checked,
    )
    update_sidecar(feed_dir(tmp_path, "ipsum"), "ipsum.txt", state)
    status = {row.name: row for row in FeedStore.load(tmp_path, clock=clock).status()}["ipsum"]
    assert status.loaded is True
    assert status.entries == 6
    assert status.rejected == 2
    assert status.path == feed_dir(tmp_path, "ipsum") / "ipsum.txt"
    assert status.etag == '"v1"'
    assert status.last_modified == "Sat, 01 Jun 2024 06:00:00 GMT"
    assert status.synced_at == checked
    assert status.age == timedelta(hours=3)


def test_sidecar_round_trip(tmp_path: Path) -> None:
    state = FileState(url="u", etag="e", checked_at=NOW, imported_from="/x")
    update_sidecar(tmp_path, "a.txt", state)
    update_sidecar(tmp_path, "b.txt", FileState(url="v"))
    assert read_sidecar(tmp_path) == {"a.txt": state, "b.txt": FileState(url="v")}


def test_unreadable_sidecar_is_ignored(tmp_path: Path) -> None:
    (tmp_path / SIDECAR).write_text("{broken", encoding="utf-8")
    assert read_sidecar(tmp_path) == {}


def test_data_files_skip_sidecar_and_temporaries(tmp_path: Path) -> None:
    for name in ("ipsum.txt", SIDECAR, ".ipsum.txt.123.tmp"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    assert data_files(tmp_path) == (tmp_path / "ipsum.txt",)


def test_multi_file_feed_loads_every_list(tmp_path: Path) -> None:
    place(tmp_path, "misp_cdn_cloud", "misp_cidr.json", "fastly.json")
    place(tmp_path, "misp_cdn_cloud", "spamhaus_drop.txt", "akamai.json")
    store = FeedStore.load(tmp_path)
    assert store.loaded("misp_cdn_cloud")
    assert store.match("misp_cdn_cloud", ip("192.0.2.9")) is not None
    assert store.corrupt_files == 1


def test_import_copies_and_records(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    status = import_feed(data_dir, "ipsum", FIXTURES / "ipsum.txt", clock=clock)
    target = feed_dir(data_dir, "ipsum") / "ipsum.txt"
    assert target.read_bytes() == (FIXTURES / "ipsum.txt").read_bytes()
    assert status.loaded is True
    assert status.entries == 6
    assert status.synced_at == NOW
    assert read_sidecar(target.parent)["ipsum.txt"].imported_from == str(FIXTURES / "ipsum.txt")
    assert [path.name for path in target.parent.iterdir() if path.name.startswith(".")] == []


def test_import_replaces_existing(tmp_path: Path) -> None:
    import_feed(tmp_path, "tor_exits", FIXTURES / "tor_exits.txt")
    status = import_feed(tmp_path, "tor_exits", FIXTURES / "et_compromised.txt")
    assert status.entries == 3
    assert FeedStore.load(tmp_path).match("tor_exits", ip("203.0.113.90")) is not None


def test_import_rejects_wrong_format(tmp_path: Path) -> None:
    source = FIXTURES / "openphish.txt"
    with pytest.raises(FeedError) as caught:
        import_feed(tmp_path, "ipsum", source)
    assert str(caught.value) == (
        f"{source} is not a valid file for feed ipsum: no valid entry "
        "(expected IPsum lines 'address<TAB>number of lists'); 5 rejected, "
        "first line 1: 'https://login.example-bank.example/': not an IP address"
    )
    assert not feed_dir(tmp_path, "ipsum").exists()


def test_import_rejects_unknown_feed(tmp_path: Path) -> None:
    with pytest.raises(FeedError) as caught:
        import_feed(tmp_path, "nosuch", FIXTURES / "ipsum.txt")
    known = ", ".join(spec.name for spec in FEEDS)
    assert str(caught.value) == f"unknown feed 'nosuch': expected one of {known}"


def test_import_missing_file(tmp_path: Path) -> None:
    source = tmp_path / "absent.txt"
    with pytest.raises(FeedError) as caught:
        import_feed(tmp_path, "ipsum", source)
    assert str(caught.value) == f"cannot read feed file {source}: No such file or directory"


def test_import_misp_list_named_by_folder(tmp_path: Path) -> None:
    source = tmp_path / "lists" / "fastly" / "list.json"
    source.parent.mkdir(parents=True)
    shutil.copyfile(FIXTURES / "misp_cidr.json", source)
    status = import_feed(tmp_path / "data", "misp_cdn_cloud", source)
    assert status.path == feed_dir(tmp_path / "data", "misp_cdn_cloud") / "fastly.json"
    assert status.entries == 3


def test_import_keeps_sidecar_json_valid(tmp_path: Path) -> None:
    import_feed(tmp_path, "ipsum", FIXTURES / "ipsum.txt", clock=clock)
    document = orjson.loads((feed_dir(tmp_path, "ipsum") / SIDECAR).read_bytes())
    assert document["files"]["ipsum.txt"]["checked_at"] == NOW.isoformat()


def test_empty_store(tmp_path: Path) -> None:
    store = FeedStore.empty(tmp_path)
    assert not any(store.loaded(spec.name) for spec in FEEDS)
    assert len(store.status()) == len(FEEDS_BY_NAME)
