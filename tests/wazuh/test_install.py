"""Install and uninstall against a fake Wazuh manager directory in tmp_path."""

from __future__ import annotations

import grp
import os
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from iocscope.cli.wazuh import wazuh_group
from iocscope.errors import ConfigError
from iocscope.wazuh import check, ossec_conf
from iocscope.wazuh.install import (
    SCRIPT_TARGETS,
    WAZUH_GROUPS,
    InstallOptions,
    Ownership,
    Placer,
    install,
    resolve_ownership,
    uninstall,
)
from iocscope.wazuh.ossec_conf import IntegrationOptions

# The group of this test process: files it creates get it, so checks that
# compare groups pass without a real wazuh group on the test machine.
GROUP = grp.getgrgid(os.getegid()).gr_name
NOW = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)

OSSEC_CONF = """<!--
  Wazuh - Manager - Default configuration
-->

<ossec_config>
  <global>
    <jsonout_output>yes</jsonout_output>
    <logall>no</logall>
  </global>

  <!-- Active response -->
  <ruleset>
    <!-- Default ruleset -->
    <decoder_dir>ruleset/decoders</decoder_dir>
    <rule_dir>ruleset/rules</rule_dir>
    <list>etc/lists/audit-keys</list>

    <!-- User-defined ruleset -->
    <decoder_dir>etc/decoders</decoder_dir>
    <rule_dir>etc/rules</rule_dir>
  </ruleset>
</ossec_config>

<ossec_config>
  <localfile>
    <log_format>syslog</log_format>
    <location>/var/log/syslog</location>
  </localfile>
</ossec_config>
"""

LOCAL_RULES = """<group name="local,syslog,">
  <rule id="100001" level="5">
    <if_sid>5716</if_sid>
    <description>sshd: authentication failed.</description>
  </rule>
</group>
"""


@contextmanager
def wazuh_tree(root: Path, conf: str = OSSEC_CONF) -> Iterator[Path]:
    """Build a manager directory with a bound queue socket; the socket closes on exit."""
    for directory in (
        "etc/rules",
        "etc/lists",
        "integrations",
        "active-response/bin",
        "logs",
        "queue/sockets",
        "var/run",
    ):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "etc/ossec.conf").write_text(conf, encoding="utf-8")
    (root / "etc/ossec.conf").chmod(0o660)
    (root / "etc/rules/local_rules.xml").write_text(LOCAL_RULES, encoding="utf-8")
    (root / "etc/lists/audit-keys").write_text("watch:write\n", encoding="utf-8")
    (root / "logs/ossec.log").write_text(
        "2024/05/01 09:59:00 wazuh-analysisd: INFO: Started (pid: 4242).\n", encoding="utf-8"
    )
    queue = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    queue.bind(str(root / "queue/sockets/queue"))
    try:
        yield root
    finally:
        queue.close()


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Path]:
    with wazuh_tree(tmp_path / "ossec") as root:
        yield root


