"""Follow alerts.json directly, for managers where integratord is too slow.

The follower remembers the file's inode and the offset after the last
complete line it handed out, in a checkpoint written atomically. It copes
with what the manager does to the file:

- daily rotation (Wazuh 4.x moves alerts.json under logs/alerts/<year>/<month>/
  and starts a new file): the old file is read to its end before the new one,
  also after a restart when the rotated file is still uncompressed;
- truncation (the file became shorter than the checkpoint): start again at 0;
- a partial last line (the manager is still writing it): left for the next read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

logger = logging.getLogger(__name__)

# How far the follower reads in one batch, so a large backlog is processed
# (and checkpointed) in steps instead of at once.
MAX_BATCH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The inode of the followed file and the offset after the last line handed out."""

    inode: int
    offset: int


@dataclass(frozen=True, slots=True)
class FollowedLine:
    """One complete line and where the follower resumes after it."""

    data: bytes
    inode: int
    end_offset: int


class AlertsFollower:
    """Hands out complete lines of alerts.json across rotation, truncation and restarts."""

    def __init__(self, path: Path, checkpoint_path: Path, *, start_at_end: bool = True) -> None:
        self._path = path
        self._checkpoint_path = checkpoint_path
        self._current = load_checkpoint(checkpoint_path)
        if self._current is None and start_at_end:
            # A first start skips the history; a file that appears later is all new.
            self._current = _end_of(path)
            if self._current is not None:
                # Saved at once, so a run that reads no line (``iocscope run
                # --once``) still leaves the start for the next run.
                save_checkpoint(checkpoint_path, self._current)
        self.rotations = 0
        self.truncations = 0

    @property
    def path(self) -> Path:
        """The followed alerts.json."""
        return self._path

    def read_lines(self) -> list[FollowedLine]:
        """Return the complete lines written since the last call (at most one batch)."""
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return []
        if self._current is None:
            self._current = Checkpoint(stat.st_ino, 0)
        if self._current.inode != stat.st_ino:
            rest = self._drain_rotated(self._current)
            if rest:
                return rest
            self.rotations += 1
            self._switch(Checkpoint(stat.st_ino, 0))
        elif stat.st_size < self._current.offset:
            logger.warning(
                "%s shrank from %d to %d bytes; reading it again from the start",
                self._path,
                self._current.offset,
                stat.st_size,
            )
            self.truncations += 1
            self._switch(Checkpoint(stat.st_ino, 0))
        return self._read_from(self._path, self._current)

    def commit(self, line: FollowedLine) -> None:
        """Record that everything up to and including ``line`` was processed."""
        self._current = Checkpoint(line.inode, line.end_offset)
        save_checkpoint(self._checkpoint_path, self._current)

    def _switch(self, checkpoint: Checkpoint) -> None:
        self._current = checkpoint
        save_checkpoint(self._checkpoint_path, checkpoint)

    def _drain_rotated(self, previous: Checkpoint) -> list[FollowedLine]:
        rotated = find_by_inode(self._path.parent, previous.inode)
        if rotated is None:
            logger.warning(
                "%s was rotated and the old file (inode %d) is gone or compressed; "
                "lines written to it after offset %d were not enriched",
                self._path,
                previous.inode,
                previous.offset,
            )
            return []
        return self._read_from(rotated, previous)

    def _read_from(self, path: Path, checkpoint: Checkpoint) -> list[FollowedLine]:
        with path.open("rb") as handle:
            handle.seek(checkpoint.offset)
            chunk = handle.read(MAX_BATCH_BYTES)
        return list(_complete_lines(chunk, checkpoint))


def _end_of(path: Path) -> Checkpoint | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return Checkpoint(stat.st_ino, stat.st_size)


def _complete_lines(chunk: bytes, start: Checkpoint) -> Iterator[FollowedLine]:
    offset = start.offset
    position = 0
    while True:
        newline = chunk.find(b"\n", position)
        if newline < 0:
            return  # a partial line stays for the next read
        data = chunk[position:newline]
        offset += newline + 1 - position
        position = newline + 1
        yield FollowedLine(data=data, inode=start.inode, end_offset=offset)


def find_by_inode(directory: Path, inode: int) -> Path | None:
    """Find a regular file with the given inode under the alerts directory."""
    for root, _dirs, files in os.walk(directory):
        for name in files:
            candidate = Path(root) / name
            try:
                if candidate.stat().st_ino == inode:
                    return candidate
            except OSError:
                continue
    return None


def load_checkpoint(path: Path) -> Checkpoint | None:
    """Read a checkpoint; a missing or damaged one means "no checkpoint"."""
    try:
        raw = orjson.loads(path.read_bytes())
        return Checkpoint(inode=int(raw["inode"]), offset=int(raw["offset"]))
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        logger.warning("ignoring the damaged checkpoint %s: %s", path, exc)
        return None


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write the checkpoint atomically (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    payload = orjson.dumps({"inode": checkpoint.inode, "offset": checkpoint.offset})
    with temporary.open("wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
