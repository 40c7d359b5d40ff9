"""``iocscope wazuh check`` against a fake manager with one fault at a time."""

from __future__ import annotations

import contextlib
import grp
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from iocscope.cli.wazuh import wazuh_group
from iocscope.wazuh.check import CheckOptions, CheckResult, Status, exit_code, run_checks
from iocscope.wazuh.install import WAZUH_GROUPS, install
from tests.wazuh.test_install import GROUP, options, wazuh_tree

NOW = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
NOW_SECONDS = NOW.timestamp()


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[Path]:
    with wazuh_tree(tmp_path / "ossec") as root:
        install(options(root), clock=lambda: NOW)
        yield root


def results_for(root: Path, **changes: object) -> list[CheckResult]:
    values: dict[str, object] = {"group": GROUP, "now": NOW_SECONDS}
    values.update(changes)
    return run_checks(CheckOptions(root, **values))  # type: ignore[arg-type]


def result(results: list[CheckResult], name: str) -> CheckResult:
    matching = [item for item in results if item.name == name]
    assert len(matching) == 1, [item.name for item in results]
    return matching[0]


def edit_conf(root: Path, old: str, new: str) -> None:
    path = root / "etc/ossec.conf"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_installed_all_ok(installed: Path) -> None:
    results = results_for(installed)
    assert {item.status for item in results} == {Status.OK}
    assert exit_code(results) == 0


def test_write_bits_fail(installed: Path) -> None:
    (installed / "integrations/custom-iocscope").chmod(0o775)
    item = result(results_for(installed), "script integrations/custom-iocscope")
    assert item.status is Status.FAIL
    assert item.detail.startswith(
        "mode 0775 lets the wazuh user write it, and integratord refuses to run such a file"
    )
    assert item.fix.endswith("chmod 750 " + str(installed / "integrations/custom-iocscope"))


def test_not_executable_fail(installed: Path) -> None:
    (installed / "integrations/custom-iocscope.py").chmod(0o640)
    item = result(results_for(installed), "script integrations/custom-iocscope.py")
    assert item.status is Status.FAIL
    assert item.detail == f"the wazuh group cannot read and execute it (group {GROUP}, mode 0640)"


def test_crlf_fail(installed: Path) -> None:
    script = installed / "integrations/custom-iocscope"
    script.write_bytes(script.read_bytes().replace(b"\n", b"\r\n"))
    item = result(results_for(installed), "script integrations/custom-iocscope")
    assert item.status is Status.FAIL
    assert "Windows (CRLF) line endings" in item.detail
    assert "sed -i 's/\\r$//'" in item.fix


def test_missing_shebang_fail(installed: Path) -> None:
    (installed / "integrations/custom-iocscope").write_bytes(b"exec python3 x.py\n")
    item = result(results_for(installed), "script integrations/custom-iocscope")
    assert item.detail == "no #! line, so the kernel cannot run it"


def test_missing_integration_block(installed: Path) -> None:
    edit_conf(installed, "<name>custom-iocscope</name>", "<name>custom-other</name>")
    results = results_for(installed)
    item = result(results, "integration custom-iocscope")
    assert item.status is Status.FAIL
    assert item.detail == "ossec.conf has no <integration> block named custom-iocscope"
    assert exit_code(results) == 1


def test_plain_alert_format_fail(installed: Path) -> None:
    edit_conf(installed, "<alert_format>json</alert_format>", "")
    item = result(results_for(installed), "integration custom-iocscope")
    assert item.status is Status.FAIL
    assert item.detail == "<alert_format> is not json, so the script gets a plain-text alert"


def test_integration_file_missing(installed: Path) -> None:
    (installed / "integrations/custom-iocscope").unlink()
    item = result(results_for(installed), "integration custom-iocscope")
    assert item.status is Status.FAIL
    assert "does not exist: integratord disables the integration" in item.detail


