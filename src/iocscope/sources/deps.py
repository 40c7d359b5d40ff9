"""What a source factory receives to build a source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from iocscope.config import Settings

if TYPE_CHECKING:
    from iocscope.sources.feeds.store import FeedStore


@dataclass(frozen=True)
class SourceDeps:
    """Shared dependencies: settings, the one HTTP client and the loaded feeds."""

    settings: Settings
    http: httpx.AsyncClient
    feeds: FeedStore
