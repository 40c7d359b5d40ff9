"""``iocscope wazuh check``: verify a Wazuh manager's iocscope setup and explain each fault.

integratord reports most faults with one generic line, or not at all, so
each check here tests one precondition directly and states what breaks and
how to fix it: the integration names and their script files, modes, owners
and line endings, iocscope's configuration blocks and rules, the CDB list
declarations, analysisd's queue socket, the spool backlog (is the daemon
running?), the events the daemon keeps while analysisd is away (when the
data directory is known) and the known error messages in ``logs/ossec.log``.

Each check returns ``CheckResult`` values with status ``ok``, ``warn`` or
``fail``; ``exit_code`` is 1 when any check failed.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import re
import socket
import stat
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from iocscope.wazuh import logscan, ossec_conf
from iocscope.wazuh.install import (
    AR_FILES,
    CDB_RULES_FILE,
    OSSEC_CONF,
    RULES_FILE,
    SPOOL_DIR,
    SPOOL_SUBDIRS,
    WAZUH_GROUPS,
)
from iocscope.wazuh.logscan import Severity
from iocscope.wazuh.ossec_conf import AR_COMMAND, INTEGRATION_NAME, Element
from iocscope.wazuh.queue import SPILL_DIR_NAME

# Integrations built into integratord (4.x integrator.c, later 4.x
# releases); any other name must start with "custom-".
BUILTIN_INTEGRATIONS = frozenset(
    {"slack", "pagerduty", "virustotal", "shuffle", "maltiverse", "msteams"}
)
CUSTOM_PREFIX = "custom-"
CUSTOM_RULE_IDS = range(100000, 120000)
QUEUE_SOCKET = Path("queue") / "sockets" / "queue"
OSSEC_LOG = Path("logs") / "ossec.log"
INTEGRATIONS_DIR = Path("integrations")
AR_BIN_DIR = Path("active-response") / "bin"
DEFAULT_BACKLOG_MAX_AGE = 300.0  # seconds before a waiting spool file means "daemon down"


class Status(StrEnum):
    """The outcome of one check."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the check table: what was checked, the outcome, and the fix."""

    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """Options of a check run: the Wazuh directory, the integration name, the daemons' group.

    ``group`` names the group of the Wazuh daemons; None tries wazuh, then
    ossec. ``now`` is the clock for the spool age (seconds since the epoch).
    ``data_dir`` is iocscope's data directory; with it, the events waiting
    in the daemon's queue buffer are counted too.
    """

    wazuh_dir: Path
    integration_name: str = INTEGRATION_NAME
    group: str | None = None
    backlog_max_age: float = DEFAULT_BACKLOG_MAX_AGE
    now: float | None = None
    data_dir: Path | None = None


@dataclass
class _Context:
    options: CheckOptions
    gid: int | None
    group: str
    wazuh_uid: int | None
    conf_text: str | None = None
    results: list[CheckResult] = field(default_factory=list)

    @property
    def wazuh_dir(self) -> Path:
        return self.options.wazuh_dir

    def add(self, name: str, status: Status, detail: str, fix: str = "") -> None:
        self.results.append(CheckResult(name, status, detail, fix))


def _resolve_group(group: str | None) -> tuple[str, int | None]:
    for name in (group,) if group else WAZUH_GROUPS:
        try:
            return name, grp.getgrnam(name).gr_gid
        except KeyError:
            continue
    return group or WAZUH_GROUPS[0], None


def _wazuh_uid() -> int | None:
    for name in WAZUH_GROUPS:
        try:
            return pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
    return None


def run_checks(options: CheckOptions) -> list[CheckResult]:
    """Run every check and return the results in table order."""
    group, gid = _resolve_group(options.group)
    context = _Context(options, gid, group, _wazuh_uid())
    if gid is None:
        context.add(
            "group",
            Status.WARN,
            f"group {group!r} not found on this host, so file groups are not checked",
            "run the check on the Wazuh manager, or name the daemons' group with --group",
        )
    _check_conf(context)
    _check_scripts(context)
    _check_rules(context)
    _check_socket(context)
    _check_spool(context)
    _check_queue_buffer(context)
    _check_log(context)
    return context.results


def exit_code(results: list[CheckResult]) -> int:
    """Return 1 when any check failed, else 0."""
    return 1 if any(result.status is Status.FAIL for result in results) else 0


