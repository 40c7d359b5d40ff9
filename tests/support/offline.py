"""Source settings that keep tests on this host, whatever the registry gains.

Keyless API sources (InternetDB, GreyNoise, ipinfo, Pulsedive) would call
their providers with the default settings; tests turn every source that is
not a local feed off, or point it at a replay server on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

from iocscope.sources.contract import SourceKind
from iocscope.sources.registry import catalogue


def offline_sources(replay_url: str | None = None) -> dict[str, dict[str, object]]:
    """Return settings that turn off every source but the feeds.

    With ``replay_url``, InternetDB stays on, pointed at that replay server.
    """
    sources: dict[str, dict[str, object]] = {
        entry.meta.name: {"enabled": False}
        for entry in catalogue()
        if entry.meta.kind is not SourceKind.FEED
    }
    if replay_url is not None:
        sources["internetdb"] = {"base_url": replay_url, "timeout": 5}
    return sources


def offline_toml(extra: str = "") -> str:
    """Return configuration text that disables every non-feed source, followed by ``extra``."""
    tables = [f"[sources.{name}]\nenabled = false\n" for name in offline_sources()]
    return "\n".join([extra, *tables])


def write_offline_config(path: Path, extra: str = "") -> Path:
    """Write an offline configuration file and return its path."""
    path.write_text(offline_toml(extra), encoding="utf-8")
    return path
