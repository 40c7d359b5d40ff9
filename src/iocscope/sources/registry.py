"""The explicit registry of every source iocscope knows.

Adding a source means adding one module and one line here; the engine only
sees the ``SourceState`` list this module builds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from iocscope.errors import ConfigError, SourceUnavailableError
from iocscope.sources import (
    abuseipdb,
    crowdsec,
    geoip,
    greynoise,
    hosted,
    internetdb,
    ipinfo,
    malwarebazaar,
    misp,
    opencti,
    otx,
    pulsedive,
    threatfox,
    urlhaus,
    virustotal,
)
from iocscope.sources.contract import Source, SourceMeta
from iocscope.sources.deps import SourceDeps
from iocscope.sources.feeds.catalogue import FEEDS
from iocscope.sources.feeds.source import create_feed_source, feed_meta

logger = logging.getLogger(__name__)

SourceFactory = Callable[[SourceDeps], Source]


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """A source's metadata and the factory that builds it."""

    meta: SourceMeta
    factory: SourceFactory


@dataclass(frozen=True, slots=True)
class SourceState:
    """A source as configured: built and enabled, or the reason it is not."""

    meta: SourceMeta
    source: Source | None
    reason: str

    @property
    def enabled(self) -> bool:
        return self.source is not None


def catalogue() -> tuple[SourceEntry, ...]:
    """Return every known source, API and context sources first, then feeds."""
    modules = (
        virustotal,
        abuseipdb,
        greynoise,
        otx,
        crowdsec,
        pulsedive,
        internetdb,
        urlhaus,
        threatfox,
        malwarebazaar,
        misp,
        opencti,
        ipinfo,
        geoip,
    )
    entries = [SourceEntry(module.META, module.create) for module in modules]
    entries.extend(SourceEntry(meta, factory) for meta, factory in hosted.ENTRIES)
    entries.extend(
        SourceEntry(feed_meta(spec), partial(create_feed_source, spec)) for spec in FEEDS
    )
    return tuple(entries)


def build_sources(deps: SourceDeps) -> tuple[SourceState, ...]:
    """Build every enabled source; the others carry the reason they are off."""
    return tuple(_build_one(entry, deps) for entry in catalogue())


def close_sources(states: tuple[SourceState, ...]) -> None:
    """Release what sources hold open (database readers), for those that have a close()."""
    for state in states:
        close = getattr(state.source, "close", None)
        if callable(close):
            close()


def _build_one(entry: SourceEntry, deps: SourceDeps) -> SourceState:
    name = entry.meta.name
    if not deps.settings.source(name).enabled:
        return SourceState(entry.meta, None, "disabled in the configuration")
    try:
        source = entry.factory(deps)
    except SourceUnavailableError as exc:
        logger.debug("source %s unavailable: %s", name, exc)
        return SourceState(entry.meta, None, str(exc))
    except ConfigError as exc:
        # A broken key file disables its source; the others still work.
        logger.warning("source %s disabled: %s", name, exc)
        return SourceState(entry.meta, None, f"configuration error: {exc}")
    return SourceState(source.meta, source, "enabled")
