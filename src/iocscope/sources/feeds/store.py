"""Feed files on disk and the in-memory indexes built from them.

Each feed lives in ``<data_dir>/feeds/<name>/``: its data files plus a small
JSON sidecar, ``sync.json``, that records per file where it came from, its
ETag and Last-Modified validators and when it was last checked and changed.
``FeedStore.load`` reads every feed directory present. A missing feed is
not loaded, and a corrupt file is logged and counted instead of raising, so
one bad file never stops the service. Files are replaced atomically (temporary file, then
``os.replace``), so a reader sees the old file or the new one, never half.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from iocscope.errors import FeedError
from iocscope.indicators.model import Indicator
from iocscope.sources.feeds.catalogue import FEEDS, FeedSpec, feed_spec
from iocscope.sources.feeds.index import FeedIndex, FeedMatch
from iocscope.sources.feeds.parsers import ParseReport, feed_format, iter_feed

logger = logging.getLogger(__name__)

SIDECAR = "sync.json"
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Return the current time in UTC; the default clock of the store and of sync."""
    return datetime.now(UTC)


def feed_dir(data_dir: Path, name: str) -> Path:
    """Return the directory of one feed under the data directory."""
    return data_dir / "feeds" / name


@dataclass(frozen=True, slots=True)
class FileState:
    """The sidecar record of one feed file.

    ``checked_at`` is the last time the file was confirmed current (by a
    download, a 304 response or an import), and ``changed_at`` the last time
    its content was replaced.
    """

    url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    checked_at: datetime | None = None
    changed_at: datetime | None = None
    imported_from: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
            "changed_at": self.changed_at.isoformat() if self.changed_at else None,
            "imported_from": self.imported_from,
        }

    @classmethod
    def from_json(cls, raw: Any) -> FileState:
        if not isinstance(raw, dict):
            return cls()
        return cls(
            url=_text(raw.get("url")),
            etag=_text(raw.get("etag")),
            last_modified=_text(raw.get("last_modified")),
            checked_at=_time(raw.get("checked_at")),
            changed_at=_time(raw.get("changed_at")),
            imported_from=_text(raw.get("imported_from")),
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def read_sidecar(directory: Path) -> dict[str, FileState]:
    """Return the sidecar records of a feed directory; {} when absent or unreadable."""
    path = directory / SIDECAR
    try:
        raw = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, orjson.JSONDecodeError) as exc:
        logger.warning("ignoring unreadable feed sync record %s: %s", path, exc)
        return {}
    files = raw.get("files") if isinstance(raw, dict) else None
    if not isinstance(files, dict):
        return {}
    return {str(name): FileState.from_json(state) for name, state in files.items()}


def update_sidecar(directory: Path, filename: str, state: FileState) -> None:
    """Record ``state`` for one file in the feed's sidecar, atomically."""
    states = read_sidecar(directory)
    states[filename] = state
    document = {"files": {name: value.to_json() for name, value in sorted(states.items())}}
    write_atomic(directory / SIDECAR, orjson.dumps(document, option=orjson.OPT_INDENT_2))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``.

    The temporary file starts with a dot, so ``FeedStore.load`` never reads
    one that a crash left behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def data_files(directory: Path) -> tuple[Path, ...]:
    """Return the feed data files of a directory: every file but the sidecar and dot files."""
    if not directory.is_dir():
        return ()
    return tuple(
        sorted(
            path
            for path in directory.iterdir()
            if path.is_file() and path.name != SIDECAR and not path.name.startswith(".")
        )
    )


def decode_feed(data: bytes) -> str:
    """Decode feed bytes as UTF-8, dropping a BOM; undecodable bytes become U+FFFD."""
    return data.decode("utf-8-sig", errors="replace")


