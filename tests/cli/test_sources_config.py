"""``iocscope sources`` and ``iocscope config check``."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Runner

SECRET = "PLACEHOLDER-SECRET-1234"


def test_sources_say_why_disabled(iocscope: Runner) -> None:
    rows = {row["name"]: row for row in json.loads(iocscope("sources", "--json").stdout)}
    assert rows["abuseipdb"]["enabled"] is False
    assert "IOCSCOPE_ABUSEIPDB_API_KEY" in rows["abuseipdb"]["state"]
    assert rows["internetdb"]["enabled"] is True
    assert rows["ipsum"]["state"].startswith("feed ipsum is not synced")


def test_sources_enabled_with_key(iocscope: Runner) -> None:
    result = iocscope("sources", "--json", env={"IOCSCOPE_ABUSEIPDB_API_KEY": SECRET})
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["abuseipdb"]["enabled"] is True
    assert SECRET not in result.stdout + result.stderr


def test_config_check_masks_secrets(iocscope: Runner) -> None:
    result = iocscope("config", "check", env={"IOCSCOPE_ABUSEIPDB_API_KEY": SECRET})
    effective = json.loads(result.stdout)
    assert result.returncode == 0
    assert effective["api_keys"]["abuseipdb"] == "set (********)"
    assert effective["config_file"] == "none (embedded defaults)"
    assert SECRET not in result.stdout + result.stderr


def test_config_check_reports_world_readable_key_file(iocscope: Runner, tmp_path: Path) -> None:
    key = tmp_path / "abuseipdb.key"
    key.write_text(SECRET, encoding="utf-8")
    key.chmod(0o644)
    config = tmp_path / "iocscope.toml"
    config.write_text(f'[sources.abuseipdb]\napi_key_file = "{key}"\n', encoding="utf-8")
    result = iocscope("--config", str(config), "config", "check")
    effective = json.loads(result.stdout)
    assert effective["api_keys"]["abuseipdb"].startswith("invalid: API key file")
    assert SECRET not in result.stdout + result.stderr


def test_verbose_logs_hide_key(iocscope: Runner) -> None:
    result = iocscope("-vv", "enrich", "203.0.114.66", env={"IOCSCOPE_ABUSEIPDB_API_KEY": SECRET})
    assert "abuseipdb" in result.stderr
    assert SECRET not in result.stdout + result.stderr
