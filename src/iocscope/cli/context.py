"""State shared by the commands: where the configuration comes from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from iocscope.config import Settings, load_settings


@dataclass
class CliContext:
    """The global options, with the settings loaded on first use."""

    config_path: Path | None
    _settings: Settings | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings


def cli_context() -> CliContext:
    """Return the CliContext of the running command."""
    return click.get_current_context().find_object(CliContext) or CliContext(None)
