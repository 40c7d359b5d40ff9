"""``iocscope feeds`` through the real command line, against a local HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Runner
from tests.support.replay import Reply, replay_server

IPSUM = "# IPsum-format feed written for these tests\n203.0.114.66\t7\n"


def config_with_url(tmp_path: Path, url: str) -> str:
    path = tmp_path / "feeds.toml"
    path.write_text(f'[sources.ipsum]\nurl = "{url}"\n', encoding="utf-8")
    return str(path)


def test_sync_then_not_modified(iocscope: Runner, tmp_path: Path) -> None:
    with replay_server() as server:
        server.queue("/ipsum.txt", Reply(200, IPSUM, {"ETag": '"v1"'}, content_type="text/plain"))
        server.queue("/ipsum.txt", Reply(304, b"", content_type="text/plain"))
        config = config_with_url(tmp_path, f"{server.base_url}/ipsum.txt")
        first = iocscope("--config", config, "feeds", "sync", "ipsum")
        second = iocscope("--config", config, "feeds", "sync", "ipsum")
        conditional = server.requests_to("/ipsum.txt")[1].headers.get("if-none-match")
    assert first.returncode == 0, first.stderr
    assert "ipsum/ipsum.txt: updated" in first.stderr
    assert "ipsum/ipsum.txt: not_modified" in second.stderr
    assert conditional == '"v1"'


def test_sync_offline_keeps_files(iocscope: Runner, tmp_path: Path) -> None:
    feed = tmp_path / "ipsum.txt"
    feed.write_text(IPSUM, encoding="utf-8")
    iocscope("feeds", "import", "ipsum", str(feed))
    config = config_with_url(tmp_path, "http://127.0.0.1:9/ipsum.txt")
    result = iocscope("--config", config, "feeds", "sync", "ipsum")
    status = json.loads(iocscope("feeds", "status", "--json").stdout)
    assert result.returncode == 3
    assert "offline" in result.stderr
    assert next(row for row in status if row["name"] == "ipsum")["entries"] == 1


def test_import_rejects_unknown_feed(iocscope: Runner, tmp_path: Path) -> None:
    feed = tmp_path / "list.txt"
    feed.write_text("203.0.114.66\n", encoding="utf-8")
    result = iocscope("feeds", "import", "nosuchfeed", str(feed))
    assert result.returncode == 2
    assert "unknown feed 'nosuchfeed'" in result.stderr


def test_import_rejects_wrong_format(iocscope: Runner, tmp_path: Path) -> None:
    feed = tmp_path / "page.html"
    feed.write_text("<html><body>blocked</body></html>\n", encoding="utf-8")
    result = iocscope("feeds", "import", "ipsum", str(feed))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "page.html" in result.stderr


def test_status_lists_every_feed(iocscope: Runner) -> None:
    rows = json.loads(iocscope("feeds", "status", "--json").stdout)
    names = {row["name"] for row in rows}
    assert {"ipsum", "feodo", "tor_exits", "firehol_level1", "spamhaus_drop"} <= names
    assert all(row["loaded"] is False for row in rows)
