"""A fake Wazuh directory, and the calls Wazuh 4.x makes to iocscope's scripts.

``run_integratord`` starts the forwarder as wazuh-integratord does. It writes
the alert to a temporary ``<name>-<epoch>-<n>.alert`` file and builds one
command line. It splits that line on spaces into a fixed number of pieces
(Wazuh's ``OS_StrBreak``, no shell), executes the launcher with them and
deletes the alert file afterwards. ``run_execd`` plays wazuh-execd for the active-response
script, including the check_keys handshake.

Argument shapes per integratord version:

- 4.2 to 4.6: path, alert file, API key, hook URL, ``debug`` or empty, split
  into 5 pieces (``integrator.c`` of the 4.x series). Without debug, the
  command ends in `` > /dev/null 2>&1``, which lands in the debug piece.
- 4.7: an options file (or an empty value) follows debug; 6 pieces.
- 4.8 and later: timeout and retries follow the options file; 8 pieces, so
  without debug the redirect is glued to the retries value.

NOTE: the piece counts of 4.7 and 4.8 are inferred from argv that Wazuh
users published for those versions, not read from their integrator.c.

The launcher runs the fake tree's ``framework/python/bin/python3``, a
symbolic link to the interpreter running the tests, unless a tree is made
without it.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import iocscope.wazuh

SCRIPTS = Path(iocscope.wazuh.__file__).parent / "scripts"
FORWARDER = "custom-iocscope"
ACTIVE_RESPONSE = "iocscope-ar"
REDIRECT = " > /dev/null 2>&1"
VERSIONS = ("4.2", "4.3", "4.4", "4.5", "4.6", "4.7", "4.8", "4.9", "4.10", "4.12")
RUN_TIMEOUT = 60.0  # seconds; a safety net against a hung script, not a measurement

_alert_numbers = itertools.count(1)


@dataclass(frozen=True)
class WazuhTree:
    """A Wazuh directory in a temporary directory, with iocscope's scripts installed."""

    root: Path

    @property
    def integrations(self) -> Path:
        return self.root / "integrations"

    @property
    def ar_bin(self) -> Path:
        return self.root / "active-response" / "bin"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def spool(self) -> Path:
        return self.root / "var" / "iocscope" / "spool"

    @property
    def forwarder(self) -> Path:
        return self.integrations / FORWARDER

    @property
    def active_response(self) -> Path:
        return self.ar_bin / ACTIVE_RESPONSE

    @property
    def temp(self) -> Path:
        """Where integratord's temporary files go (``/tmp`` on a manager)."""
        return self.root.parent / "integratord-tmp"

    def spooled(self) -> list[Path]:
        """Return the files in the spool's ``new/``, in name order."""
        new = self.spool / "new"
        return sorted(new.iterdir()) if new.is_dir() else []


@dataclass(frozen=True)
class ArgvShape:
    """How one integratord version lays out the script's arguments."""

    pieces: int
    options: bool
    timeout_retries: bool


@dataclass(frozen=True)
class ScriptRun:
    """The outcome of one script run."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` as a module, to test its functions and constants."""
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), SCRIPTS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_tree(tmp_path: Path, *, framework_python: bool = True) -> WazuhTree:
    """Create a Wazuh directory under ``tmp_path`` with both scripts installed 0750."""
    tree = WazuhTree(tmp_path / "ossec")
    for directory in (
        tree.integrations,
        tree.ar_bin,
        tree.logs,
        tree.spool,
        tree.root / "queue" / "sockets",
        tree.temp,
    ):
        directory.mkdir(parents=True, exist_ok=True)
    for target, name in ((tree.integrations, FORWARDER), (tree.ar_bin, ACTIVE_RESPONSE)):
        for file_name in (name, f"{name}.py"):
            shutil.copyfile(SCRIPTS / file_name, target / file_name)
            (target / file_name).chmod(0o750)
    if framework_python:
        python = tree.root / "framework" / "python" / "bin" / "python3"
        python.parent.mkdir(parents=True)
        python.symlink_to(sys.executable)
    return tree


def argv_shape(version: str) -> ArgvShape:
    """Return the argument layout of integratord ``version`` (``"4.8"``)."""
    major, minor = (int(part) for part in version.split(".")[:2])
    if (major, minor) < (4, 2) or major > 4:
        raise ValueError(f"integratord {version} is outside the supported 4.2 to 4.x range")
    if minor <= 6:
        return ArgvShape(pieces=5, options=False, timeout_retries=False)
    if minor == 7:
        return ArgvShape(pieces=6, options=True, timeout_retries=False)
    return ArgvShape(pieces=8, options=True, timeout_retries=True)


def integratord_argv(
    version: str,
    script: str,
    alert_file: str,
    *,
    api_key: str = "",
    hook_url: str = "",
    debug: bool = False,
    options_file: str = "",
    timeout: int = 10,
    retries: int = 3,
) -> list[str]:
    """Return the argv integratord ``version`` passes, the script path first."""
    shape = argv_shape(version)
    fields = [script, alert_file, api_key, hook_url, "debug" if debug else ""]
    if shape.options:
        fields.append(options_file)
    if shape.timeout_retries:
        fields += [str(timeout), str(retries)]
    command = " ".join(fields)
    if not debug:
        command += REDIRECT
    # OS_StrBreak: at most pieces - 1 splits, empty pieces kept, the rest in the last piece.
    return command.split(" ", shape.pieces - 1)


