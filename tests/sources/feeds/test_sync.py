from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from iocscope.config import Settings, SourceSettings
from iocscope.errors import FeedError
from iocscope.sources.feeds import sync as sync_module
from iocscope.sources.feeds.catalogue import FEEDS_BY_NAME, FeedFile, FeedSpec
from iocscope.sources.feeds.store import (
    FeedStore,
    FileState,
    feed_dir,
    read_sidecar,
    update_sidecar,
)
from iocscope.sources.feeds.sync import SyncOutcome, SyncStatus, redact_url, sync_feeds
from tests.support.replay import ReplayServer, Reply, replay_server

FIXTURES = Path(__file__).parent / "fixtures"
IPSUM = (FIXTURES / "ipsum.txt").read_text(encoding="utf-8")
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
TEXT = "text/plain"


def clock() -> datetime:
    return NOW


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with replay_server() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


def ipsum_at(url: str) -> FeedSpec:
    return replace(FEEDS_BY_NAME["ipsum"], files=(FeedFile("ipsum.txt", url),))


async def sync_one(
    tmp_path: Path, spec: FeedSpec, client: httpx.AsyncClient, settings: Settings | None = None
) -> SyncOutcome:
    (outcome,) = await sync_feeds(tmp_path, (spec,), client, settings=settings, clock=clock)
    return outcome


def target(tmp_path: Path) -> Path:
    return feed_dir(tmp_path, "ipsum") / "ipsum.txt"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_download_then_not_modified(
    tmp_path: Path, server: ReplayServer, client: httpx.AsyncClient
) -> None:
    validators = {"ETag": '"v1"', "Last-Modified": "Sat, 01 Jun 2024 06:00:00 GMT"}
    server.queue(
        "/ipsum.txt",
        Reply(body=IPSUM, headers=validators, content_type=TEXT),
        Reply(status=304, headers={"ETag": '"v1"'}, content_type=TEXT),
    )
    spec = ipsum_at(f"{server.base_url}/ipsum.txt")

    first = await sync_one(tmp_path, spec, client)
    assert first.status is SyncStatus.UPDATED
    assert first.message == "downloaded 6 entries, 2 lines rejected"
    assert first.entries == 6
    assert target(tmp_path).read_text(encoding="utf-8") == IPSUM
    state = read_sidecar(target(tmp_path).parent)["ipsum.txt"]
    assert state.etag == '"v1"'
    assert state.last_modified == "Sat, 01 Jun 2024 06:00:00 GMT"
    assert state.changed_at == NOW

    second = await sync_one(tmp_path, spec, client)
    assert second.status is SyncStatus.NOT_MODIFIED
    assert second.message == "not modified since the last sync; the existing file is current"
    request = server.requests_to("/ipsum.txt")[1]
    assert request.headers["if-none-match"] == '"v1"'
    assert request.headers["if-modified-since"] == "Sat, 01 Jun 2024 06:00:00 GMT"
    assert target(tmp_path).read_text(encoding="utf-8") == IPSUM


async def test_first_sync_is_unconditional(
    tmp_path: Path, server: ReplayServer, client: httpx.AsyncClient
) -> None:
    server.queue("/ipsum.txt", Reply(body=IPSUM, content_type=TEXT))
    update_sidecar(feed_dir(tmp_path, "ipsum"), "ipsum.txt", FileState(etag='"stale"'))
    await sync_one(tmp_path, ipsum_at(f"{server.base_url}/ipsum.txt"), client)
    assert "if-none-match" not in server.requests_to("/ipsum.txt")[0].headers