@dataclass(frozen=True, slots=True)
class FileStatus:
    """One loaded (or failed) feed file."""

    path: Path
    entries: int
    rejected: int
    dropped: int
    rejected_examples: tuple[str, ...]
    state: FileState
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """The state of one feed for ``iocscope feeds status``.

    ``synced_at`` is when the stalest file of the feed was last confirmed
    current (by a download, a 304 response or an import, else the file's
    modification time when no sync record exists), and ``age`` is the time
    since then. ``etag`` and ``last_modified`` are those of the first file.
    """

    name: str
    title: str
    loaded: bool
    entries: int
    rejected: int
    dropped: int
    path: Path | None
    synced_at: datetime | None
    age: timedelta | None
    etag: str | None
    last_modified: str | None
    files: tuple[FileStatus, ...] = ()
    errors: tuple[str, ...] = ()


@dataclass
class LoadedFeed:
    """A feed's index and what loading its files produced."""

    spec: FeedSpec
    index: FeedIndex
    files: list[FileStatus] = field(default_factory=list)

    @property
    def entries(self) -> int:
        return sum(file.entries for file in self.files)


class FeedStore:
    """The loaded feeds of one data directory, matched in memory."""

    def __init__(
        self,
        data_dir: Path,
        specs: tuple[FeedSpec, ...],
        feeds: dict[str, LoadedFeed],
        clock: Clock = utcnow,
    ) -> None:
        self.data_dir = data_dir
        self.specs = specs
        self._feeds = feeds
        self._clock = clock

    @classmethod
    def load(
        cls, data_dir: Path, specs: tuple[FeedSpec, ...] = FEEDS, clock: Clock = utcnow
    ) -> FeedStore:
        """Load every feed of ``specs`` whose directory contains data files."""
        feeds: dict[str, LoadedFeed] = {}
        for spec in specs:
            files = data_files(feed_dir(data_dir, spec.name))
            if files:
                feeds[spec.name] = _load_feed(spec, files)
        store = cls(data_dir, specs, feeds, clock)
        logger.info(
            "loaded %d of %d feeds from %s (%d corrupt files)",
            sum(store.loaded(spec.name) for spec in specs),
            len(specs),
            data_dir,
            store.corrupt_files,
        )
        return store

    @classmethod
    def empty(cls, data_dir: Path, specs: tuple[FeedSpec, ...] = FEEDS) -> FeedStore:
        """Return a store with no feed loaded, for callers that run without feeds."""
        return cls(data_dir, specs, {})

    @property
    def corrupt_files(self) -> int:
        """The number of files that could not be read or held no valid entry."""
        return sum(
            1 for feed in self._feeds.values() for file in feed.files if file.error is not None
        )

    def loaded(self, name: str) -> bool:
        """Return whether the feed has at least one valid entry in memory."""
        feed = self._feeds.get(name)
        return feed is not None and feed.entries > 0

    def match(self, feed_name: str, indicator: Indicator) -> FeedMatch | None:
        """Return how the indicator matches one feed; None when unlisted or not loaded."""
        feed = self._feeds.get(feed_name)
        if feed is None:
            return None
        return feed.index.match(feed_name, indicator, feed.spec.match_subdomains)

    def status(self) -> list[FeedStatus]:
        """Return the status of every feed in the catalogue, loaded or not."""
        now = self._clock()
        return [self._status(spec, now) for spec in self.specs]

    def _status(self, spec: FeedSpec, now: datetime) -> FeedStatus:
        feed = self._feeds.get(spec.name)
        files = tuple(feed.files) if feed else ()
        confirmed = [_confirmed_at(file) for file in files if file.error is None]
        synced = [moment for moment in confirmed if moment is not None]
        synced_at = min(synced) if synced else None
        first = files[0] if files else None
        return FeedStatus(
            name=spec.name,
            title=spec.title,
            loaded=self.loaded(spec.name),
            entries=sum(file.entries for file in files),
            rejected=sum(file.rejected for file in files),
            dropped=sum(file.dropped for file in files),
            path=first.path if first else None,
            synced_at=synced_at,
            age=now - synced_at if synced_at else None,
            etag=first.state.etag if first else None,
            last_modified=first.state.last_modified if first else None,
            files=files,
            errors=tuple(f"{file.path}: {file.error}" for file in files if file.error),
        )


def _confirmed_at(file: FileStatus) -> datetime | None:
    if file.state.checked_at is not None:
        return file.state.checked_at
    try:
        return datetime.fromtimestamp(file.path.stat().st_mtime, UTC)
    except OSError:
        return None