def test_socket_missing(installed: Path) -> None:
    (installed / "queue/sockets/queue").unlink()
    item = result(results_for(installed), "queue socket")
    assert item.status is Status.FAIL
    assert item.detail.endswith("does not exist: analysisd is not running")


def test_socket_not_socket(installed: Path) -> None:
    path = installed / "queue/sockets/queue"
    path.unlink()
    path.write_text("", encoding="utf-8")
    item = result(results_for(installed), "queue socket")
    assert item.detail == f"{path} is not a socket"


def test_socket_without_listener(tmp_path: Path) -> None:
    with wazuh_tree(tmp_path / "ossec") as root:
        install(options(root), clock=lambda: NOW)
    # The tree's socket is closed now, but its file stays behind.
    item = result(results_for(root), "queue socket")
    assert item.status is Status.FAIL
    assert item.detail.endswith("exists but analysisd does not listen on it")


def test_stream_socket_rejected(tmp_path: Path) -> None:
    with wazuh_tree(tmp_path / "ossec") as root:
        install(options(root), clock=lambda: NOW)
    path = root / "queue/sockets/queue"
    path.unlink()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stream:
        stream.bind(str(path))
        stream.listen()
        item = result(results_for(root), "queue socket")
    assert item.detail == f"{path} is not a datagram socket"


def spool_file(root: Path, age_seconds: float, folder: str = "new") -> Path:
    stamp = int((NOW_SECONDS - age_seconds) * 1e9)
    path = root / "var/iocscope/spool" / folder / f"{stamp}.4242.0a1b.alert.json"
    path.write_text("{}", encoding="utf-8")
    return path


def test_spool_backlog_old(installed: Path) -> None:
    spool_file(installed, 900)
    spool_file(installed, 10)
    item = result(results_for(installed), "spool backlog")
    assert item.status is Status.FAIL
    assert item.detail.startswith("2 alerts wait in")
    assert item.detail.endswith(
        "the oldest for 900 s: the iocscope daemon is not running or cannot keep up"
    )


def test_spool_backlog_young(installed: Path) -> None:
    spool_file(installed, 10)
    item = result(results_for(installed), "spool backlog")
    assert item.status is Status.OK
    assert item.detail == "1 alerts waiting"


def test_spool_backlog_mtime(installed: Path) -> None:
    path = installed / "var/iocscope/spool/new/unnamed.json"
    path.write_text("{}", encoding="utf-8")
    os.utime(path, (NOW_SECONDS - 3600, NOW_SECONDS - 3600))
    item = result(results_for(installed), "spool backlog")
    assert item.status is Status.FAIL


def test_spool_bad_files_warn(installed: Path) -> None:
    spool_file(installed, 10, folder="bad")
    item = result(results_for(installed), "spool bad files")
    assert item.status is Status.WARN


def test_spool_missing(tmp_path: Path) -> None:
    with wazuh_tree(tmp_path / "ossec") as root:
        item = result(results_for(root), "spool")
    assert item.status is Status.FAIL
    assert item.detail.endswith("lacks tmp, new, bad/")


def test_queue_buffer_counted(installed: Path, tmp_path: Path) -> None:
    buffer = tmp_path / "data" / "queue-buffer"
    buffer.mkdir(parents=True)
    for number in range(3):
        (buffer / f"{number:020d}.msg").write_bytes(b"1:iocscope:{}")
    item = result(results_for(installed, data_dir=tmp_path / "data"), "queue buffer")
    assert item.status is Status.WARN
    assert item.detail == f"3 events wait in {buffer} for analysisd's queue socket"
    assert item.fix == "start the manager and the iocscope daemon; the daemon sends them first"


def test_queue_buffer_empty(installed: Path, tmp_path: Path) -> None:
    item = result(results_for(installed, data_dir=tmp_path / "data"), "queue buffer")
    assert item.status is Status.OK
    assert item.detail == f"no events waiting in {tmp_path / 'data' / 'queue-buffer'}"


