"""``iocscope keys`` and ``iocscope serve``, run as commands."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from click.testing import CliRunner

from iocscope.api.auth import read_keys
from iocscope.cli.keys import keys_group
from iocscope.cli.serve import _is_loopback
from tests.support.offline import offline_sources

SERVE_SCRIPT = "from iocscope.cli.serve import serve_command; serve_command()"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "iocscope.toml"
    tables = "".join(f"\n[sources.{name}]\nenabled = false\n" for name in offline_sources(None))
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n{tables}')
    monkeypatch.setenv("IOCSCOPE_CONFIG", str(path))
    return path


def test_keys_add_prints_key_once(config: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(keys_group, ["add", "soc"])
    key = result.stdout.strip()
    stored = (tmp_path / "data" / "api-keys.json").read_text()
    assert result.exit_code == 0
    assert key.startswith("iocs_")
    assert key.split("_", 2)[2] not in stored
    assert "shown only once" in result.stderr


def test_keys_add_with_rate(config: Path, tmp_path: Path) -> None:
    CliRunner().invoke(keys_group, ["add", "siem", "--rate", "30"])
    records = read_keys(tmp_path / "data" / "api-keys.json")
    assert records[0].rate_per_minute == 30


def test_keys_list_never_shows_secrets(config: Path) -> None:
    runner = CliRunner()
    key = runner.invoke(keys_group, ["add", "soc"]).stdout.strip()
    listed = runner.invoke(keys_group, ["list", "--json"])
    rows = orjson.loads(listed.stdout)
    assert [row["name"] for row in rows] == ["soc"]
    assert rows[0]["revoked"] is None
    assert key.split("_", 2)[2] not in listed.stdout


def test_keys_revoke(config: Path) -> None:
    runner = CliRunner()
    runner.invoke(keys_group, ["add", "soc"])
    result = runner.invoke(keys_group, ["revoke", "soc"])
    rows = orjson.loads(runner.invoke(keys_group, ["list", "--json"]).stdout)
    assert result.exit_code == 0
    assert result.stdout.startswith("API key soc (id ")
    assert rows[0]["revoked"] is not None


def test_keys_revoke_unknown_fails(config: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(keys_group, ["revoke", "nobody"])
    assert result.exit_code != 0
    assert str(result.exception) == (
        f"no active API key named 'nobody' in {tmp_path / 'data' / 'api-keys.json'}: "
        "see iocscope keys list"
    )


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("db", False)],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert _is_loopback(host) is loopback


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_signal(config: Path, stop: signal.Signals) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, "--port", str(port)],
        env={**os.environ, "IOCSCOPE_CONFIG": str(config)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        body = wait_for_health(f"http://127.0.0.1:{port}/healthz", process)
    finally:
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=20)
    lines = stderr.decode().splitlines()
    assert body == {"status": "ok"}
    assert process.returncode == 0
    assert b"Traceback" not in stderr
    assert f"serving iocscope on http://127.0.0.1:{port}" in lines
    assert lines[-1] == f"iocscope serve stopped by {stop.name}"


def wait_for_health(url: str, process: subprocess.Popen[bytes]) -> object:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}")
        try:
            return httpx.get(url, timeout=1).json()
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("serve did not answer /healthz")
