"""``iocscope wazuh install`` and ``uninstall``: put iocscope into a Wazuh manager.

The installer copies the forwarder and active-response scripts with the
owner and mode Wazuh requires, writes the rules file, creates the spool
directories and edits ``ossec.conf`` through marked blocks (see
``iocscope.wazuh.ossec_conf``) after a timestamped backup. Every step is
idempotent: a second run reports each item as unchanged and makes no backup.
With ``dry_run`` nothing is written; the result lists what would change and
the diff of ``ossec.conf``.

Modes and owners follow the wazuh-manager package (4.x
``packages/rpms/SPECS/wazuh-manager.spec``): ``integrations/*`` and
``active-response/bin/*`` are 0750 root:wazuh, ``etc/ossec.conf`` and rule
files 0660 with group wazuh. wazuh-integratord and wazuh-execd run as the
wazuh user, and integratord refuses a script that user can write.
"""

from __future__ import annotations

import grp
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from iocscope.errors import ConfigError
from iocscope.wazuh import ossec_conf
from iocscope.wazuh.ossec_conf import (
    ACTIVE_RESPONSE_BLOCK,
    INTEGRATION_BLOCK,
    ActiveResponseOptions,
    IntegrationOptions,
)
from iocscope.wazuh.rules import render_rules

logger = logging.getLogger(__name__)

# Script files shipped in iocscope/wazuh/scripts and where each goes, relative
# to the Wazuh directory. integratord runs integrations/<name> exactly as
# named (4.x integrator.c appends no extension).
INTEGRATION_FILES = ("custom-iocscope", "custom-iocscope.py")
AR_FILES = ("iocscope-ar", "iocscope-ar.py")
SCRIPT_TARGETS: dict[str, Path] = {
    **{name: Path("integrations") / name for name in INTEGRATION_FILES},
    **{name: Path("active-response") / "bin" / name for name in AR_FILES},
}
RULES_FILE = Path("etc") / "rules" / "iocscope_rules.xml"
CDB_RULES_FILE = Path("etc") / "rules" / "iocscope_cdb_rules.xml"
LISTS_DIR = Path("etc") / "lists"
LIST_PREFIX = "iocscope-"
SPOOL_PARENT = Path("var") / "iocscope"
SPOOL_DIR = SPOOL_PARENT / "spool"
SPOOL_SUBDIRS = ("tmp", "new", "bad")
OSSEC_CONF = Path("etc") / "ossec.conf"
DEFAULT_SYSTEMD_UNIT = Path("/etc/systemd/system/iocscope.service")
DEFAULT_RULE_BASE_ID = 100800

SCRIPT_MODE = 0o750
RULES_MODE = 0o660
SPOOL_MODE = 0o770
SPOOL_PARENT_MODE = 0o750
UNIT_MODE = 0o644
# Group names of the Wazuh daemons: "wazuh" from 4.2 on, "ossec" before.
WAZUH_GROUPS = ("wazuh", "ossec")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Return the current time in UTC, the default clock for backup names."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Action:
    """One thing the installer did, or would do in a dry run."""

    verb: str
    path: Path
    detail: str = ""

    def __str__(self) -> str:
        suffix = f" ({self.detail})" if self.detail else ""
        return f"{self.verb:<11} {self.path}{suffix}"