def test_queue_buffer_needs_data_dir(installed: Path) -> None:
    assert "queue buffer" not in [item.name for item in results_for(installed)]


def test_undeclared_list_fail(installed: Path) -> None:
    rules = installed / "etc/rules/iocscope_cdb_rules.xml"
    rules.write_text(
        '<group name="iocscope,">\n  <rule id="100900" level="10">\n'
        "    <if_group>web</if_group>\n"
        '    <list field="srcip" lookup="address_match_key">etc/lists/iocscope-ip</list>\n'
        "    <description>listed</description>\n  </rule>\n</group>\n",
        encoding="utf-8",
    )
    item = result(results_for(installed), "list etc/lists/iocscope-ip")
    assert item.status is Status.FAIL
    assert item.detail.startswith("used by a rule but not declared in ossec.conf")


def test_invalid_rules_file(installed: Path) -> None:
    (installed / "etc/rules/iocscope_rules.xml").write_text("<group><rule></group>", "utf-8")
    item = result(results_for(installed), "rules iocscope_rules.xml")
    assert item.status is Status.FAIL
    assert item.detail.startswith("not valid XML: mismatched tag")


def test_rule_id_collision(installed: Path) -> None:
    (installed / "etc/rules/local_rules.xml").write_text(
        '<group name="local,">\n  <rule id="100801" level="3">\n'
        "    <match>x</match>\n    <description>x</description>\n  </rule>\n</group>\n",
        encoding="utf-8",
    )
    item = result(results_for(installed), "rule IDs")
    assert item.status is Status.FAIL
    assert (
        item.detail == "iocscope's rule IDs are also used by other rules: 100801 in local_rules.xml"
    )


def test_rule_dir_missing(installed: Path) -> None:
    edit_conf(installed, "<rule_dir>etc/rules</rule_dir>", "")
    item = result(results_for(installed), "rule directory")
    assert item.status is Status.FAIL


def test_active_response_without_rules(installed: Path) -> None:
    install(options(installed, ar_rule_ids=(5712,)), clock=lambda: NOW)
    edit_conf(installed, "<rules_id>5712</rules_id>", "<level>3</level>")
    item = result(results_for(installed), "active response")
    assert item.status is Status.WARN
    assert "has no <rules_id>" in item.detail


def test_log_findings_listed(installed: Path) -> None:
    with (installed / "logs/ossec.log").open("a", encoding="utf-8") as log:
        log.write(
            "2024/05/01 10:01:00 wazuh-analysisd: WARNING: (7616): List 'etc/lists/iocscope-ip' "
            "could not be loaded. Rule '100900' will be ignored.\n"
        )
    item = result(results_for(installed), "ossec.log list_not_loaded")
    assert item.status is Status.FAIL
    assert item.detail.startswith(
        "rule 100900 is ignored because the CDB list etc/lists/iocscope-ip is not declared"
    )


def test_missing_group_warns(installed: Path) -> None:
    for name in WAZUH_GROUPS:
        with contextlib.suppress(KeyError):
            grp.getgrnam(name)
            pytest.skip(f"this host has a {name} group")
    item = result(results_for(installed, group=None), "group")
    assert item.status is Status.WARN
    assert item.detail == "group 'wazuh' not found on this host, so file groups are not checked"


def test_cli_exit_codes(installed: Path) -> None:
    runner = CliRunner()
    args = ["check", "--wazuh-dir", str(installed), "--group", GROUP]
    ok = runner.invoke(wazuh_group, args)
    assert ok.exit_code == 0, ok.output
    assert ok.output.splitlines()[0].split() == ["STATUS", "CHECK", "DETAIL"]
    (installed / "integrations/custom-iocscope").chmod(0o777)
    failed = runner.invoke(wazuh_group, args)
    assert failed.exit_code == 1
    assert "fail   script integrations/custom-iocscope" in failed.output