def render_table(results: list[CheckResult]) -> str:
    """Return the results as an aligned text table, fixes on their own lines."""
    width = max([len(result.name) for result in results] + [5])
    lines = [f"{'STATUS':<6} {'CHECK':<{width}} DETAIL"]
    for result in results:
        lines.append(f"{result.status.value:<6} {result.name:<{width}} {result.detail}")
        if result.fix and result.status is not Status.OK:
            lines.append(f"{'':<6} {'':<{width}} fix: {result.fix}")
    counts = Counter(result.status for result in results)
    lines.append(
        f"{counts[Status.OK]} ok, {counts[Status.WARN]} warnings, {counts[Status.FAIL]} failures"
    )
    return "\n".join(lines)


# ossec.conf and the integration blocks


def _check_conf(context: _Context) -> None:
    path = context.wazuh_dir / OSSEC_CONF
    try:
        context.conf_text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        context.add(
            "ossec.conf",
            Status.FAIL,
            f"cannot read {path}: {exc}",
            "pass the Wazuh directory with --wazuh-dir and run as root or in the wazuh group",
        )
        return
    context.add("ossec.conf", Status.OK, str(path))
    integrations = ossec_conf.find_elements(context.conf_text, "integration")
    for element in integrations:
        _check_integration(context, element)
    _check_own_integration(context, integrations)
    _check_active_response(context)


def _check_integration(context: _Context, element: Element) -> None:
    name = element.child_text("name")
    label = f"integration {name or '(no name)'}"
    if element.error is not None or not name:
        reason = element.error or "no <name>"
        context.add(label, Status.FAIL, f"ossec.conf line {element.line}: {reason}")
        return
    if name not in BUILTIN_INTEGRATIONS and not name.startswith(CUSTOM_PREFIX):
        context.add(
            label,
            Status.FAIL,
            f'integratord rejects the name {name!r} (ossec.log: "Invalid integration: '
            f"'{name}'. Not currently supported.\"): custom names must start with 'custom-'",
            f"rename it to custom-{name} in ossec.conf and rename the file to "
            f"integrations/custom-{name}",
        )
        return
    script = context.wazuh_dir / INTEGRATIONS_DIR / name
    if not script.exists():
        context.add(
            label,
            Status.FAIL,
            f"{script} does not exist: integratord disables the integration "
            '("File not found inside")',
            "place the script under exactly that name, without an extension",
        )
        return
    _check_integration_options(context, label, element)


def _check_integration_options(context: _Context, label: str, element: Element) -> None:
    name = element.child_text("name") or ""
    status, problems = Status.OK, []
    if name.startswith(CUSTOM_PREFIX) and element.child_text("alert_format") != "json":
        status = Status.FAIL
        problems.append("<alert_format> is not json, so the script gets a plain-text alert")
    api_key = element.child_text("api_key")
    if api_key and name.startswith(CUSTOM_PREFIX):
        status = Status.FAIL if status is Status.FAIL else Status.WARN
        problems.append(
            f"<api_key> is set ({logscan.mask_secret(api_key)}): integratord passes it as a "
            "command-line argument that every local user can read with ps"
        )
    if not problems:
        context.add(label, Status.OK, f"enabled, script {INTEGRATIONS_DIR / name}")
        return
    context.add(
        label,
        status,
        "; ".join(problems),
        "set <alert_format>json</alert_format> and remove <api_key>; iocscope reads API keys "
        "from its own configuration (environment variable or key file)",
    )


def _check_own_integration(context: _Context, integrations: list[Element]) -> None:
    expected = context.options.integration_name
    names = Counter(element.child_text("name") for element in integrations)
    if names[expected] == 0:
        context.add(
            f"integration {expected}",
            Status.FAIL,
            f"ossec.conf has no <integration> block named {expected}",
            "run `iocscope wazuh install`",
        )
    for name, count in names.items():
        if name and count > 1:
            context.add(
                f"integration {name}",
                Status.WARN,
                f"{count} <integration> blocks name {name}: an alert matching several blocks "
                "runs the script once per block, one run at a time",
                "keep one block and combine its filters",
            )


