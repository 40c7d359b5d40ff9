"""The spool: the durable hand-off from Wazuh's scripts to the iocscope daemon.

The forwarder (integratord) and the active-response script write one file per
alert, maildir style: ``<spool>/tmp/<name>`` is created, written and synced,
then renamed into ``<spool>/new/``, so a file in ``new/`` is always complete.
The name is ``<unix time ns>.<pid>.<random hex>.<kind>.json``; nanosecond
times have 19 digits until the year 2286, so name order is time order. The
content is one JSON object in UTF-8: the alert as integratord wrote it, or
``parameters.alert`` of an active-response message.

The daemon reads ``new/`` in name order and deletes each file once its events
are sent. Several readers can share a spool by claiming a file first (a
rename into ``cur/``). Files that cannot be parsed go to ``bad/`` and are
counted by reason, never deleted. Files left in ``tmp/`` by a writer that
died are removed once stale.

The scripts in ``iocscope/wazuh/scripts`` repeat these constants because they
run under Wazuh's Python without this package; a test checks they agree.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

logger = logging.getLogger(__name__)

SPOOL_ENV: Final = "IOCSCOPE_SPOOL_DIR"
SPOOL_DEFAULT: Final = ("var", "iocscope", "spool")  # under the Wazuh directory
TMP_DIR: Final = "tmp"
NEW_DIR: Final = "new"
CUR_DIR: Final = "cur"
BAD_DIR: Final = "bad"
DIR_MODE: Final = 0o770  # the wazuh group writes, the daemon's user reads and deletes
FILE_MODE: Final = 0o640
KINDS: Final = ("alert", "ar")
NAME_FORMAT: Final = "{time_ns}.{pid}.{random}.{kind}.json"
NAME_PATTERN: Final = re.compile(r"\A(\d+)\.(\d+)\.([0-9a-f]+)\.(alert|ar)\.json\Z")
STALE_TMP_SECONDS: Final = 3600.0


@dataclass(frozen=True, slots=True)
class SpoolItem:
    """One spooled alert: its file, the kind of writer and the parsed alert."""

    path: Path
    kind: str
    alert: dict[str, Any]


def default_spool_dir(wazuh_dir: Path) -> Path:
    """Return the spool the scripts use when nothing overrides it."""
    return wazuh_dir.joinpath(*SPOOL_DEFAULT)


def ensure_dirs(spool_dir: Path, names: tuple[str, ...]) -> None:
    """Create ``spool_dir`` and its ``names`` subdirectories with mode 0770.

    The mode is set only on directories created here: an installer may have
    chosen another owner, and changing its mode could fail.
    """
    for path in (spool_dir, *(spool_dir / name for name in names)):
        try:
            path.mkdir(mode=DIR_MODE, parents=path == spool_dir)
        except FileExistsError:
            continue
        path.chmod(DIR_MODE)  # mkdir applies the umask


class SpoolWriter:
    """Writes spool files in the format of the scripts (REST webhook, tests)."""

    def __init__(self, spool_dir: Path) -> None:
        self.spool_dir = spool_dir

    def write(self, payload: bytes, kind: str) -> Path:
        """Write ``payload`` (one UTF-8 JSON object) and return its path in ``new/``.

        The payload is not parsed here. Raises ValueError for an unknown kind
        and OSError when the spool cannot be written.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown spool kind {kind!r}: expected one of {', '.join(KINDS)}")
        ensure_dirs(self.spool_dir, (TMP_DIR, NEW_DIR))
        name = NAME_FORMAT.format(
            time_ns=time.time_ns(), pid=os.getpid(), random=os.urandom(4).hex(), kind=kind
        )
        tmp_path = self.spool_dir / TMP_DIR / name
        new_path = self.spool_dir / NEW_DIR / name
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp_path, flags, FILE_MODE)
        try:
            _write_all(fd, payload)
        except OSError:
            os.close(fd)
            tmp_path.unlink(missing_ok=True)
            raise
        os.close(fd)
        tmp_path.rename(new_path)
        _fsync_dir(new_path.parent)
        return new_path


