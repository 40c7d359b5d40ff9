"""``iocscope enrich`` through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Runner
from tests.support.offline import write_offline_config

FEED = "# IPsum-format feed written for these tests\n203.0.114.66\t7\n203.0.114.67\t1\n"


def offline_config(tmp_path: Path) -> Path:
    return write_offline_config(tmp_path / "offline-enrich.toml")


def import_feed(iocscope: Runner, tmp_path: Path) -> None:
    feed = tmp_path / "ipsum.txt"
    feed.write_text(FEED, encoding="utf-8")
    result = iocscope("feeds", "import", "ipsum", str(feed))
    assert result.returncode == 0, result.stderr


def test_listed_address_is_flagged_with_count(iocscope: Runner, tmp_path: Path) -> None:
    import_feed(iocscope, tmp_path)
    config = str(offline_config(tmp_path))
    result = iocscope("--config", config, "enrich", "203.0.114.66", "--json")
    record = json.loads(result.stdout)
    assert result.returncode == 0
    assert record["verdict"] == "malicious"
    assert record["flagged_by"] == ["ipsum"]
    assert "listed by 7 of the IPsum blocklists" in record["reasons"][0]


def test_table_output_names_verdict(iocscope: Runner, tmp_path: Path) -> None:
    import_feed(iocscope, tmp_path)
    result = iocscope("--config", str(offline_config(tmp_path)), "enrich", "203.0.114.67")
    assert result.returncode == 0
    assert "203.0.114.67" in result.stdout
    assert "ipsum" in result.stdout


def test_private_address_asks_no_source(iocscope: Runner) -> None:
    result = iocscope("enrich", "10.1.2.3", "--json")
    record = json.loads(result.stdout)
    assert record["public"] is False
    assert record["sources"] == []
    assert record["reasons"] == [
        "not public (private): 10.0.0.0/8 is private address space (RFC 1918); no source was asked"
    ]


def test_invalid_value_names_rule(iocscope: Runner) -> None:
    result = iocscope("enrich", "010.1.1.1")
    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid indicator '010.1.1.1': ")
    assert "Traceback" not in result.stderr


def test_type_mismatch_is_reported(iocscope: Runner) -> None:
    result = iocscope("enrich", "example-shop.net", "--type", "ipv4")
    assert result.returncode == 1
    assert "invalid indicator 'example-shop.net'" in result.stderr


def test_credentials_never_printed(iocscope: Runner, tmp_path: Path) -> None:
    config = str(offline_config(tmp_path))
    result = iocscope(
        "--config", config, "enrich", "https://bob:S3cretPass@shop.example-store.net/"
    )
    assert "S3cretPass" not in result.stdout + result.stderr


def test_bad_config_file_is_reported(iocscope: Runner, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("concurrency = 0\n", encoding="utf-8")
    result = iocscope("--config", str(config), "enrich", "203.0.114.66")
    assert result.returncode == 1
    assert result.stderr == (
        f"error: invalid configuration in {config}: concurrency: "
        "Input should be greater than or equal to 1\n"
    )