async def seed(tmp_path: Path) -> None:
    """Store a good ipsum file changed three days before NOW."""
    target(tmp_path).parent.mkdir(parents=True)
    target(tmp_path).write_text(IPSUM, encoding="utf-8")
    changed = NOW - timedelta(days=3)
    state = FileState(url="old", checked_at=changed, changed_at=changed)
    update_sidecar(target(tmp_path).parent, "ipsum.txt", state)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(status=500, body="boom", content_type=TEXT), "HTTP 500 from {url}"),
        (Reply(status=404, body="gone", content_type=TEXT), "HTTP 404 from {url}"),
        (
            Reply(body="<!DOCTYPE html><html><body>Sign in</body></html>", content_type=TEXT),
            "{url} returned an HTML page instead of the feed (an error, login or captive "
            "portal page?)",
        ),
        (
            Reply(body="<p>maintenance</p>", content_type="text/html; charset=utf-8"),
            "{url} returned an HTML page instead of the feed (an error, login or captive "
            "portal page?)",
        ),
        (Reply(body="  \n", content_type=TEXT), "{url} returned an empty body"),
        (
            Reply(body="# nothing but\nwords here\n", content_type=TEXT),
            "{url} returned no valid entry (expected IPsum lines 'address<TAB>number of lists')",
        ),
    ],
)
async def test_bad_download_keeps_file(
    tmp_path: Path, server: ReplayServer, client: httpx.AsyncClient, reply: Reply, reason: str
) -> None:
    await seed(tmp_path)
    server.queue("/ipsum.txt", reply)
    url = f"{server.base_url}/ipsum.txt"
    outcome = await sync_one(tmp_path, ipsum_at(url), client)
    assert outcome.status is SyncStatus.FAILED
    assert outcome.message == (
        f"{reason.format(url=url)}; the existing file from 2024-05-29 12:00 UTC is kept"
    )
    assert target(tmp_path).read_text(encoding="utf-8") == IPSUM
    assert read_sidecar(target(tmp_path).parent)["ipsum.txt"].checked_at == NOW - timedelta(days=3)