def script_env(**overrides: str) -> dict[str, str]:
    """Return the environment for a script run, without an inherited spool override."""
    env = {key: value for key, value in os.environ.items() if key != "IOCSCOPE_SPOOL_DIR"}
    env.update(overrides)
    return env


def write_alert_file(tree: WazuhTree, alert: dict[str, Any] | bytes) -> Path:
    """Write the alert as integratord does (unformatted JSON) to a new temporary file."""
    path = tree.temp / f"{FORWARDER}-{int(time.time())}-{next(_alert_numbers)}.alert"
    if isinstance(alert, bytes):
        path.write_bytes(alert)
    else:
        path.write_text(json.dumps(alert, separators=(",", ":"), ensure_ascii=False), "utf-8")
    return path


def run_integratord(
    tree: WazuhTree,
    alert: dict[str, Any] | bytes | None,
    *,
    debug: bool = False,
    version: str = "4.8",
    api_key: str = "",
    hook_url: str = "",
    options: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> ScriptRun:
    """Run the forwarder once for ``alert`` as integratord ``version`` does.

    ``alert=None`` passes the name of an alert file that does not exist.
    Temporary files are deleted after the run, as integratord deletes them.
    """
    if alert is None:
        alert_file = tree.temp / f"{FORWARDER}-{int(time.time())}-{next(_alert_numbers)}.alert"
    else:
        alert_file = write_alert_file(tree, alert)
    options_file = ""
    if options is not None and argv_shape(version).options:
        options_file = str(alert_file.with_suffix(".options"))
        Path(options_file).write_text(json.dumps(options), "utf-8")
    argv = integratord_argv(
        version,
        str(tree.forwarder),
        str(alert_file),
        api_key=api_key,
        hook_url=hook_url,
        debug=debug,
        options_file=options_file,
    )
    try:
        return run_script(argv, env=env)
    finally:
        alert_file.unlink(missing_ok=True)
        if options_file:
            Path(options_file).unlink(missing_ok=True)


def run_script(argv: list[str], *, env: dict[str, str] | None = None) -> ScriptRun:
    """Execute ``argv`` without a shell and return its outcome."""
    completed = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=script_env() if env is None else env,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    return ScriptRun(argv, completed.returncode, completed.stdout, completed.stderr)


def execd_message(command: str, alert: dict[str, Any]) -> dict[str, Any]:
    """Return the message wazuh-execd 4.2+ writes to an active response's stdin."""
    return {
        "version": 1,
        "origin": {"name": "node01", "module": "wazuh-execd"},
        "command": command,
        "parameters": {
            "extra_args": [],
            "alert": alert,
            "program": f"active-response/bin/{ACTIVE_RESPONSE}",
        },
    }


def run_execd(
    tree: WazuhTree,
    message: dict[str, Any] | bytes,
    *,
    reply: str | None = "continue",
    env: dict[str, str] | None = None,
) -> tuple[ScriptRun, list[dict[str, Any]]]:
    """Run the active response with ``message`` on stdin, as wazuh-execd does.

    When the script sends check_keys, execd's ``reply`` command goes back
    (``None`` closes stdin without a reply). Returns the run and the requests the script sent.
    """
    line = message if isinstance(message, bytes) else json.dumps(message).encode()
    argv = [str(tree.active_response)]
    with subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=script_env() if env is None else env,
    ) as process:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(line + b"\n")
        process.stdin.flush()
        requests = _reply_to_handshake(process, reply)
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    run = ScriptRun(argv, process.returncode, stdout.decode(), stderr.decode())
    return run, requests


def _reply_to_handshake(
    process: subprocess.Popen[bytes], reply: str | None
) -> list[dict[str, Any]]:
    assert process.stdin is not None
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], RUN_TIMEOUT)
    request_line = process.stdout.readline() if ready else b""
    if not request_line:
        return []
    request = json.loads(request_line)
    if reply is not None and request.get("command") == "check_keys":
        message = {
            "version": 1,
            "origin": {"name": "node01", "module": "wazuh-execd"},
            "command": reply,
            "parameters": {},
        }
        process.stdin.write(json.dumps(message).encode() + b"\n")
        process.stdin.flush()
    return [request]


def sample_alert(alert_id: str = "1714557600.1000", **extra: Any) -> dict[str, Any]:
    """Return a Wazuh 4.x sshd alert with ``extra`` top-level keys merged in."""
    alert: dict[str, Any] = {
        "timestamp": "2024-05-01T10:00:00.000+0000",
        "rule": {
            "level": 10,
            "description": "sshd: brute force trying to get access to the system.",
            "id": "5712",
            "groups": ["syslog", "sshd", "authentication_failures"],
        },
        "agent": {"id": "001", "name": "web-01", "ip": "192.0.2.10"},
        "manager": {"name": "wazuh-manager"},
        "id": alert_id,
        "full_log": "Failed password for root from 203.0.113.50 port 50022 ssh2",
        "decoder": {"name": "sshd"},
        "data": {"srcip": "203.0.113.50", "srcport": "50022", "dstuser": "root"},
        "location": "/var/log/auth.log",
    }
    alert.update(extra)
    return alert
