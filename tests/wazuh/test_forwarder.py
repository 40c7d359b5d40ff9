"""The custom-iocscope forwarder, run as wazuh-integratord 4.x runs it."""

from __future__ import annotations

import ast
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from iocscope.wazuh import events, queue
from tests.wazuh.harness import (
    ACTIVE_RESPONSE,
    FORWARDER,
    SCRIPTS,
    VERSIONS,
    WazuhTree,
    integratord_argv,
    load_script,
    make_tree,
    run_integratord,
    run_script,
    sample_alert,
    script_env,
    write_alert_file,
)

forwarder = load_script(FORWARDER)

API_KEY = "k3y-0f-a-paid-service-2f9c81"


@pytest.fixture
def tree(tmp_path: Path) -> WazuhTree:
    return make_tree(tmp_path)


def log_lines(tree: WazuhTree) -> list[str]:
    path = tree.logs / "integrations.log"
    return path.read_text("utf-8").splitlines() if path.exists() else []


def alert_bytes(alert: dict[str, Any]) -> bytes:
    return json.dumps(alert, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize(
    ("version", "debug", "expected"),
    [
        ("4.2", False, ["A", "K", "", " > /dev/null 2>&1"]),
        ("4.2", True, ["A", "K", "", "debug"]),
        ("4.7", False, ["A", "K", "", "", "O > /dev/null 2>&1"]),
        ("4.7", True, ["A", "K", "", "debug", "O"]),
        ("4.8", False, ["A", "K", "", "", "O", "10", "3 > /dev/null 2>&1"]),
        ("4.8", True, ["A", "K", "", "debug", "O", "10", "3"]),
    ],
)
def test_argv_shape_per_version(version: str, debug: bool, expected: list[str]) -> None:
    argv = integratord_argv(version, "S", "A", api_key="K", debug=debug, options_file="O")
    assert argv == ["S", *expected]


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("version", VERSIONS)
def test_every_version_spools_alert(tree: WazuhTree, version: str, debug: bool) -> None:
    alert = sample_alert()
    run = run_integratord(tree, alert, version=version, debug=debug)
    assert (run.returncode, run.stderr) == (forwarder.EXIT_OK, "")
    [spooled] = tree.spooled()
    assert spooled.read_bytes() == alert_bytes(alert)
    assert spooled.name.endswith(".alert.json")


def test_debug_logs_one_line_per_alert(tree: WazuhTree) -> None:
    for number in range(3):
        run_integratord(tree, sample_alert(f"1714557600.{number}"), debug=True)
    lines = log_lines(tree)
    assert len(lines) == 3
    for number, line in enumerate(lines):
        assert f" custom-iocscope: alert 1714557600.{number} spooled as " in line


def test_debug_log_holds_no_alert_content(tree: WazuhTree) -> None:
    run_integratord(tree, sample_alert(), debug=True)
    text = "\n".join(log_lines(tree))
    assert "203.0.113.50" not in text
    assert "Failed password" not in text


def test_alert_id_logged_on_one_line(tree: WazuhTree) -> None:
    run_integratord(tree, sample_alert("1714557600.1000\n2024/05/01 forged line"), debug=True)
    [line] = log_lines(tree)
    assert " custom-iocscope: alert 1714557600.1000\\n2024/05/01 forged line spooled as " in line


def test_without_debug_nothing_is_logged(tree: WazuhTree) -> None:
    run_integratord(tree, sample_alert(), debug=False)
    assert not (tree.logs / "integrations.log").exists()


def test_daemon_down_loses_nothing(tree: WazuhTree) -> None:
    alerts = [sample_alert(f"1714557600.{number}") for number in range(100)]
    for alert in alerts:
        assert run_integratord(tree, alert).returncode == forwarder.EXIT_OK
    spooled = tree.spooled()
    assert len(spooled) == 100
    assert sorted(path.read_bytes() for path in spooled) == sorted(map(alert_bytes, alerts))


def test_spool_keeps_alert_bytes_exactly(tree: WazuhTree) -> None:
    raw = b'  {"id": "1.2", "rule": {"level": 3}, "text": "caf\\u00e9 \xc3\xa9", "n": 1.50}\n'
    assert run_integratord(tree, raw).returncode == forwarder.EXIT_OK
    assert [path.read_bytes() for path in tree.spooled()] == [raw]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"a string"',
        b'{"id": "1"} {"id": "2"}',
        b'{"id": ',
        b"{not json}",
        b'{"id": "\\q"}',
        b'{"id": "\xff"}',
        b"\xef\xbb\xbf{}",  # a byte order mark is not JSON
        b"[" * 100_000,
    ],
)
def test_invalid_alert_rejected(tree: WazuhTree, raw: bytes) -> None:
    run = run_integratord(tree, raw, debug=True)
    assert run.returncode == forwarder.EXIT_ALERT_INVALID
    assert "Traceback" not in run.stderr
    assert tree.spooled() == []
    assert log_lines(tree)[-1].endswith("is not one JSON object")


