"""Fixtures of the API tests: a data directory with real feed data, keys and apps.

Verdicts come from the real engine: an IPsum-format feed is imported with
``import_feed``, and the keyless InternetDB source is pointed at a replay
server on 127.0.0.1, so no request leaves the host.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI

from iocscope.api.app import create_app
from iocscope.api.auth import add_key
from iocscope.config import Settings, settings_from_mapping
from iocscope.sources.feeds.store import import_feed
from tests.api.live import running_server
from tests.support.offline import offline_sources
from tests.support.replay import ReplayServer, Reply, replay_server

FIXTURES = Path(__file__).parent / "fixtures"

MALICIOUS_IP = "185.220.101.7"  # on 9 IPsum lists, tagged c2 by InternetDB
SUSPICIOUS_IP = "45.155.205.99"  # on 3 IPsum lists
UNLISTED_IP = "8.8.8.8"  # not listed; InternetDB has not seen it


@dataclass(frozen=True)
class ApiEnv:
    """Settings with real feed data and one active key."""

    settings: Settings
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    @property
    def keys_file(self) -> Path:
        return self.settings.data_dir / "api-keys.json"


def queue_internetdb(replay: ReplayServer) -> None:
    host = {"ip": MALICIOUS_IP, "ports": [22, 9001], "hostnames": [], "tags": ["c2"]}
    replay.queue(f"/{MALICIOUS_IP}", Reply(body=orjson.dumps(host)))
    replay.queue(
        f"/{UNLISTED_IP}", Reply(status=404, body=b'{"detail": "No information available"}')
    )


def build_env(data_dir: Path, replay: ReplayServer) -> ApiEnv:
    import_feed(data_dir, "ipsum", FIXTURES / "ipsum.txt")
    settings = settings_from_mapping(
        {"data_dir": str(data_dir), "sources": offline_sources(replay.base_url)}
    )
    key = add_key(data_dir / "api-keys.json", "tests").plaintext
    return ApiEnv(settings, key)


@pytest.fixture(scope="session")
def replay() -> Iterator[ReplayServer]:
    with replay_server() as server:
        queue_internetdb(server)
        yield server


@pytest.fixture
def env(tmp_path: Path, replay: ReplayServer) -> ApiEnv:
    return build_env(tmp_path / "data", replay)


@asynccontextmanager
async def app_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield an httpx client bound to it in process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def client(env: ApiEnv) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of an app built from ``env``."""
    async with app_client(create_app(env.settings)) as http:
        yield http


@pytest.fixture(scope="session")
def live_env(tmp_path_factory: pytest.TempPathFactory, replay: ReplayServer) -> ApiEnv:
    return build_env(tmp_path_factory.mktemp("live") / "data", replay)


@pytest.fixture(scope="session")
def live_url(live_env: ApiEnv) -> Iterator[str]:
    """The base URL of a real uvicorn server shared by the tests of the session."""
    with running_server(create_app(live_env.settings)) as url:
        yield url
