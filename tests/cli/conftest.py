"""Run the real ``iocscope`` command in a subprocess with its own data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.offline import write_offline_config

Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def defaults_config(tmp_path: Path) -> Path:
    """An empty configuration file: the embedded defaults, keyless sources enabled."""
    path = tmp_path / "defaults.toml"
    path.write_text("", encoding="utf-8")
    return path


@pytest.fixture
def iocscope(data_dir: Path, tmp_path: Path) -> Runner:
    """Return a function that runs ``python -m iocscope ARGS`` and captures its output.

    The subprocess reads an offline configuration through IOCSCOPE_CONFIG
    unless the test gives ``--config`` or its own IOCSCOPE_CONFIG, so no
    keyless source calls its provider.
    """
    offline = write_offline_config(tmp_path / "offline.toml")

    def run(
        *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("IOCSCOPE_")
        }
        environment.update(
            {
                "IOCSCOPE_DATA_DIR": str(data_dir),
                "IOCSCOPE_CONFIG": str(offline),
                "HOME": str(tmp_path),
            }
        )
        environment.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "iocscope", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
            check=False,
        )

    return run