async def test_oversized_body_rejected(
    tmp_path: Path,
    server: ReplayServer,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await seed(tmp_path)
    monkeypatch.setattr(sync_module, "MAX_FEED_BYTES", 100)
    server.queue("/ipsum.txt", Reply(body=IPSUM, content_type=TEXT))
    url = f"{server.base_url}/ipsum.txt"
    outcome = await sync_one(tmp_path, ipsum_at(url), client)
    assert outcome.status is SyncStatus.FAILED
    assert outcome.message == (
        f"the body from {url} exceeds 100 bytes; "
        "the existing file from 2024-05-29 12:00 UTC is kept"
    )


async def test_failure_without_earlier_file(
    tmp_path: Path, server: ReplayServer, client: httpx.AsyncClient
) -> None:
    server.queue("/ipsum.txt", Reply(status=503, content_type=TEXT))
    url = f"{server.base_url}/ipsum.txt"
    outcome = await sync_one(tmp_path, ipsum_at(url), client)
    assert outcome.message == (
        f"HTTP 503 from {url}; no earlier file exists, so the feed stays unavailable"
    )
    assert not target(tmp_path).exists()


async def test_timeout(tmp_path: Path, server: ReplayServer, client: httpx.AsyncClient) -> None:
    await seed(tmp_path)
    server.queue("/ipsum.txt", Reply(body=IPSUM, delay=1.5, content_type=TEXT))
    url = f"{server.base_url}/ipsum.txt"
    settings = Settings(sources={"ipsum": SourceSettings(timeout=0.2)})
    outcome = await sync_one(tmp_path, ipsum_at(url), client, settings)
    assert outcome.status is SyncStatus.FAILED
    assert outcome.message == (
        f"timed out after 0.2 s on {url}; the existing file from 2024-05-29 12:00 UTC is kept"
    )


async def test_connection_refused_is_offline(tmp_path: Path, client: httpx.AsyncClient) -> None:
    await seed(tmp_path)
    url = f"http://127.0.0.1:{free_port()}/ipsum.txt"
    outcome = await sync_one(tmp_path, ipsum_at(url), client)
    assert outcome.status is SyncStatus.OFFLINE
    assert outcome.message.startswith(f"offline: cannot connect to {url} (")
    assert outcome.message.endswith("; the existing file from 2024-05-29 12:00 UTC is kept")
    assert target(tmp_path).read_text(encoding="utf-8") == IPSUM


async def test_settings_override_url(
    tmp_path: Path, server: ReplayServer, client: httpx.AsyncClient
) -> None:
    server.queue("/mirror/ipsum.txt", Reply(body=IPSUM, content_type=TEXT))
    settings = Settings(
        sources={"ipsum": SourceSettings(url=f"{server.base_url}/mirror/ipsum.txt")}
    )
    outcome = await sync_one(tmp_path, FEEDS_BY_NAME["ipsum"], client, settings)
    assert outcome.status is SyncStatus.UPDATED
    assert len(server.requests_to("/mirror/ipsum.txt")) == 1


async def test_multi_file_feed(
    tmp_path: Path, server: ReplayServer, client: httpx.AsyncClient
) -> None:
    misp = (FIXTURES / "misp_cidr.json").read_text(encoding="utf-8")
    server.queue("/a.json", Reply(body=misp))
    server.queue("/b.json", Reply(status=500))
    spec = replace(
        FEEDS_BY_NAME["misp_cdn_cloud"],
        files=(
            FeedFile("a.json", f"{server.base_url}/a.json"),
            FeedFile("b.json", f"{server.base_url}/b.json"),
        ),
    )
    outcomes = await sync_feeds(tmp_path, (spec,), client, clock=clock)
    assert [(outcome.file, outcome.status) for outcome in outcomes] == [
        ("a.json", SyncStatus.UPDATED),
        ("b.json", SyncStatus.FAILED),
    ]
    assert FeedStore.load(tmp_path, (spec,)).loaded("misp_cdn_cloud")


async def test_one_failure_does_not_stop_others(
    tmp_path: Path, server: ReplayServer, client: httpx.AsyncClient
) -> None:
    server.queue("/ipsum.txt", Reply(body=IPSUM, content_type=TEXT))
    broken = replace(
        FEEDS_BY_NAME["tor_exits"],
        files=(FeedFile("torbulkexitlist.txt", f"http://127.0.0.1:{free_port()}/tor"),),
    )
    outcomes = await sync_feeds(
        tmp_path, (broken, ipsum_at(f"{server.base_url}/ipsum.txt")), client, clock=clock
    )
    assert [(outcome.feed, outcome.status) for outcome in outcomes] == [
        ("tor_exits", SyncStatus.OFFLINE),
        ("ipsum", SyncStatus.UPDATED),
    ]
    assert [outcome.ok for outcome in outcomes] == [False, True]


async def test_unknown_name_raises(tmp_path: Path, client: httpx.AsyncClient) -> None:
    with pytest.raises(FeedError, match=r"^unknown feed nosuch: expected one of ipsum$"):
        await sync_feeds(tmp_path, (FEEDS_BY_NAME["ipsum"],), client, names=["nosuch"])


async def test_disabled_feed_is_skipped(tmp_path: Path, client: httpx.AsyncClient) -> None:
    settings = Settings(sources={"ipsum": SourceSettings(enabled=False)})
    outcome = await sync_one(tmp_path, FEEDS_BY_NAME["ipsum"], client, settings)
    assert outcome.status is SyncStatus.SKIPPED
    assert outcome.message == "disabled in the configuration"


async def test_only_due(tmp_path: Path, server: ReplayServer, client: httpx.AsyncClient) -> None:
    await seed(tmp_path)
    server.queue("/ipsum.txt", Reply(body=IPSUM, content_type=TEXT))
    fresh = replace(ipsum_at(f"{server.base_url}/ipsum.txt"), sync_interval=timedelta(days=7))
    stale = replace(fresh, sync_interval=timedelta(days=1))
    (skipped,) = await sync_feeds(tmp_path, (fresh,), client, only_due=True, clock=clock)
    assert skipped.status is SyncStatus.SKIPPED
    assert server.requests_to("/ipsum.txt") == []
    (synced,) = await sync_feeds(tmp_path, (stale,), client, only_due=True, clock=clock)
    assert synced.status is SyncStatus.UPDATED


async def test_query_never_logged(
    tmp_path: Path,
    server: ReplayServer,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.queue("/ipsum.txt", Reply(status=500, content_type=TEXT))
    caplog.set_level(logging.DEBUG)
    outcome = await sync_one(
        tmp_path, ipsum_at(f"{server.base_url}/ipsum.txt?key=SECRET-123"), client
    )
    assert "SECRET-123" not in outcome.message
    assert "SECRET-123" not in outcome.url
    # httpx itself logs full request URLs at INFO; the logging setup of the
    # entry points must keep the "httpx" logger at WARNING.
    ours = [record.getMessage() for record in caplog.records if record.name.startswith("iocscope")]
    assert ours
    assert not any("SECRET-123" in message for message in ours)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@feeds.example:8443/a.txt?key=1", "https://feeds.example:8443/a.txt"),
        ("https://feeds.example/a.txt", "https://feeds.example/a.txt"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
