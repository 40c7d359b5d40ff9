"""Fixtures shared by the source tests: a replay server per module, an HTTP client per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from iocscope.config import Settings
from iocscope.sources.http import build_http_client
from tests.support.replay import ReplayServer, replay_server

# Rewriting the asserts in the shared helpers makes their failures show the values.
pytest.register_assert_rewrite("tests.sources.support")


@pytest.fixture(scope="module")
def server() -> Iterator[ReplayServer]:
    with replay_server() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with build_http_client(Settings()) as shared:
        yield shared
