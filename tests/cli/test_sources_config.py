"""``iocscope sources`` and ``iocscope config check``."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Runner
from tests.support.offline import offline_toml
from tests.support.replay import Reply, replay_server

SECRET = "PLACEHOLDER-SECRET-1234"


def test_sources_say_why_disabled(iocscope: Runner, defaults_config: Path) -> None:
    result = iocscope("--config", str(defaults_config), "sources", "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["abuseipdb"]["enabled"] is False
    assert "IOCSCOPE_ABUSEIPDB_API_KEY" in rows["abuseipdb"]["state"]
    assert rows["internetdb"]["enabled"] is True
    assert rows["ipsum"]["state"].startswith("feed ipsum is not synced")


def test_sources_enabled_with_key(iocscope: Runner, defaults_config: Path) -> None:
    result = iocscope(
        "--config",
        str(defaults_config),
        "sources",
        "--json",
        env={"IOCSCOPE_ABUSEIPDB_API_KEY": SECRET},
    )
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["abuseipdb"]["enabled"] is True
    assert SECRET not in result.stdout + result.stderr


def test_config_check_masks_secrets(iocscope: Runner, defaults_config: Path) -> None:
    result = iocscope(
        "--config",
        str(defaults_config),
        "config",
        "check",
        env={"IOCSCOPE_ABUSEIPDB_API_KEY": SECRET},
    )
    effective = json.loads(result.stdout)
    assert result.returncode == 0
    assert effective["api_keys"]["abuseipdb"] == "set (********)"
    assert effective["config_file"] == str(defaults_config)


def test_config_check_without_file(iocscope: Runner) -> None:
    result = iocscope("config", "check", env={"IOCSCOPE_CONFIG": ""})
    assert json.loads(result.stdout)["config_file"] == "none (embedded defaults)"
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


def test_verbose_logs_hide_key(iocscope: Runner, tmp_path: Path) -> None:
    with replay_server() as server:
        server.queue("/api/v2/check", Reply(401, b'{"errors":[{"detail":"bad key","status":401}]}'))
        extra = f'[sources.abuseipdb]\nbase_url = "{server.base_url}"\n'
        sources = offline_toml().replace("[sources.abuseipdb]\nenabled = false\n", "")
        config = tmp_path / "verbose.toml"
        config.write_text(extra + sources, encoding="utf-8")
        result = iocscope(
            "-vv",
            "--config",
            str(config),
            "enrich",
            "203.0.114.66",
            env={"IOCSCOPE_ABUSEIPDB_API_KEY": SECRET},
        )
        sent = server.requests_to("/api/v2/check")
    assert sent[0].headers["key"] == SECRET
    assert "abuseipdb" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_config_check_flags_unknown_source(iocscope: Runner, tmp_path: Path) -> None:
    config = tmp_path / "typo.toml"
    config.write_text("[sources.abusedb]\nenabled = true\n", encoding="utf-8")
    result = iocscope("--config", str(config), "config", "check")
    assert result.returncode == 1
    assert "problem: [sources.abusedb] names no known source" in result.stderr


def test_config_check_flags_plain_http_key(iocscope: Runner, tmp_path: Path) -> None:
    config = tmp_path / "http.toml"
    config.write_text('[sources.abuseipdb]\nbase_url = "http://abuse.example.net"\n', "utf-8")
    result = iocscope("--config", str(config), "config", "check")
    assert result.returncode == 1
    assert "uses plain http, so the API key travels unencrypted" in result.stderr


def test_missing_config_names_option(iocscope: Runner, tmp_path: Path) -> None:
    result = iocscope("--config", str(tmp_path / "absent.toml"), "sources")
    assert result.returncode == 1
    assert "not found: create it or fix the --config option" in result.stderr
