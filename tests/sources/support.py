"""Helpers shared by the API source tests.

The per-provider tables of cases stay in each test module. Only the helpers
that are the same for every provider live here.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import pytest

from iocscope.config import Settings
from iocscope.errors import SourceError
from iocscope.sources.deps import SourceDeps

FIXTURES = Path(__file__).parent / "fixtures"

E = TypeVar("E", bound=SourceError)


def fixture(name: str) -> bytes:
    """Return the bytes of a recorded provider body under tests/sources/fixtures."""
    return (FIXTURES / name).read_bytes()


class RecordedSleep:
    """A sleep that returns at once and records every requested wait, in seconds."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def deps(settings: Settings, client: httpx.AsyncClient) -> SourceDeps:
    """Build the dependencies of an API source's ``create``."""
    # API sources never read feeds, so no feed store is loaded.
    return SourceDeps(settings=settings, http=client, feeds=cast(Any, None))


async def raises_exactly(lookup: Awaitable[object], error: type[E], message: str) -> E:
    """Await ``lookup``, check that it raised exactly ``error`` with ``message``, and return it."""
    with pytest.raises(error) as info:
        await lookup

    assert type(info.value) is error
    assert str(info.value) == message
    return info.value


def assert_key_not_logged(key: str, caplog: pytest.LogCaptureFixture, source: object) -> None:
    """Check that ``key`` is in no captured log message, argument, traceback or source repr."""
    for record in caplog.records:
        assert key not in record.getMessage()
        assert key not in repr(record.args)
        assert key not in (record.exc_text or "")
    assert key not in caplog.text
    assert key not in repr(source)