def options(root: Path, **changes: object) -> InstallOptions:
    values: dict[str, object] = {"wazuh_dir": root, "group": GROUP}
    values.update(changes)
    return InstallOptions(**values)  # type: ignore[arg-type]


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Return every file and directory under ``root`` with its mode and content."""
    state = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if stat.S_ISREG(info.st_mode) else b""
        state[str(path.relative_to(root))] = (info.st_mode, content)
    return state


def backups(root: Path) -> list[Path]:
    return sorted((root / "etc").glob("ossec.conf.iocscope-*.bak"))


def test_install_then_check_pass(manager: Path) -> None:
    install(options(manager), clock=lambda: NOW)
    results = check.run_checks(check.CheckOptions(manager, group=GROUP))
    failures = [result for result in results if result.status is not check.Status.OK]
    assert failures == []
    assert check.exit_code(results) == 0


def test_install_places_files(manager: Path) -> None:
    install(options(manager), clock=lambda: NOW)
    for target in SCRIPT_TARGETS.values():
        assert stat.S_IMODE((manager / target).stat().st_mode) == 0o750
    assert stat.S_IMODE((manager / "etc/rules/iocscope_rules.xml").stat().st_mode) == 0o660
    for sub in ("tmp", "new", "bad"):
        spool = manager / "var/iocscope/spool" / sub
        assert stat.S_IMODE(spool.stat().st_mode) == 0o770
    assert stat.S_IMODE((manager / "etc/ossec.conf").stat().st_mode) == 0o660


def test_install_twice_is_idempotent(manager: Path) -> None:
    first = install(options(manager), clock=lambda: NOW)
    after_first = snapshot(manager)
    second = install(options(manager), clock=lambda: NOW)
    assert first.changed
    assert not second.changed
    assert second.diff == ""
    assert snapshot(manager) == after_first
    assert len(backups(manager)) == 1


def test_backup_holds_original(manager: Path) -> None:
    install(options(manager), clock=lambda: NOW)
    assert backups(manager)[0].name == "ossec.conf.iocscope-20240501T100000.bak"
    assert backups(manager)[0].read_text(encoding="utf-8") == OSSEC_CONF


def test_second_change_same_second(manager: Path) -> None:
    install(options(manager), clock=lambda: NOW)
    install(options(manager, ar_rule_ids=(5712,)), clock=lambda: NOW)
    names = [path.name for path in backups(manager)]
    assert names == [
        "ossec.conf.iocscope-20240501T100000-1.bak",
        "ossec.conf.iocscope-20240501T100000.bak",
    ]


def test_uninstall_restores(manager: Path) -> None:
    install(options(manager, ar_rule_ids=(5712,)), clock=lambda: NOW)
    result = uninstall(options(manager), clock=lambda: NOW)
    assert (manager / "etc/ossec.conf").read_text(encoding="utf-8") == OSSEC_CONF
    for target in SCRIPT_TARGETS.values():
        assert not (manager / target).exists()
    assert not (manager / "etc/rules/iocscope_rules.xml").exists()
    assert not (manager / "var/iocscope").exists()
    assert len(backups(manager)) == 2
    assert result.changed


def test_uninstall_keeps_busy_spool(manager: Path) -> None:
    install(options(manager), clock=lambda: NOW)
    waiting = manager / "var/iocscope/spool/new/1714557600000000000.1.ab.alert.json"
    waiting.write_text("{}", encoding="utf-8")
    result = uninstall(options(manager), clock=lambda: NOW)
    assert waiting.exists()
    assert any("still holds files (1 in new/)" in note for note in result.notes)


def test_dry_run_writes_nothing(manager: Path) -> None:
    before = snapshot(manager)
    result = install(options(manager, dry_run=True), clock=lambda: NOW)
    assert snapshot(manager) == before
    assert "+    <name>custom-iocscope</name>" in result.diff
    verbs = {action.verb for action in result.actions}
    assert verbs == {"would write", "would mkdir", "would edit"}


def test_uninstall_dry_run_writes_nothing(manager: Path) -> None:
    install(options(manager), clock=lambda: NOW)
    before = snapshot(manager)
    result = uninstall(options(manager, dry_run=True), clock=lambda: NOW)
    assert snapshot(manager) == before
    assert "-    <name>custom-iocscope</name>" in result.diff


def test_crlf_conf_keeps_line_endings(tmp_path: Path) -> None:
    original = OSSEC_CONF.replace("\n", "\r\n").encode("utf-8")
    with wazuh_tree(tmp_path / "ossec") as root:
        conf = root / "etc/ossec.conf"
        conf.write_bytes(original)
        install(options(root, ar_rule_ids=(5712,)), clock=lambda: NOW)
        installed = conf.read_bytes()
        again = install(options(root, ar_rule_ids=(5712,)), clock=lambda: NOW)
        uninstall(options(root), clock=lambda: NOW)
        assert conf.read_bytes() == original
    assert b"<name>custom-iocscope</name>\r\n" in installed
    assert installed.count(b"\n") == installed.count(b"\r\n")
    assert not again.changed


def test_mixed_line_endings_kept(tmp_path: Path) -> None:
    original = OSSEC_CONF.replace("\n", "\r\n", 3).encode("utf-8")
    with wazuh_tree(tmp_path / "ossec") as root:
        conf = root / "etc/ossec.conf"
        conf.write_bytes(original)
        install(options(root), clock=lambda: NOW)
        uninstall(options(root), clock=lambda: NOW)
        assert conf.read_bytes() == original


def test_active_response_added_and_removed(manager: Path) -> None:
    install(options(manager, ar_rule_ids=(5712, 5763)), clock=lambda: NOW)
    conf = (manager / "etc/ossec.conf").read_text(encoding="utf-8")
    assert "<rules_id>5712,5763</rules_id>" in conf
    install(options(manager), clock=lambda: NOW)
    conf = (manager / "etc/ossec.conf").read_text(encoding="utf-8")
    assert ossec_conf.find_block(conf, "active-response") is None


def test_integration_filters_written(manager: Path) -> None:
    integration = IntegrationOptions(level=7, groups=("sshd",), rule_ids=(5712,))
    install(options(manager, integration=integration), clock=lambda: NOW)
    conf = (manager / "etc/ossec.conf").read_text(encoding="utf-8")
    element = ossec_conf.find_elements(conf, "integration")[0]
    assert element.child_text("level") == "7"
    assert element.child_text("group") == "sshd"
    assert element.child_text("rule_id") == "5712"


def test_crlf_script_rejected(manager: Path, tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name in SCRIPT_TARGETS:
        (scripts / name).write_bytes(b"#!/bin/sh\nexit 0\n")
    (scripts / "custom-iocscope").write_bytes(b"#!/bin/sh\r\nexit 0\r\n")
    with pytest.raises(ConfigError) as raised:
        install(options(manager, scripts_dir=scripts))
    assert str(raised.value) == (
        "script custom-iocscope has Windows (CRLF) line endings from line 1 on: Wazuh cannot "
        "run it. Convert it to LF (for example with dos2unix) or reinstall iocscope"
    )
    assert not (manager / "integrations/custom-iocscope").exists()


def test_missing_script_rejected(manager: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        install(options(manager, scripts_dir=tmp_path))
    assert (
        str(raised.value)
        == f"script custom-iocscope is missing from {tmp_path}: reinstall iocscope"
    )


def test_not_a_manager(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        install(options(tmp_path))
    assert str(raised.value) == (
        f"{tmp_path}/etc/ossec.conf not found: {tmp_path} is not a Wazuh manager directory; "
        "pass the right one with --wazuh-dir"
    )


def test_unknown_group_rejected() -> None:
    with pytest.raises(ConfigError) as raised:
        resolve_ownership("no-such-group-iocscope")
    assert str(raised.value) == (
        "group 'no-such-group-iocscope' does not exist on this host: check --group"
    )


@pytest.mark.skipif(
    os.geteuid() != 0 or any(name in {g.gr_name for g in grp.getgrall()} for name in WAZUH_GROUPS),
    reason="needs root on a host without a wazuh or ossec group",
)
def test_dry_run_without_wazuh_group(manager: Path) -> None:
    with pytest.raises(ConfigError):
        install(options(manager, group=None), clock=lambda: NOW)
    result = install(options(manager, group=None, dry_run=True), clock=lambda: NOW)
    assert f"chown root:wazuh {manager}/integrations/custom-iocscope" in result.chown_commands
    assert result.notes[0] == (
        "group 'wazuh' does not exist on this host; the owners shown assume it does on the "
        "Wazuh manager"
    )


def test_dry_run_with_missing_group(manager: Path) -> None:
    result = install(
        options(manager, group="no-such-group-iocscope", dry_run=True), clock=lambda: NOW
    )
    assert (
        f"chown root:no-such-group-iocscope {manager}/var/iocscope/spool" in result.chown_commands
    )


def test_not_root_prints_chown(tmp_path: Path) -> None:
    placer = Placer(Ownership("wazuh", None), dry_run=False)
    target = tmp_path / "integrations" / "custom-iocscope"
    placer.write(target, b"#!/bin/sh\n", 0o750)
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
    assert placer.result.chown_commands == [f"chown root:wazuh {target}"]


def test_not_root_ownership_has_no_gid() -> None:
    ownership = resolve_ownership(GROUP, is_root=False)
    assert ownership == Ownership(GROUP, None)


def test_systemd_unit_written(manager: Path, tmp_path: Path) -> None:
    unit = tmp_path / "units" / "iocscope.service"
    executable = tmp_path / "bin" / "iocscope"
    result = install(options(manager, systemd_unit=unit, executable=executable), clock=lambda: NOW)
    text = unit.read_text(encoding="utf-8")
    assert f"ExecStart={executable} run\n" in text
    assert f"SupplementaryGroups={GROUP}\n" in text
    assert f"ReadWritePaths={manager}/var/iocscope/spool {manager}/queue/sockets\n" in text
    assert any("systemctl enable --now iocscope.service" in note for note in result.notes)
    uninstall(options(manager, systemd_unit=unit), clock=lambda: NOW)
    assert not unit.exists()


def test_cli_install_and_uninstall(manager: Path) -> None:
    runner = CliRunner()
    args = ["--wazuh-dir", str(manager)]
    first = runner.invoke(wazuh_group, ["install", *args, "--group", GROUP, "--level", "5"])
    assert first.exit_code == 0, first.output
    assert f"edit        {manager}/etc/ossec.conf\n" in first.output
    again = runner.invoke(wazuh_group, ["install", *args, "--group", GROUP, "--level", "5"])
    assert again.output.endswith("already up to date\n")
    removed = runner.invoke(wazuh_group, ["uninstall", *args])
    assert removed.exit_code == 0, removed.output
    assert (manager / "etc/ossec.conf").read_text(encoding="utf-8") == OSSEC_CONF


def test_cli_dry_run(manager: Path) -> None:
    result = CliRunner().invoke(
        wazuh_group, ["install", "--wazuh-dir", str(manager), "--group", GROUP, "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"--- {manager}/etc/ossec.conf (current)\n")
    assert result.output.endswith("dry run: nothing was written\n")
    assert backups(manager) == []


def test_cli_rejects_bad_rule_ids(manager: Path) -> None:
    result = CliRunner().invoke(
        wazuh_group, ["install", "--wazuh-dir", str(manager), "--ar-rule-ids", "5712,abc"]
    )
    assert result.exit_code == 2
    assert "expected comma-separated rule IDs, got '5712,abc'" in result.output