def test_missing_alert_file(tree: WazuhTree) -> None:
    run = run_integratord(tree, None, debug=True)
    assert run.returncode == forwarder.EXIT_ALERT_UNREADABLE
    assert log_lines(tree)[-1].endswith("unreadable: No such file or directory")


@pytest.mark.parametrize("argv_tail", [[], [""], ["", "", "", "debug"]])
def test_missing_alert_argument(tree: WazuhTree, argv_tail: list[str]) -> None:
    run = run_script([str(tree.forwarder), *argv_tail])
    assert run.returncode == forwarder.EXIT_BAD_ARGS
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    "alert",
    [
        sample_alert(
            location="iocscope",
            data={"integration": "iocscope", "iocscope": {"verdict": "malicious"}},
        ),
        sample_alert(location="iocscope", data={"iocscope": {"verdict": "malicious"}}),
        sample_alert(rule={"level": 3, "id": "657", "groups": ["ossec", "active_response"]}),
    ],
    ids=["marker", "payload-key", "active-response"],
)
def test_own_event_dropped(tree: WazuhTree, alert: dict[str, Any]) -> None:
    run = run_integratord(tree, alert, debug=True)
    assert run.returncode == forwarder.EXIT_OWN_EVENT
    assert tree.spooled() == []
    assert log_lines(tree)[-1].endswith(
        "dropped alert 1714557600.1000: iocscope's own event or an active response"
    )


@pytest.mark.parametrize("script", [FORWARDER, ACTIVE_RESPONSE])
def test_loop_guard_matches_daemon_events(script: str) -> None:
    module = load_script(script)
    assert module.OWN_LOCATION == queue.LOCATION
    assert module.OWN_INTEGRATION == events.INTEGRATION


@pytest.mark.parametrize(
    "alert",
    [
        sample_alert(data={"integration": "virustotal", "srcip": "203.0.113.9"}),
        sample_alert(rule={"level": 5, "groups": "iocscope"}),
        sample_alert(rule="iocscope"),
        # A log line that decodes into iocscope's marker is no event of iocscope.
        sample_alert(
            location="/var/log/app.log", data={"integration": "iocscope", "srcip": "203.0.113.9"}
        ),
        sample_alert(rule={"level": 12, "id": "100210", "groups": ["iocscope", "malicious"]}),
        sample_alert(location="iocscope"),
    ],
    ids=[
        "other-integration",
        "groups-not-a-list",
        "rule-not-an-object",
        "marker-from-log-line",
        "rule-group",
        "location-without-marker",
    ],
)
def test_other_events_forwarded(tree: WazuhTree, alert: dict[str, Any]) -> None:
    assert run_integratord(tree, alert).returncode == forwarder.EXIT_OK
    assert len(tree.spooled()) == 1


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("version", ["4.2", "4.7", "4.8"])
def test_api_key_stored_nowhere(tree: WazuhTree, version: str, debug: bool) -> None:
    run = run_integratord(tree, sample_alert(), version=version, debug=debug, api_key=API_KEY)
    assert run.returncode == forwarder.EXIT_OK
    files = [path for path in tree.root.rglob("*") if path.is_file()]
    assert files
    for path in files:
        assert API_KEY.encode() not in path.read_bytes(), path
    assert API_KEY not in run.stdout + run.stderr


def test_api_key_warning_in_debug_log(tree: WazuhTree) -> None:
    run_integratord(tree, sample_alert(), debug=True, api_key=API_KEY)
    assert log_lines(tree)[0].endswith(
        "an API key was passed; iocscope ignores it. Set source API keys in iocscope's "
        "configuration and remove <api_key> from this integration"
    )