def _load_feed(spec: FeedSpec, paths: tuple[Path, ...]) -> LoadedFeed:
    feed = LoadedFeed(spec, FeedIndex())
    states = read_sidecar(paths[0].parent)
    for path in paths:
        status = _load_file(spec, path, feed.index)
        feed.files.append(replace(status, state=states.get(path.name, FileState())))
    return feed


def _load_file(spec: FeedSpec, path: Path, index: FeedIndex) -> FileStatus:
    try:
        text = decode_feed(path.read_bytes())
    except OSError as exc:
        # An unreadable file is an expected failure: its reason is enough, no traceback.
        logger.error("cannot read feed file %s of %s: %s", path, spec.name, exc.strerror)  # noqa: TRY400
        return FileStatus(path, 0, 0, 0, (), FileState(), f"cannot read: {exc.strerror}")
    report = ParseReport()
    count = 0
    for entry in iter_feed(spec, text, report):
        index.add(entry.value, entry.type, entry.meta, entry.ip_key)
        count += 1
    error = None
    if count == 0:
        error = _no_entries_message(spec, report)
        logger.error("feed file %s of %s is unusable: %s", path, spec.name, error)
    elif report.rejected_count:
        # Loading happens at every start; `iocscope feeds status` shows the count.
        logger.info(
            "feed file %s of %s: %d entries, %d lines rejected, first: %s",
            path,
            spec.name,
            count,
            report.rejected_count,
            report.rejected_examples[0],
        )
    return FileStatus(
        path,
        count,
        report.rejected_count,
        report.dropped_count,
        tuple(report.rejected_examples),
        FileState(),
        error,
    )


def _no_entries_message(spec: FeedSpec, report: ParseReport) -> str:
    expected = feed_format(spec.format).description
    message = f"no valid entry (expected {expected})"
    if report.rejected_examples:
        message += f"; {report.rejected_count} rejected, first {report.rejected_examples[0]}"
    return message


def import_feed(
    data_dir: Path,
    name: str,
    source_file: Path,
    specs: tuple[FeedSpec, ...] = FEEDS,
    clock: Clock = utcnow,
) -> FeedStatus:
    """Copy a local feed file into the data directory after checking that it parses.

    A feed of one file is stored under that file's name. For a feed of
    several files (a group of MISP warning lists), the source is stored
    under its own name, or as ``<folder>.json`` for a MISP ``lists/<folder>/
    list.json`` path. Raises FeedError for an unknown feed, an unreadable
    file, or a file with no valid entry.
    """
    spec = feed_spec(name, specs)
    if spec is None:
        known = ", ".join(known_spec.name for known_spec in specs)
        raise FeedError(f"unknown feed {name!r}: expected one of {known}")
    try:
        data = source_file.read_bytes()
    except OSError as exc:
        raise FeedError(f"cannot read feed file {source_file}: {exc.strerror}") from exc
    report = ParseReport()
    count = sum(1 for _ in iter_feed(spec, decode_feed(data), report))
    if count == 0:
        raise FeedError(
            f"{source_file} is not a valid file for feed {spec.name}: "
            f"{_no_entries_message(spec, report)}"
        )
    directory = feed_dir(data_dir, spec.name)
    target = directory / _import_name(spec, source_file)
    write_atomic(target, data)
    now = clock()
    state = FileState(imported_from=str(source_file), checked_at=now, changed_at=now)
    update_sidecar(directory, target.name, state)
    logger.info("imported %s into feed %s as %s (%d entries)", source_file, name, target, count)
    return FeedStore.load(data_dir, (spec,), clock).status()[0]


def _import_name(spec: FeedSpec, source_file: Path) -> str:
    if len(spec.files) == 1:
        return spec.files[0].filename
    if source_file.name == "list.json" and source_file.parent.name:
        return f"{source_file.parent.name}.json"
    if source_file.name == SIDECAR or source_file.name.startswith("."):
        return f"imported-{source_file.name.lstrip('.')}"
    return source_file.name
