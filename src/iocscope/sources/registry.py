"""The explicit registry of every source iocscope knows.

Adding a source means adding one module and one line here; the engine only
sees the ``SourceState`` list this module builds.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

from iocscope.config import Settings
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
    for problem in configuration_problems(deps.settings):
        logger.warning("%s", problem)
    return tuple(_build_one(entry, deps) for entry in catalogue())


def configuration_problems(settings: Settings) -> list[str]:
    """Return source settings that are probably mistakes, as sentences."""
    entries = {entry.meta.name: entry.meta for entry in catalogue()}
    problems = []
    for name in sorted(settings.sources):
        if name not in entries:
            problems.append(
                f"[sources.{name}] names no known source, so it has no effect; "
                f"run `iocscope sources` for the names"
            )
            continue
        base_url = settings.sources[name].base_url or ""
        if entries[name].needs_key and _sends_in_clear(base_url):
            problems.append(
                f"sources.{name}.base_url {base_url!r} uses plain http, so the API key "
                "travels unencrypted; use https"
            )
    return problems


def _sends_in_clear(base_url: str) -> bool:
    parts = urlsplit(base_url)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


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