class SpoolReader:
    """Reads, claims and deletes spool files for the daemon.

    ``bad_counts`` counts the files moved to ``bad/`` by reason since start:
    ``name`` (not a spool file name), ``unreadable``, ``json`` (not UTF-8
    JSON) and ``not_object`` (JSON, but not an object).
    """

    def __init__(self, spool_dir: Path) -> None:
        self.spool_dir = spool_dir
        self.bad_counts: Counter[str] = Counter()
        ensure_dirs(spool_dir, (TMP_DIR, NEW_DIR, CUR_DIR, BAD_DIR))

    def pending(self) -> list[Path]:
        """Return the files waiting in ``new/``, oldest name first."""
        return self._files(NEW_DIR)

    def claimed(self) -> list[Path]:
        """Return the files in ``cur/``: claimed by a reader and not yet done."""
        return self._files(CUR_DIR)

    def claim(self, path: Path) -> Path | None:
        """Move a file from ``new/`` to ``cur/``; return None if another reader took it."""
        target = self.spool_dir / CUR_DIR / path.name
        try:
            path.rename(target)
        except FileNotFoundError:
            return None
        return target

    def release_claims(self) -> int:
        """Move every claimed file back to ``new/``, after a reader stopped; return the count."""
        released = 0
        for path in self.claimed():
            try:
                path.rename(self.spool_dir / NEW_DIR / path.name)
            except FileNotFoundError:
                continue
            released += 1
        if released:
            logger.warning("returned %d claimed spool files to new/", released)
        return released

    def read(self, path: Path) -> SpoolItem | None:
        """Parse one spool file.

        Returns None when the file is gone (another reader took it) or was
        moved to ``bad/`` because it cannot be parsed.
        """
        match = NAME_PATTERN.match(path.name)
        if match is None:
            self._reject(path, "name")
            return None
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._reject(path, "unreadable", exc.strerror)
            return None
        try:
            alert = _parse_json(data)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            self._reject(path, "json", str(exc))
            return None
        if not isinstance(alert, dict):
            self._reject(path, "not_object")
            return None
        return SpoolItem(path=path, kind=match.group(4), alert=alert)

    def done(self, path: Path) -> None:
        """Delete a processed file; a file already gone is not an error."""
        path.unlink(missing_ok=True)

    def cleanup_stale_tmp(self, max_age: float = STALE_TMP_SECONDS) -> int:
        """Remove files in ``tmp/`` older than ``max_age`` seconds; return the count.

        Such a file belongs to a writer that died before its rename; the
        alert in it was never handed over and its writer already failed.
        """
        cutoff = time.time() - max_age
        removed = 0
        for path in self._files(TMP_DIR):
            try:
                if path.stat().st_mtime >= cutoff:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            logger.warning("removed stale spool file %s left by a failed writer", path)
            removed += 1
        return removed

    def _files(self, directory: str) -> list[Path]:
        with os.scandir(self.spool_dir / directory) as entries:
            names = sorted(entry.name for entry in entries if entry.is_file(follow_symlinks=False))
        return [self.spool_dir / directory / name for name in names]

    def _reject(self, path: Path, reason: str, detail: str | None = None) -> None:
        target = self.spool_dir / BAD_DIR / path.name
        try:
            path.rename(target)
        except FileNotFoundError:
            return  # another reader took it
        self.bad_counts[reason] += 1
        logger.warning(
            "moved spool file %s to %s: %s%s",
            path.name,
            target.parent,
            reason,
            f" ({detail})" if detail else "",
        )


def _parse_json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # orjson rejects lone surrogate escapes and numbers beyond the float
        # range, which the scripts' parser (Python's json) accepts.
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _write_all(fd: int, payload: bytes) -> None:
    os.fchmod(fd, FILE_MODE)  # the umask may have cleared the group read bit
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