def _check_active_response(context: _Context) -> None:
    text = context.conf_text or ""
    responses = [
        element
        for element in ossec_conf.find_elements(text, "active-response")
        if element.child_text("command") == AR_COMMAND
    ]
    if not responses:
        context.add("active response", Status.OK, f"{AR_COMMAND} not configured (optional)")
        return
    commands = [
        element
        for element in ossec_conf.find_elements(text, "command")
        if element.child_text("name") == AR_COMMAND
    ]
    if not commands:
        context.add(
            "active response",
            Status.FAIL,
            f"an <active-response> uses {AR_COMMAND} but no <command> defines it",
            "rerun `iocscope wazuh install --ar-rule-ids ...`",
        )
        return
    unbound = [element.line for element in responses if not element.child_text("rules_id")]
    if unbound:
        context.add(
            "active response",
            Status.WARN,
            f"the {AR_COMMAND} response at line {unbound[0]} has no <rules_id>: bound to a "
            "level, it also fires on active-response and iocscope alerts",
            "bind it to explicit rule IDs with <rules_id>",
        )
        return
    context.add("active response", Status.OK, f"{AR_COMMAND} bound to explicit rule IDs")


# Script files


def _script_paths(context: _Context) -> list[Path]:
    """Return iocscope's scripts plus the files of every custom integration in ossec.conf."""
    names = {context.options.integration_name}
    for element in ossec_conf.find_elements(context.conf_text or "", "integration"):
        name = element.child_text("name")
        if name and name.startswith(CUSTOM_PREFIX):
            names.add(name)
    paths = []
    for name in sorted(names):
        script = context.wazuh_dir / INTEGRATIONS_DIR / name
        paths.append(script)
        companion = script.with_name(f"{name}.py")
        if companion.exists() or name == context.options.integration_name:
            paths.append(companion)
    if _ar_configured(context):
        paths += [context.wazuh_dir / AR_BIN_DIR / name for name in AR_FILES]
    return paths


def _ar_configured(context: _Context) -> bool:
    text = context.conf_text or ""
    return ossec_conf.find_block(text, ossec_conf.ACTIVE_RESPONSE_BLOCK) is not None


def _check_scripts(context: _Context) -> None:
    for path in _script_paths(context):
        label = f"script {path.relative_to(context.wazuh_dir)}"
        try:
            info = path.stat()
            data = path.read_bytes()
        except FileNotFoundError:
            context.add(label, Status.FAIL, f"{path} is missing", "run `iocscope wazuh install`")
            continue
        except OSError as exc:
            context.add(label, Status.WARN, f"cannot read {path}: {exc.strerror}")
            continue
        problems = _mode_problems(context, info) + _content_problems(path, data)
        if problems:
            fix = f"chown root:{context.group} {path} && chmod 750 {path}"
            if any("CRLF" in problem for problem in problems):
                fix += f" && sed -i 's/\\r$//' {path}"
            context.add(label, Status.FAIL, "; ".join(problems), fix)
        else:
            mode = stat.S_IMODE(info.st_mode)
            context.add(label, Status.OK, f"mode {mode:04o}, LF line endings")


def _mode_problems(context: _Context, info: os.stat_result) -> list[str]:
    mode = stat.S_IMODE(info.st_mode)
    uid, gid = info.st_uid, info.st_gid
    problems = []
    writable_by_wazuh = mode & 0o022 or (uid == context.wazuh_uid and mode & 0o200)
    if writable_by_wazuh:
        problems.append(
            f"mode {mode:04o} lets the wazuh user write it, and integratord refuses to run "
            'such a file (ossec.log: "has write permissions")'
        )
    group_runs = gid == context.gid and mode & 0o050 == 0o050
    other_runs = mode & 0o005 == 0o005
    if context.gid is not None and not (group_runs or other_runs):
        owner = f"group {_group_name(gid)}, mode {mode:04o}"
        problems.append(f"the wazuh group cannot read and execute it ({owner})")
    elif context.gid is None and mode & 0o050 != 0o050:
        problems.append(f"mode {mode:04o} is not executable by its group")
    return problems


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _content_problems(path: Path, data: bytes) -> list[str]:
    problems = []
    if b"\r\n" in data:
        problems.append(
            "Windows (CRLF) line endings: the interpreter name ends in \\r and exec fails "
            '(ossec.log: "Couldn\'t execute command")'
        )
    if path.suffix != ".py" and not data.startswith(b"#!"):
        problems.append("no #! line, so the kernel cannot run it")
    return problems


# Rules and CDB lists


