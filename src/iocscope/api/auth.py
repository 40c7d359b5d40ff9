"""API keys: generation, the keys file, and checking a presented key.

A key looks like ``iocs_<id>_<secret>``. The id is public and finds the
record. The file stores only a salted SHA-256 digest of the secret, so the
plaintext exists only in the output of ``iocscope keys add``. A fast hash is
enough here because the secret is 32 random bytes from ``secrets``: nothing
short of the key itself can be guessed, and a slow hash would cost every
request the same delay.

The keys file is JSON, written atomically with mode 0600. ``add_key`` and
``revoke_key`` hold an exclusive ``flock`` on ``<keys file>.lock`` from the
read to the write, so two ``iocscope keys`` commands run at the same moment
cannot lose each other's change. The server checks the file's modification
time on each request and rereads it when it changed, so ``iocscope keys
revoke`` takes effect without a restart.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from iocscope.errors import ConfigError

logger = logging.getLogger(__name__)

KEY_PREFIX = "iocs"
FILE_VERSION = 1
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SALT_BYTES = 16
_SECRET_BYTES = 32
# A keys command holds the lock for one read and one fsync'd write, so a wait
# longer than this means a stuck process.
LOCK_TIMEOUT = 10.0
_LOCK_POLL = 0.02

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One API key as stored: never the plaintext, only its salted digest.

    ``rate_per_minute`` overrides the service-wide rate for this key when set.
    """

    key_id: str
    name: str
    salt: str
    digest: str
    created: str
    revoked: str | None = None
    rate_per_minute: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None

    def matches(self, secret: str) -> bool:
        """Return whether ``secret`` is this key's secret, in constant time."""
        return hmac.compare_digest(hash_secret(bytes.fromhex(self.salt), secret), self.digest)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.key_id,
            "name": self.name,
            "salt": self.salt,
            "sha256": self.digest,
            "created": self.created,
            "revoked": self.revoked,
            "rate_per_minute": self.rate_per_minute,
        }

    @classmethod
    def from_json(cls, raw: Any) -> KeyRecord:
        """Build a record from its JSON form; raise TypeError or ValueError for a bad field."""
        if not isinstance(raw, dict):
            raise TypeError("a key entry is not an object")
        texts = {field: raw.get(field) for field in ("id", "name", "salt", "sha256", "created")}
        missing = [field for field, value in texts.items() if not isinstance(value, str)]
        if missing:
            raise ValueError(f"a key entry lacks {', '.join(missing)}")
        bytes.fromhex(str(texts["salt"]))
        revoked = raw.get("revoked")
        rate = raw.get("rate_per_minute")
        return cls(
            key_id=str(texts["id"]),
            name=str(texts["name"]),
            salt=str(texts["salt"]),
            digest=str(texts["sha256"]),
            created=str(texts["created"]),
            revoked=revoked if isinstance(revoked, str) else None,
            rate_per_minute=float(rate) if isinstance(rate, int | float) and rate > 0 else None,
        )


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly created key: its record and the plaintext, to show once."""

    record: KeyRecord
    plaintext: str


def hash_secret(salt: bytes, secret: str) -> str:
    """Return the hex SHA-256 digest of ``salt`` followed by the UTF-8 secret."""
    return hashlib.sha256(salt + secret.encode("utf-8")).hexdigest()


def split_key(presented: str) -> tuple[str, str] | None:
    """Return the id and secret of a presented key, or None when it has the wrong shape."""
    parts = presented.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def read_keys(path: Path) -> list[KeyRecord]:
    """Read the keys file; a missing file has no keys.

    Raises ConfigError when the file is readable by other users, unreadable or
    not a keys file.
    """
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"cannot read the API keys file {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"API keys file {path} is open to other users (mode {stat.S_IMODE(mode):o}): "
            f"run chmod 600 {path}"
        )
    try:
        return _parse_keys(orjson.loads(data))
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise ConfigError(f"API keys file {path} is not a valid keys file: {exc}") from exc


def _parse_keys(document: Any) -> list[KeyRecord]:
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise TypeError("the file has no 'keys' list")
    return [KeyRecord.from_json(entry) for entry in entries]


def write_keys(path: Path, records: list[KeyRecord]) -> None:
    """Replace the keys file atomically; the new file has mode 0600."""
    document = {"version": FILE_VERSION, "keys": [record.to_json() for record in records]}
    data = orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # mkstemp creates the file with mode 0600 in the same directory, so
        # os.replace is atomic and the key digests are never world-readable.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise ConfigError(f"cannot write the API keys file {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise ConfigError(f"cannot write the API keys file {path}: {exc.strerror}") from exc


def check_name(name: str) -> str:
    """Return ``name`` when it is a valid key name; raise ConfigError otherwise."""
    if not _NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"invalid key name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def add_key(
    path: Path, name: str, rate_per_minute: float | None = None, clock: Clock = utcnow
) -> NewKey:
    """Create a key called ``name`` and store its digest; the plaintext is returned once.

    The read and the write happen under ``keys_file_lock``.
    """
    check_name(name)
    with keys_file_lock(path):
        records = read_keys(path)
        if any(record.name == name and record.active for record in records):
            raise ConfigError(
                f"an active API key named {name!r} exists: revoke it or pick another name"
            )
        existing = {record.key_id for record in records}
        key_id = secrets.token_hex(6)
        while key_id in existing:
            key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        salt = secrets.token_bytes(_SALT_BYTES)
        record = KeyRecord(
            key_id=key_id,
            name=name,
            salt=salt.hex(),
            digest=hash_secret(salt, secret),
            created=clock().isoformat(timespec="seconds"),
            rate_per_minute=rate_per_minute,
        )
        write_keys(path, [*records, record])
    logger.info("added API key %s (%s) to %s", key_id, name, path)
    return NewKey(record, f"{KEY_PREFIX}_{key_id}_{secret}")


def revoke_key(path: Path, name_or_id: str, clock: Clock = utcnow) -> KeyRecord:
    """Mark the active key with this name or id revoked and return it.

    The record stays in the file, so ``keys list`` still shows when the key
    was revoked. The read and the write happen under ``keys_file_lock``.
    Raises ConfigError when no active key matches.
    """
    with keys_file_lock(path):
        records = read_keys(path)
        for position, record in enumerate(records):
            if record.active and name_or_id in (record.name, record.key_id):
                revoked = replace(record, revoked=clock().isoformat(timespec="seconds"))
                records[position] = revoked
                write_keys(path, records)
                logger.info("revoked API key %s (%s) in %s", record.key_id, record.name, path)
                return revoked
    raise ConfigError(f"no active API key named {name_or_id!r} in {path}: see iocscope keys list")


def lock_path(path: Path) -> Path:
    """Return the lock file of the keys file ``path``: the same name plus ``.lock``."""
    return path.with_name(f"{path.name}.lock")


@contextmanager
def keys_file_lock(path: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the lock file of ``path`` for the block.

    A separate lock file is needed because ``write_keys`` replaces the keys
    file, and a lock on the replaced inode would not exclude the next writer.
    Raises ConfigError when the lock file cannot be opened or another process
    holds the lock for longer than ``timeout`` seconds.
    """
    target = lock_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(target, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot open the lock file {target}: {exc.strerror}") from exc
    try:
        _acquire(descriptor, target, timeout)
        yield
    finally:
        # Closing the descriptor releases the lock.
        os.close(descriptor)


def _acquire(descriptor: int, target: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise ConfigError(f"cannot lock {target}: {exc.strerror}") from exc
        else:
            return
        if time.monotonic() >= deadline:
            raise ConfigError(
                f"another process has held {target} for over {timeout:g} s: "
                "wait for the other iocscope keys command to finish, then retry"
            )
        time.sleep(_LOCK_POLL)


class KeyStore:
    """The server's view of the keys file, reread whenever the file changes.

    When the file cannot be read, no key is accepted until it can: a broken
    file must not keep a revoked key working.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._by_id: dict[str, KeyRecord] = {}
        self._refresh()

    @property
    def active_count(self) -> int:
        self._refresh()
        return sum(record.active for record in self._by_id.values())

    def authenticate(self, presented: str) -> KeyRecord | None:
        """Return the active record of a presented key, or None when it is not valid."""
        parts = split_key(presented)
        if parts is None:
            return None
        self._refresh()
        record = self._by_id.get(parts[0])
        if record is None or not record.active or not record.matches(parts[1]):
            return None
        return record

    def _refresh(self) -> None:
        try:
            info = self.path.stat()
            signature = (info.st_mtime_ns, info.st_size, info.st_ino)
        except FileNotFoundError:
            signature = None
        except OSError:
            # Unreadable: _load logs why, once, and accepts no key until it changes.
            signature = (-1, -1, -1)
        with self._lock:
            if signature == self._signature:
                return
            self._signature = signature
            self._by_id = self._load()

    def _load(self) -> dict[str, KeyRecord]:
        try:
            records = read_keys(self.path)
        except ConfigError as exc:
            logger.error("no API key is accepted until the keys file is fixed: %s", exc)  # noqa: TRY400
            return {}
        logger.info("loaded %d active API keys from %s", sum(r.active for r in records), self.path)
        return {record.key_id: record for record in records}
