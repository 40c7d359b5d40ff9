"""The public bug cases about installing and checking the Wazuh integration.

Each case of the integration_failure family that concerns installation or
the self-test, and the security cases about API keys in ossec.conf, runs
against a fake manager directory with the packaged scripts installed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from iocscope.errors import ConfigError
from iocscope.wazuh import ossec_conf
from iocscope.wazuh.check import CheckOptions, CheckResult, Status, render_table, run_checks
from iocscope.wazuh.install import SCRIPT_TARGETS, install
from tests.support.corpus import cases_of
from tests.wazuh.test_install import GROUP, OSSEC_CONF, options, wazuh_tree

NOW = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
ALERT = {
    "timestamp": "2024-05-01T10:00:00.000+0000",
    "rule": {"level": 10, "id": "5712", "groups": ["sshd", "authentication_failures"]},
    "agent": {"id": "001", "name": "host01"},
    "manager": {"name": "wazuh-manager"},
    "id": "1714557600.2000",
    "location": "/var/log/auth.log",
    "data": {"srcip": "203.0.113.50"},
}
# A process that hangs in integratord's one-at-a-time loop stalls every
# later alert; this bound only keeps a broken forwarder from hanging the test.
RUN_BOUND_SECONDS = 30


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[Path]:
    with wazuh_tree(tmp_path / "ossec") as root:
        install(options(root), clock=lambda: NOW)
        yield root


def conf_with(snippet: str) -> str:
    """Return the test ossec.conf with ``snippet`` inside its first <ossec_config>."""
    return OSSEC_CONF.replace("  </global>\n", "  </global>\n  " + snippet + "\n", 1)


def checks(root: Path) -> list[CheckResult]:
    return run_checks(CheckOptions(root, group=GROUP))


def named(results: list[CheckResult], name: str) -> CheckResult:
    matching = [item for item in results if item.name == name]
    assert len(matching) == 1, [item.name for item in results]
    return matching[0]


def run_forwarder(
    root: Path, alert: dict[str, Any], *extra: str
) -> subprocess.CompletedProcess[str]:
    """Run the installed forwarder as integratord does: the alert file first."""
    alert_file = root.parent / "custom-iocscope-1714557600-1.alert"
    alert_file.write_text(json.dumps(alert), encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    return subprocess.run(
        [str(root / "integrations/custom-iocscope"), str(alert_file), *extra],
        capture_output=True,
        text=True,
        timeout=RUN_BOUND_SECONDS,
        env=env,
        check=False,
    )


def spooled(root: Path) -> list[Path]:
    return sorted((root / "var/iocscope/spool/new").iterdir())


def case_b01(case: dict[str, Any], tmp_path: Path) -> None:
    snippet = case["input"]["ossec_conf"]
    with wazuh_tree(tmp_path / "ossec", conf_with(snippet)) as root:
        install(options(root), clock=lambda: NOW)
        with (root / "logs/ossec.log").open("a", encoding="utf-8") as log:
            log.write(
                "2024/05/01 10:00:00 wazuh-integratord: ERROR: Invalid integration: "
                "'ioc-enrich'. Not currently supported.\n"
            )
        results = checks(root)
        conf = (root / "etc/ossec.conf").read_text(encoding="utf-8")
    rejected = named(results, "integration ioc-enrich")
    assert rejected.status is Status.FAIL
    assert "Invalid integration: 'ioc-enrich'. Not currently supported." in rejected.detail
    assert named(results, "ossec.log invalid_integration").status is Status.FAIL
    block = ossec_conf.find_block(conf, ossec_conf.INTEGRATION_BLOCK) or ""
    assert "<name>custom-iocscope</name>" in block
    assert (root / "integrations/custom-iocscope").is_file()


def case_b02(case: dict[str, Any], tmp_path: Path) -> None:
    name = Path(case["input"]["file"]).name
    mode = int(case["input"]["mode"], 8)
    snippet = f"<integration><name>{name}</name><alert_format>json</alert_format></integration>"
    with wazuh_tree(tmp_path / "ossec", conf_with(snippet)) as root:
        install(options(root), clock=lambda: NOW)
        script = root / "integrations" / name
        script.write_bytes(b"#!/bin/sh\nexit 0\n")
        script.chmod(mode)
        item = named(checks(root), f"script integrations/{name}")
        for target in SCRIPT_TARGETS.values():
            assert (root / target).stat().st_mode & 0o777 == 0o750
    assert item.status is Status.FAIL
    assert f"mode {mode:04o} lets the wazuh user write it" in item.detail
    assert "has write permissions" in item.detail


def case_b03(case: dict[str, Any], tmp_path: Path) -> None:
    companion = Path(case["input"]["file"]).name
    name = companion.removesuffix(".py")
    snippet = f"<integration><name>{name}</name><alert_format>json</alert_format></integration>"
    with wazuh_tree(tmp_path / "ossec", conf_with(snippet)) as root:
        install(options(root), clock=lambda: NOW)
        wrapper = root / "integrations" / name
        wrapper.write_bytes(b'#!/bin/sh\nexec python3 "$0.py" "$@"\n')
        wrapper.chmod(0o750)
        script = root / "integrations" / companion
        script.write_bytes(b"import sys\n")
        script.chmod(int(case["input"]["mode"], 8))
        if os.geteuid() == 0:
            os.chown(script, 0, int(case["input"]["owner"].split(":")[1]))
        item = named(checks(root), f"script integrations/{companion}")
    assert item.status is Status.FAIL
    assert "the wazuh group cannot read and execute it" in item.detail
    assert item.fix.endswith(f"chmod 750 {script}")


def case_b04(case: dict[str, Any], tmp_path: Path) -> None:
    first_bytes = case["input"]["first_bytes"].encode("utf-8")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name in SCRIPT_TARGETS:
        (scripts / name).write_bytes(b"#!/bin/sh\nexit 0\n")
    (scripts / "custom-iocscope").write_bytes(first_bytes)
    with wazuh_tree(tmp_path / "ossec") as root:
        with pytest.raises(ConfigError) as raised:
            install(options(root, scripts_dir=scripts))
        assert "has Windows (CRLF) line endings from line 1 on" in str(raised.value)
        install(options(root), clock=lambda: NOW)
        (root / "integrations/custom-iocscope").write_bytes(first_bytes)
        item = named(checks(root), "script integrations/custom-iocscope")
    assert item.status is Status.FAIL
    assert "Windows (CRLF) line endings" in item.detail


def case_b08(case: dict[str, Any], tmp_path: Path) -> None:
    # A provider that accepts connections and never sends a byte.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as provider:
        provider.bind(("127.0.0.1", 0))
        provider.listen()
        provider.setblocking(False)
        hook = f"http://127.0.0.1:{provider.getsockname()[1]}"
        with wazuh_tree(tmp_path / "ossec") as root:
            install(options(root), clock=lambda: NOW)
            conf = (root / "etc/ossec.conf").read_text(encoding="utf-8")
            finished = [
                run_forwarder(root, {**ALERT, "id": f"1714557600.{n}"}, "", hook) for n in (1, 2)
            ]
            waiting = spooled(root)
        with pytest.raises(BlockingIOError):
            provider.accept()
    block = ossec_conf.find_block(conf, ossec_conf.INTEGRATION_BLOCK) or ""
    assert "<hook_url>" not in block
    assert [process.returncode for process in finished] == [0, 0]
    assert len(waiting) == 2


def case_b09(case: dict[str, Any], tmp_path: Path) -> None:
    with wazuh_tree(tmp_path / "ossec", conf_with(case["input"]["ossec_conf"])) as root:
        install(options(root), clock=lambda: NOW)
        install(options(root, integration=ossec_conf.IntegrationOptions(level=10)))
        (root / "integrations/custom-ioc-enrich").write_bytes(b"#!/bin/sh\nexit 0\n")
        (root / "integrations/custom-ioc-enrich").chmod(0o750)
        results = checks(root)
        conf = (root / "etc/ossec.conf").read_text(encoding="utf-8")
    duplicate = [item for item in results if item.name == "integration custom-ioc-enrich"]
    assert Status.WARN in {item.status for item in duplicate}
    assert any(
        item.detail.startswith("2 <integration> blocks name custom-ioc-enrich")
        for item in duplicate
    )
    assert conf.count("<name>custom-iocscope</name>") == 1


def case_b10(case: dict[str, Any], tmp_path: Path) -> None:
    with wazuh_tree(tmp_path / "ossec") as root:
        install(options(root), clock=lambda: NOW)
        finished = run_forwarder(root, case["input"])
        waiting = spooled(root)
        stored = json.loads(waiting[0].read_text(encoding="utf-8"))
    assert finished.returncode == 0, finished.stderr
    assert len(waiting) == 1
    assert stored == case["input"]
    assert stored["previous_output"] == case["input"]["previous_output"]


HANDLERS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "B01": case_b01,
    "B02": case_b02,
    "B03": case_b03,
    "B04": case_b04,
    "B08": case_b08,
    "B09": case_b09,
    "B10": case_b10,
}
INTEGRATION_CASES = [case for case in cases_of("integration_failure") if case["id"] in HANDLERS]


@pytest.mark.corpus
@pytest.mark.parametrize("case", INTEGRATION_CASES, ids=lambda case: case["id"])
def test_integration_case(case: dict[str, Any], tmp_path: Path) -> None:
    HANDLERS[case["id"]](case, tmp_path)


SECURITY_CASES = {case["id"]: case for case in cases_of("security")}


def security_case(case_id: str) -> dict[str, Any]:
    case = SECURITY_CASES.get(case_id)
    if case is None:
        pytest.skip(f"shared case {case_id} is absent")
    return case


@pytest.mark.corpus
def test_b55_api_key_masked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    case = security_case("B55")
    snippet = case["input"]["ossec_conf"]
    secret = snippet.split("<api_key>")[1].split("</api_key>")[0]
    caplog.set_level(logging.DEBUG)
    with wazuh_tree(tmp_path / "ossec", conf_with(snippet)) as root:
        install(options(root), clock=lambda: NOW)
        (root / "integrations/custom-ioc-enrich").write_bytes(b"#!/bin/sh\nexit 0\n")
        (root / "integrations/custom-ioc-enrich").chmod(0o750)
        with (root / "logs/ossec.log").open("a", encoding="utf-8") as log:
            log.write(
                "2024/05/01 10:00:00 wazuh-integratord: ERROR: Couldn't execute command "
                f"({root}/integrations/custom-ioc-enrich /tmp/custom-ioc-enrich-1.alert {secret}"
                "  debug). Check file and permissions.\n"
            )
        results = checks(root)
        conf = (root / "etc/ossec.conf").read_text(encoding="utf-8")
    item = named(results, "integration custom-ioc-enrich")
    assert item.status is Status.WARN
    assert f"<api_key> is set (****{secret[-4:]})" in item.detail
    table = render_table(results)
    assert secret not in table
    assert secret not in caplog.text
    assert "****" + secret[-4:] in named(results, "ossec.log cannot_execute").detail
    block = ossec_conf.find_block(conf, ossec_conf.INTEGRATION_BLOCK) or ""
    assert "<api_key>" not in block


@pytest.mark.corpus
def test_b56_no_key_on_command_line(installed: Path) -> None:
    security_case("B56")
    conf = (installed / "etc/ossec.conf").read_text(encoding="utf-8")
    integrations = ossec_conf.find_elements(conf, "integration")
    assert [element.child_text("name") for element in integrations] == ["custom-iocscope"]
    assert integrations[0].child_text("api_key") is None
    assert integrations[0].child_text("hook_url") is None
    # integratord passes an empty api_key argument when none is configured.
    finished = run_forwarder(installed, ALERT, "", "", "")
    assert finished.returncode == 0, finished.stderr
    assert len(spooled(installed)) == 1