def _parse_rules(path: Path) -> tuple[ET.Element | None, str | None]:
    """Parse a Wazuh rules file, which may hold several top-level <group> elements."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, str(exc)
    body = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
    try:
        return ET.fromstring(f"<rules>{body}</rules>"), None  # noqa: S314 - local rules file
    except ET.ParseError as exc:
        return None, f"not valid XML: {exc}"


def _rule_id(rule: ET.Element) -> int:
    text = rule.get("id", "")
    return int(text) if text.isdigit() else 0


def _check_rules(context: _Context) -> None:
    own_ids: dict[int, Path] = {}
    used_lists: set[str] = set()
    for relative, required in ((RULES_FILE, True), (CDB_RULES_FILE, False)):
        path = context.wazuh_dir / relative
        if not path.exists():
            if required:
                context.add(
                    f"rules {relative.name}",
                    Status.FAIL,
                    f"{path} is missing",
                    "run `iocscope wazuh install`",
                )
            continue
        tree, error = _parse_rules(path)
        if tree is None:
            context.add(
                f"rules {relative.name}",
                Status.FAIL,
                f"{error}; analysisd stops on an invalid rules file",
                "rerun `iocscope wazuh install` or `iocscope wazuh cdb`",
            )
            continue
        ids = [_rule_id(rule) for rule in tree.iter("rule")]
        outside = [rule_id for rule_id in ids if rule_id not in CUSTOM_RULE_IDS]
        status = Status.FAIL if outside else Status.OK
        detail = f"{len(ids)} rules" + (
            f", IDs outside 100000-119999: {outside}" if outside else ""
        )
        context.add(f"rules {relative.name}", status, detail, "choose another base ID")
        own_ids.update(dict.fromkeys(ids, path))
        used_lists.update(node.text.strip() for node in tree.iter("list") if node.text)
    _check_rule_collisions(context, own_ids)
    _check_rule_dir(context)
    _check_lists(context, used_lists)


def _check_rule_collisions(context: _Context, own_ids: dict[int, Path]) -> None:
    rules_dir = context.wazuh_dir / RULES_FILE.parent
    own_files = set(own_ids.values())
    clashes = []
    for path in sorted(rules_dir.glob("*.xml")) if rules_dir.is_dir() else []:
        if path in own_files:
            continue
        tree, _ = _parse_rules(path)
        if tree is None:
            continue
        for rule in tree.iter("rule"):
            rule_id = _rule_id(rule)
            if rule_id in own_ids and rule.get("overwrite") != "yes":
                clashes.append(f"{rule_id} in {path.name}")
    if clashes:
        context.add(
            "rule IDs",
            Status.FAIL,
            f"iocscope's rule IDs are also used by other rules: {', '.join(clashes)}",
            "choose another base ID with --rule-base-id (or --base-id for the CDB rules)",
        )


def _check_rule_dir(context: _Context) -> None:
    text = context.conf_text
    if text is None:
        return
    dirs: set[str] = set()
    includes: set[str] = set()
    for ruleset in ossec_conf.find_elements(text, "ruleset"):
        dirs.update(value.rstrip("/") for value in ruleset.children_text("rule_dir"))
        includes.update(ruleset.children_text("rule_include"))
    if RULES_FILE.parent.as_posix() in dirs or RULES_FILE.as_posix() in includes:
        return
    context.add(
        "rule directory",
        Status.FAIL,
        "no <rule_dir>etc/rules</rule_dir> in <ruleset>, so analysisd never reads iocscope's rules",
        "add <rule_dir>etc/rules</rule_dir> to the <ruleset> of ossec.conf",
    )


def _check_lists(context: _Context, used_lists: set[str]) -> None:
    if context.conf_text is None or not used_lists:
        return
    declared = ossec_conf.declared_lists(context.conf_text)
    for list_path in sorted(used_lists):
        label = f"list {list_path}"
        if list_path not in declared:
            context.add(
                label,
                Status.FAIL,
                "used by a rule but not declared in ossec.conf, so analysisd ignores the "
                'rule (ossec.log: "could not be loaded")',
                "run `iocscope wazuh cdb`, which declares the lists it writes",
            )
        elif not (context.wazuh_dir / list_path).is_file():
            context.add(
                label, Status.FAIL, "declared but the file is missing", "run `iocscope wazuh cdb`"
            )
        else:
            context.add(label, Status.OK, "declared and present")


# The queue socket and the spool


def _check_socket(context: _Context) -> None:
    path = context.wazuh_dir / QUEUE_SOCKET
    label = "queue socket"
    try:
        mode = path.stat().st_mode
    except OSError:
        context.add(
            label,
            Status.FAIL,
            f"{path} does not exist: analysisd is not running",
            "start the manager: systemctl start wazuh-manager",
        )
        return
    if not stat.S_ISSOCK(mode):
        context.add(
            label,
            Status.FAIL,
            f"{path} is not a socket",
            "restart the manager so analysisd creates it",
        )
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            context.add(
                label,
                Status.FAIL,
                f"{path} exists but analysisd does not listen on it",
                "restart the manager: systemctl restart wazuh-manager",
            )
            return
        except PermissionError:
            context.add(
                label,
                Status.WARN,
                f"{path} exists; this user may not connect to it",
                "run the check as root, or as a member of the wazuh group",
            )
            return
        except OSError as exc:
            if exc.errno == errno.EPROTOTYPE:
                context.add(label, Status.FAIL, f"{path} is not a datagram socket")
            else:
                context.add(label, Status.WARN, f"cannot connect to {path}: {exc.strerror}")
            return
    context.add(label, Status.OK, f"{path} accepts datagrams")


def _spool_age(path: Path, now: float) -> float:
    """Return a spool file's age in seconds, from the nanosecond time in its name."""
    prefix = path.name.split(".", 1)[0]
    if prefix.isdigit():
        return now - int(prefix) / 1e9
    return now - path.stat().st_mtime