def test_launcher_falls_back_to_path_python(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, framework_python=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    env = script_env(PATH=f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    run = run_integratord(tree, sample_alert(), env=env)
    assert (run.returncode, run.stderr) == (forwarder.EXIT_OK, "")
    assert len(tree.spooled()) == 1


def test_missing_spool_created_with_modes(tree: WazuhTree) -> None:
    tree.spool.rmdir()
    old_umask = os.umask(0o077)
    try:
        run = run_integratord(tree, sample_alert())
    finally:
        os.umask(old_umask)
    assert run.returncode == forwarder.EXIT_OK
    for directory in (tree.spool, tree.spool / "tmp", tree.spool / "new"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o770, directory
    [spooled] = tree.spooled()
    assert stat.S_IMODE(spooled.stat().st_mode) == 0o640


def test_spool_env_overrides_default(tree: WazuhTree, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    run = run_integratord(tree, sample_alert(), env=script_env(IOCSCOPE_SPOOL_DIR=str(other)))
    assert run.returncode == forwarder.EXIT_OK
    assert tree.spooled() == []
    assert len(list((other / "new").iterdir())) == 1


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("version", ["4.7", "4.8"])
def test_options_file_sets_spool(
    tree: WazuhTree, tmp_path: Path, version: str, debug: bool
) -> None:
    other = tmp_path / "from-options"
    run = run_integratord(
        tree, sample_alert(), version=version, debug=debug, options={"spool_dir": str(other)}
    )
    assert run.returncode == forwarder.EXIT_OK
    assert tree.spooled() == []
    assert len(list((other / "new").iterdir())) == 1


@pytest.mark.parametrize("options", [{"spool_dir": 5}, {"other": "value"}])
def test_unusable_options_use_default_spool(tree: WazuhTree, options: dict[str, Any]) -> None:
    run = run_integratord(tree, sample_alert(), options=options)
    assert run.returncode == forwarder.EXIT_OK
    assert len(tree.spooled()) == 1


def test_options_file_not_json_uses_default_spool(tree: WazuhTree) -> None:
    alert_file = write_alert_file(tree, sample_alert())
    options_file = tree.temp / "custom-iocscope-1-1.options"
    options_file.write_text("{not json", "utf-8")
    argv = integratord_argv(
        "4.8", str(tree.forwarder), str(alert_file), options_file=str(options_file), debug=True
    )
    assert run_script(argv).returncode == forwarder.EXIT_OK
    assert len(tree.spooled()) == 1
    assert log_lines(tree)[0].endswith("spool_dir is invalid; using the default spool")


def test_unwritable_spool_fails(tree: WazuhTree) -> None:
    tree.spool.rmdir()
    tree.spool.write_text("a file where the spool directory belongs", "utf-8")
    run = run_integratord(tree, sample_alert(), debug=True)
    assert run.returncode == forwarder.EXIT_SPOOL_FAILED
    assert "Traceback" not in run.stderr
    assert "alert 1714557600.1000 not spooled in " in log_lines(tree)[-1]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["s", "a"], ("a", "", False, "", None, None)),
        (["s", "a", "k", "", " > /dev/null 2>&1"], ("a", "k", False, "", None, None)),
        (["s", "a", "", "", "debug", "", "10", "3"], ("a", "", True, "", 10, 3)),
        (
            ["s", "a", "", "", "", "o.options", "15", "5 > /dev/null 2>&1"],
            ("a", "", False, "o.options", 15, 5),
        ),
        (
            ["s", "a", "", "", "", "o.options > /dev/null 2>&1"],
            ("a", "", False, "o.options", None, None),
        ),
        (["s", "a", "", "", "", "", "x10", "-1"], ("a", "", False, "", None, None)),
        (
            ["s", "a", "", "", "", "", "10", "3", ">", "/dev/null", "2>&1"],
            ("a", "", False, "", 10, 3),
        ),
    ],
)
def test_arguments_parsed_leniently(argv: list[str], expected: tuple[object, ...]) -> None:
    parsed = forwarder.Invocation(argv)
    actual = (
        parsed.alert_file,
        parsed.api_key,
        parsed.debug,
        parsed.options_file,
        parsed.timeout,
        parsed.retries,
    )
    assert actual == expected


def reject_constant(name: str) -> float:
    raise ValueError(name)


JSON_TEXTS = [
    '{"a": [1, -2.5e3, true, false, null], "b": {"c": "\\u00e9\\ud83d\\ude00"}}',
    ' \t\n{"n": 123456789012345678901234567890}\r\n',
    '{"nan": NaN}',
    '{"inf": Infinity}',
    '{"ninf": -Infinity}',
    '{"big": 1e400, "lone": "\\ud83d"}',
    '{"dup": 1, "dup": 2}',
    "{}",
    "[]",
    "1",
    '{"a": 1} x',
    '{"a": 1,}',
    "{'a': 1}",
    '{"a": "tab\there"}',
    '{"a": "\\x"}',
    "",
    "   ",
]


@pytest.mark.parametrize("text", JSON_TEXTS)
@pytest.mark.parametrize("c_scanner", [True, False], ids=["_json", "json-fallback"])
def test_json_parser_matches_json_loads(
    text: str, c_scanner: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not c_scanner:
        monkeypatch.setitem(sys.modules, "_json", None)  # the import now raises ImportError
    try:
        expected = json.loads(text, parse_constant=reject_constant)
    except ValueError:
        expected = None
    if not isinstance(expected, dict):
        expected = None
    assert forwarder.parse_json_object(text) == expected


@pytest.mark.parametrize("name", [FORWARDER, "iocscope-ar"])
def test_script_parses_as_python_3_9(name: str) -> None:
    source = (SCRIPTS / f"{name}.py").read_text("utf-8")
    ast.parse(source, feature_version=(3, 9))
