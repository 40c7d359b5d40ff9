"""Wiring: build the engine and its dependencies from the settings.

The command line and the HTTP service open one runtime and share it: one
HTTP client, one cache, one limiter and the feed indexes loaded once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from iocscope.config import Settings
from iocscope.engine.cache import ResultCache
from iocscope.engine.limits import Limiter
from iocscope.engine.pipeline import Engine
from iocscope.errors import ConfigError
from iocscope.sources.deps import SourceDeps
from iocscope.sources.feeds.store import FeedStore
from iocscope.sources.http import build_http_client
from iocscope.sources.registry import SourceState, build_sources, close_sources

logger = logging.getLogger(__name__)

CACHE_FILE = "cache.sqlite3"
LIMITS_FILE = "limits.sqlite3"


@dataclass(frozen=True)
class Runtime:
    """An engine with the sources it was built from and the loaded feeds."""

    settings: Settings
    engine: Engine
    states: tuple[SourceState, ...]
    feeds: FeedStore
    limiter: Limiter


def ensure_data_dir(path: Path) -> Path:
    """Create the data directory (mode 0700) or explain why it cannot be used."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the data directory {path}: {exc.strerror}; "
            "set data_dir in the configuration or IOCSCOPE_DATA_DIR"
        ) from exc
    return path


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Open the data directory, load the feeds and build every enabled source."""
    data_dir = ensure_data_dir(settings.data_dir)
    feeds = FeedStore.load(data_dir)
    async with build_http_client(settings) as http:
        states = build_sources(SourceDeps(settings=settings, http=http, feeds=feeds))
        cache = ResultCache(data_dir / CACHE_FILE)
        limiter = Limiter(data_dir / LIMITS_FILE)
        try:
            engine = Engine(settings, states, cache=cache, limiter=limiter)
            yield Runtime(
                settings=settings, engine=engine, states=states, feeds=feeds, limiter=limiter
            )
        finally:
            cache.close()
            limiter.close()
            close_sources(states)