def _check_spool(context: _Context) -> None:
    spool = context.wazuh_dir / SPOOL_DIR
    missing = [sub for sub in SPOOL_SUBDIRS if not (spool / sub).is_dir()]
    if missing:
        context.add(
            "spool",
            Status.FAIL,
            f"{spool} lacks {', '.join(missing)}/",
            "run `iocscope wazuh install`",
        )
        return
    now = time.time() if context.options.now is None else context.options.now
    waiting = [path for path in (spool / "new").iterdir() if path.is_file()]
    oldest = max((_spool_age(path, now) for path in waiting), default=0.0)
    if waiting and oldest > context.options.backlog_max_age:
        context.add(
            "spool backlog",
            Status.FAIL,
            f"{len(waiting)} alerts wait in {spool / 'new'}, the oldest for {oldest:.0f} s: "
            "the iocscope daemon is not running or cannot keep up",
            "start it: systemctl start iocscope (or run `iocscope run`) and read its log",
        )
    else:
        context.add("spool backlog", Status.OK, f"{len(waiting)} alerts waiting")
    bad = [path for path in (spool / "bad").iterdir() if path.is_file()]
    if bad:
        context.add(
            "spool bad files",
            Status.WARN,
            f"{len(bad)} unparsable files in {spool / 'bad'}",
            "inspect and delete them; the daemon log names the reason for each",
        )


def _check_queue_buffer(context: _Context) -> None:
    data_dir = context.options.data_dir
    if data_dir is None:
        return
    buffer = data_dir / SPILL_DIR_NAME
    try:
        with os.scandir(buffer) as entries:
            waiting = sum(1 for entry in entries if entry.name.endswith(".msg"))
    except FileNotFoundError:
        waiting = 0  # the daemon creates it when it first has to keep an event
    except OSError as exc:
        context.add(
            "queue buffer",
            Status.WARN,
            f"cannot read {buffer}: {exc.strerror}",
            "run the check as root or as the daemon's user",
        )
        return
    if waiting:
        context.add(
            "queue buffer",
            Status.WARN,
            f"{waiting} events wait in {buffer} for analysisd's queue socket",
            "start the manager and the iocscope daemon; the daemon sends them first",
        )
    else:
        context.add("queue buffer", Status.OK, f"no events waiting in {buffer}")


# ossec.log


def _check_log(context: _Context) -> None:
    path = context.wazuh_dir / OSSEC_LOG
    try:
        findings = logscan.scan_log(path)
    except FileNotFoundError:
        context.add("ossec.log", Status.WARN, f"{path} not found, so it was not scanned")
        return
    except OSError as exc:
        context.add(
            "ossec.log",
            Status.WARN,
            f"cannot read {path}: {exc.strerror}",
            "run the check as root or in the wazuh group",
        )
        return
    if not findings:
        context.add("ossec.log", Status.OK, "no known integration or rule errors")
        return
    for finding in findings:
        status = Status.FAIL if finding.severity is Severity.FAIL else Status.WARN
        detail = (
            f"{finding.meaning} ({finding.count}x, last {finding.last_time}: {finding.example})"
        )
        context.add(f"ossec.log {finding.pattern.key}", status, detail, finding.fix)