@dataclass
class InstallResult:
    """The actions of an install or uninstall, the ossec.conf diff and the admin's next steps."""

    actions: list[Action] = field(default_factory=list)
    diff: str = ""
    chown_commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether anything was (or in a dry run would be) written or removed."""
        return any(action.verb not in {"unchanged", "keep"} for action in self.actions)


@dataclass(frozen=True, slots=True)
class Ownership:
    """The group that owns installed files and whether this process can chown to it.

    ``gid`` is None when the process is not root: files then get their mode
    only, and ``chown_command`` gives the command the admin must run.
    """

    group: str
    gid: int | None

    def chown_command(self, path: Path) -> str:
        return f"chown root:{self.group} {path}"


def resolve_ownership(group: str | None = None, *, is_root: bool | None = None) -> Ownership:
    """Return the group to own installed files: ``group``, else wazuh, else ossec.

    Raises ConfigError when running as root and the group does not exist,
    because files owned by the wrong group cannot be run by Wazuh.
    """
    root = os.geteuid() == 0 if is_root is None else is_root
    candidates = (group,) if group else WAZUH_GROUPS
    for name in candidates:
        try:
            gid = grp.getgrnam(name).gr_gid
        except KeyError:
            continue
        return Ownership(name, gid if root else None)
    if group:
        raise ConfigError(f"group {group!r} does not exist on this host: check --group")
    if root:
        raise ConfigError(
            "neither group 'wazuh' nor 'ossec' exists on this host: run the installer on the "
            "Wazuh manager, or name the group of the Wazuh daemons with --group"
        )
    return Ownership(WAZUH_GROUPS[0], None)


@dataclass(frozen=True, slots=True)
class InstallOptions:
    """Settings of ``install`` and ``uninstall``; paths are absolute or relative to the cwd.

    ``scripts_dir`` replaces the packaged scripts, for tests and patched
    scripts. ``executable`` is the ``iocscope`` command the systemd unit
    starts; None looks for it next to the running Python, then on PATH.
    """

    wazuh_dir: Path
    integration: IntegrationOptions = field(default_factory=IntegrationOptions)
    rule_base_id: int = DEFAULT_RULE_BASE_ID
    ar_rule_ids: tuple[int, ...] = ()
    systemd_unit: Path | None = None
    dry_run: bool = False
    group: str | None = None
    scripts_dir: Path | None = None
    executable: Path | None = None


class Placer:
    """Writes files and directories with a mode and the Wazuh group; a dry run only records."""

    def __init__(self, ownership: Ownership, *, dry_run: bool) -> None:
        self.ownership = ownership
        self.dry_run = dry_run
        self.result = InstallResult()

    def _record(self, verb: str, path: Path, detail: str = "") -> None:
        if self.dry_run and verb not in {"unchanged", "keep"}:
            verb = f"would {verb}"
        self.result.actions.append(Action(verb, path, detail))

    def _own(self, path: Path, mode: int) -> None:
        os.chmod(path, mode)
        if self.ownership.gid is None:
            self._add_chown_command(path)
        else:
            os.chown(path, 0, self.ownership.gid)

    def _add_chown_command(self, path: Path) -> None:
        if self.ownership.gid is None:
            self.result.chown_commands.append(self.ownership.chown_command(path))

    def _is_current(self, path: Path, data: bytes, mode: int) -> bool:
        try:
            status = path.stat()
            current = path.read_bytes()
        except OSError:
            return False
        if current != data or status.st_mode & 0o7777 != mode:
            return False
        return self.ownership.gid is None or (status.st_uid, status.st_gid) == (
            0,
            self.ownership.gid,
        )

    def write(self, path: Path, data: bytes, mode: int) -> None:
        """Write ``data`` atomically unless the file already contains it with the right mode."""
        if self._is_current(path, data, mode):
            self._record("unchanged", path)
            self._add_chown_command(path)
            return
        self._record("write", path, f"mode {mode:04o}")
        if self.dry_run:
            self._add_chown_command(path)
            return
        write_atomic(path, data, mode)
        self._own(path, mode)

    def mkdir(self, path: Path, mode: int) -> None:
        """Create a directory and its missing parents with ``mode``, or fix the mode."""
        if path.is_dir() and path.stat().st_mode & 0o7777 == mode:
            self._record("unchanged", path)
            return
        self._record("mkdir" if not path.exists() else "chmod", path, f"mode {mode:04o}")
        if self.dry_run:
            self._add_chown_command(path)
            return
        path.mkdir(parents=True, exist_ok=True)
        self._own(path, mode)

    def remove(self, path: Path) -> None:
        """Remove a file when it exists."""
        if not path.exists() and not path.is_symlink():
            return
        self._record("remove", path)
        if not self.dry_run:
            path.unlink()

    def rmdir(self, path: Path) -> None:
        """Remove an empty directory when it exists."""
        if not path.is_dir():
            return
        self._record("remove", path)
        if not self.dry_run:
            path.rmdir()

    def keep(self, path: Path, reason: str) -> None:
        self._record("keep", path, reason)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def check_line_endings(name: str, data: bytes) -> None:
    """Raise ConfigError when a script has CRLF line ends.

    With ``#!/usr/bin/env python3\\r`` the kernel looks for an interpreter
    called ``python3\\r``; exec fails with status 127 and integratord logs
    only "Couldn't execute command".
    """
    position = data.find(b"\r\n")
    if position == -1:
        return
    line = data.count(b"\n", 0, position) + 1
    raise ConfigError(
        f"script {name} has Windows (CRLF) line endings from line {line} on: Wazuh cannot run "
        "it. Convert it to LF (for example with dos2unix) or reinstall iocscope"
    )


def load_scripts(scripts_dir: Path | None) -> dict[str, bytes]:
    """Read the four scripts from ``scripts_dir`` or the package, checking line endings."""
    scripts: dict[str, bytes] = {}
    for name in SCRIPT_TARGETS:
        try:
            if scripts_dir is not None:
                data = (scripts_dir / name).read_bytes()
            else:
                data = (resources.files("iocscope.wazuh") / "scripts" / name).read_bytes()
        except OSError as exc:
            where = scripts_dir or "the iocscope package"
            raise ConfigError(f"script {name} is missing from {where}: reinstall iocscope") from exc
        check_line_endings(name, data)
        scripts[name] = data
    return scripts


def check_wazuh_dir(wazuh_dir: Path) -> Path:
    """Return the path of ossec.conf, raising ConfigError when ``wazuh_dir`` is not a manager."""
    conf = wazuh_dir / OSSEC_CONF
    if not conf.is_file():
        raise ConfigError(
            f"{conf} not found: {wazuh_dir} is not a Wazuh manager directory; "
            "pass the right one with --wazuh-dir"
        )
    return conf


def read_ossec_conf(path: Path) -> str:
    """Read ossec.conf as UTF-8 text with its line ends as they are.

    Raises ConfigError when the file cannot be read.
    """
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def uses_crlf(text: str) -> bool:
    """Tell whether every line of ``text`` ends in CRLF (a file edited on Windows)."""
    return "\r\n" in text and text.count("\r\n") == text.count("\n")


def backup_path(conf: Path, now: datetime) -> Path:
    """Return a backup name next to ``conf`` that does not exist yet."""
    stamp = now.strftime("%Y%m%dT%H%M%S")
    candidate = conf.with_name(f"{conf.name}.iocscope-{stamp}.bak")
    counter = 1
    while candidate.exists():
        candidate = conf.with_name(f"{conf.name}.iocscope-{stamp}-{counter}.bak")
        counter += 1
    return candidate


def edit_ossec_conf(
    placer: Placer, conf: Path, transform: Callable[[str], str], clock: Clock = utcnow
) -> None:
    """Apply ``transform`` to ossec.conf, with a backup first; no change, no backup.

    The new file keeps the old one's mode, owner and line ends: a CRLF file
    is edited with LF line ends and written back with CRLF, so uninstalling
    restores it byte for byte. In a dry run the diff is stored in the
    placer's result and nothing is written.
    """
    text = read_ossec_conf(conf)
    crlf = uses_crlf(text)
    old = text.replace("\r\n", "\n") if crlf else text
    new = transform(old)
    if new == old:
        placer.keep(conf, "already up to date")
        return
    placer.result.diff += ossec_conf.unified_diff(old, new, str(conf))
    if placer.dry_run:
        placer.result.actions.append(Action("would edit", conf))
        return
    backup = backup_path(conf, clock())
    status = conf.stat()
    shutil.copy2(conf, backup)
    data = (new.replace("\n", "\r\n") if crlf else new).encode("utf-8")
    write_atomic(conf, data, status.st_mode & 0o7777)
    if os.geteuid() == 0:
        os.chown(backup, status.st_uid, status.st_gid)
        os.chown(conf, status.st_uid, status.st_gid)
    placer.result.actions.append(Action("backup", backup, f"copy of {conf.name}"))
    placer.result.actions.append(Action("edit", conf))
    logger.info("edited %s, backup in %s", conf, backup)


def existing_list_paths(wazuh_dir: Path) -> list[str]:
    """Return the iocscope CDB lists present in ``etc/lists``, as ossec.conf paths."""
    lists_dir = wazuh_dir / LISTS_DIR
    if not lists_dir.is_dir():
        return []
    names = sorted(
        path.name
        for path in lists_dir.iterdir()
        if path.is_file() and path.name.startswith(LIST_PREFIX) and "." not in path.name
    )
    return [f"{LISTS_DIR.as_posix()}/{name}" for name in names]


def configure(text: str, options: InstallOptions, list_paths: Iterable[str]) -> str:
    """Return ossec.conf text with every iocscope block set from ``options``."""
    text = ossec_conf.set_block(
        text, INTEGRATION_BLOCK, ossec_conf.render_integration(options.integration)
    )
    text = ossec_conf.set_lists_block(text, list(list_paths))
    if options.ar_rule_ids:
        response = ActiveResponseOptions(options.ar_rule_ids)
        return ossec_conf.set_block(
            text, ACTIVE_RESPONSE_BLOCK, ossec_conf.render_active_response(response)
        )
    return ossec_conf.remove_block(text, ACTIVE_RESPONSE_BLOCK)


def render_systemd_unit(executable: Path, wazuh_dir: Path, group: str) -> str:
    """Return a systemd unit that runs ``iocscope run`` as a dynamic user in the Wazuh group.

    The group membership lets the daemon read and delete spool files and
    write to analysisd's queue socket. ``DynamicUser`` implies
    ``ProtectSystem=strict``, so only the spool and the socket directory
    are writable.
    """
    spool = wazuh_dir / SPOOL_DIR
    sockets = wazuh_dir / "queue" / "sockets"
    return "\n".join(
        [
            "[Unit]",
            "Description=iocscope threat-intelligence enrichment of Wazuh alerts",
            "After=network-online.target wazuh-manager.service",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=simple",
            f"ExecStart={executable} run",
            "Restart=on-failure",
            "RestartSec=5",
            "DynamicUser=yes",
            f"SupplementaryGroups={group}",
            "StateDirectory=iocscope",
            "Environment=IOCSCOPE_DATA_DIR=/var/lib/iocscope",
            f"ReadWritePaths={spool} {sockets}",
            "NoNewPrivileges=yes",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


def find_executable(explicit: Path | None) -> Path:
    """Return the absolute path of the ``iocscope`` command for the systemd unit."""
    if explicit is not None:
        return explicit.resolve()
    beside_python = Path(sys.executable).with_name("iocscope")
    if beside_python.is_file():
        return beside_python
    found = shutil.which("iocscope")
    if found is None:
        raise ConfigError(
            "cannot find the iocscope command for the systemd unit: install iocscope "
            "into a fixed location first"
        )
    return Path(found).resolve()


def install(options: InstallOptions, clock: Clock = utcnow) -> InstallResult:
    """Install iocscope into the Wazuh manager at ``options.wazuh_dir``.

    Raises ConfigError when the directory is not a Wazuh manager, a script
    is missing or has CRLF line ends, the group does not exist (as root) or
    ``ossec.conf`` cannot be edited safely. Nothing is written in a dry run.
    """
    wazuh_dir = options.wazuh_dir
    conf = check_wazuh_dir(wazuh_dir)
    scripts = load_scripts(options.scripts_dir)
    rules = render_rules(options.rule_base_id).encode("utf-8")
    ownership, missing_group = _install_ownership(options)
    placer = Placer(ownership, dry_run=options.dry_run)
    if missing_group:
        placer.result.notes.append(
            f"group {ownership.group!r} does not exist on this host; the owners shown assume "
            "it does on the Wazuh manager"
        )
    for name, target in SCRIPT_TARGETS.items():
        placer.write(wazuh_dir / target, scripts[name], SCRIPT_MODE)
    placer.write(wazuh_dir / RULES_FILE, rules, RULES_MODE)
    placer.mkdir(wazuh_dir / SPOOL_PARENT, SPOOL_PARENT_MODE)
    for path in [wazuh_dir / SPOOL_DIR, *(wazuh_dir / SPOOL_DIR / sub for sub in SPOOL_SUBDIRS)]:
        placer.mkdir(path, SPOOL_MODE)
    lists = existing_list_paths(wazuh_dir)
    edit_ossec_conf(placer, conf, lambda text: configure(text, options, lists), clock)
    if options.systemd_unit is not None:
        unit = render_systemd_unit(
            find_executable(options.executable), wazuh_dir.resolve(), placer.ownership.group
        )
        placer.write(options.systemd_unit, unit.encode("utf-8"), UNIT_MODE)
        placer.result.notes.append(
            "enable the daemon: systemctl daemon-reload && systemctl enable --now "
            f"{options.systemd_unit.name}"
        )
    _add_restart_note(placer.result)
    return placer.result


def _install_ownership(options: InstallOptions) -> tuple[Ownership, bool]:
    """Return the ownership for ``install`` and whether its group is missing on this host.

    Only a dry run accepts a missing group: it shows what a run on the
    Wazuh manager would do, with chown commands for the group named.
    """
    try:
        return resolve_ownership(options.group), False
    except ConfigError:
        if not options.dry_run:
            raise
    return Ownership(options.group or WAZUH_GROUPS[0], None), True


def _add_restart_note(result: InstallResult) -> None:
    if result.changed:
        result.notes.append(
            "restart the manager to apply: systemctl restart wazuh-manager "
            "(or <wazuh_dir>/bin/wazuh-control restart)"
        )


def uninstall(options: InstallOptions, clock: Clock = utcnow) -> InstallResult:
    """Remove what ``install`` and ``iocscope wazuh cdb`` added; backups stay.

    The spool is removed only when it contains no file. Otherwise it is
    kept, and a note gives the number of alerts still waiting.
    """
    wazuh_dir = options.wazuh_dir
    conf = check_wazuh_dir(wazuh_dir)
    placer = Placer(Ownership("wazuh", None), dry_run=options.dry_run)
    edit_ossec_conf(placer, conf, ossec_conf.remove_all_blocks, clock)
    for target in SCRIPT_TARGETS.values():
        placer.remove(wazuh_dir / target)
    placer.remove(wazuh_dir / RULES_FILE)
    placer.remove(wazuh_dir / CDB_RULES_FILE)
    for path in _list_files(wazuh_dir):
        placer.remove(path)
    _remove_spool(placer, wazuh_dir / SPOOL_DIR)
    if options.systemd_unit is not None:
        placer.remove(options.systemd_unit)
    placer.result.chown_commands.clear()
    _add_restart_note(placer.result)
    return placer.result


def _list_files(wazuh_dir: Path) -> list[Path]:
    """Return iocscope's CDB list files and the .cdb files Wazuh compiled from them."""
    lists_dir = wazuh_dir / LISTS_DIR
    if not lists_dir.is_dir():
        return []
    return sorted(
        path
        for path in lists_dir.iterdir()
        if path.is_file()
        and path.name.startswith(LIST_PREFIX)
        and ("." not in path.name or path.suffix == ".cdb")
    )


def _remove_spool(placer: Placer, spool: Path) -> None:
    if not spool.is_dir():
        return
    waiting = {sub: _count_files(spool / sub) for sub in SPOOL_SUBDIRS}
    if sum(waiting.values()):
        detail = ", ".join(f"{count} in {sub}/" for sub, count in waiting.items() if count)
        placer.keep(spool, f"not empty: {detail}")
        placer.result.notes.append(
            f"the spool {spool} still holds files ({detail}); run the daemon to drain it "
            "or remove it by hand"
        )
        return
    for sub in SPOOL_SUBDIRS:
        placer.rmdir(spool / sub)
    placer.rmdir(spool)
    if not any(path != spool for path in spool.parent.iterdir()):
        placer.rmdir(spool.parent)


def _count_files(directory: Path) -> int:
    if not directory.is_dir():
        return 0
    return sum(1 for path in directory.iterdir() if path.is_file())
