"""Settings: file discovery, validation messages and secrets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from iocscope.config import (
    Settings,
    SourceSettings,
    load_settings,
    resolve_api_key,
    settings_from_mapping,
)
from iocscope.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SECRET = "PLACEHOLDER-SECRET-1234"


def test_example_file_is_valid() -> None:
    settings = load_settings(REPO / "examples" / "iocscope.toml")
    assert settings.scoring.malicious_threshold == 70


def test_example_file_matches_defaults() -> None:
    from_file = load_settings(REPO / "examples" / "iocscope.toml")
    assert from_file.scope == Settings().scope
    assert from_file.wazuh == Settings().wazuh


def test_env_variable_names_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "custom.toml"
    path.write_text("concurrency = 3\n", encoding="utf-8")
    monkeypatch.setenv("IOCSCOPE_CONFIG", str(path))
    assert load_settings(None).concurrency == 3


def test_explicit_path_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = tmp_path / "a.toml"
    explicit.write_text("concurrency = 5\n", encoding="utf-8")
    other = tmp_path / "b.toml"
    other.write_text("concurrency = 7\n", encoding="utf-8")
    monkeypatch.setenv("IOCSCOPE_CONFIG", str(other))
    assert load_settings(explicit).concurrency == 5


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"concurrency": 0},
            "invalid configuration in <mapping>: concurrency: "
            "Input should be greater than or equal to 1",
        ),
        (
            {"scoring": {"colour": "red"}},
            "invalid configuration in <mapping>: scoring.colour: Extra inputs are not permitted",
        ),
    ],
)
def test_invalid_setting_names_it(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(raw)
    assert str(caught.value) == message


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("concurrency = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.toml is not valid TOML"):
        load_settings(path)


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "absent.toml")
    assert "absent.toml not found" in str(caught.value)


def test_key_from_default_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOCSCOPE_ABUSEIPDB_API_KEY", SECRET)
    key = resolve_api_key("abuseipdb", SourceSettings())
    assert key is not None
    assert key.get_secret_value() == SECRET
    assert SECRET not in repr(key)


def test_key_file_must_not_be_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(SECRET + "\n", encoding="utf-8")
    path.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        resolve_api_key("abuseipdb", SourceSettings(api_key_file=path))
    assert str(caught.value) == (
        f"API key file {path} of source abuseipdb is readable by every user: run chmod 640 {path}"
    )


def test_key_file_first_line(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(f"  {SECRET}  \n# comment\n", encoding="utf-8")
    path.chmod(0o600)
    key = resolve_api_key("abuseipdb", SourceSettings(api_key_file=path))
    assert key is not None
    assert key.get_secret_value() == SECRET


def test_settings_repr_hides_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("IOCSCOPE_ABUSEIPDB_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    key = resolve_api_key("abuseipdb", SourceSettings())
    logging.getLogger("iocscope.test").debug("key is %r and %s", key, key)
    assert SECRET not in caplog.text
