"""Download feed files with conditional GET and replace them only when valid.

``sync_feeds`` fetches every file of the chosen feeds at once. It sends
If-None-Match and If-Modified-Since from the sidecar, so an unchanged feed
costs a 304 response. A download replaces the stored file only after it parsed
to at least one entry. After a network error, an HTTP error, an HTML page or
an empty body, the existing file stays in place. Every file gets a
``SyncOutcome``: one failing feed never raises and never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from iocscope.config import Settings
from iocscope.errors import FeedError
from iocscope.sources.feeds.catalogue import FeedFile, FeedSpec
from iocscope.sources.feeds.parsers import ParseReport, feed_format, iter_feed
from iocscope.sources.feeds.store import (
    Clock,
    FileState,
    decode_feed,
    feed_dir,
    read_sidecar,
    update_sidecar,
    utcnow,
    write_atomic,
)

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0  # seconds per connect, read or write step
# The whole download may take this many times the step timeout, so a server
# that trickles bytes cannot hold a sync forever.
DEADLINE_FACTOR = 20
MAX_FEED_BYTES = 256 * 1024 * 1024
MAX_PARALLEL = 4


class SyncStatus(StrEnum):
    """The result kind of syncing one feed file."""

    UPDATED = "updated"  # downloaded, valid, stored
    NOT_MODIFIED = "not_modified"  # the server returned 304; the file is current
    FAILED = "failed"  # HTTP error, invalid body or timeout; the old file is kept
    OFFLINE = "offline"  # the host could not be reached; the old file is kept
    SKIPPED = "skipped"  # disabled, or not yet due


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """The result of syncing one file of one feed; ``message`` is a sentence for the operator."""

    feed: str
    file: str
    status: SyncStatus
    message: str
    url: str = ""
    http_status: int | None = None
    entries: int | None = None

    @property
    def ok(self) -> bool:
        return self.status in (SyncStatus.UPDATED, SyncStatus.NOT_MODIFIED, SyncStatus.SKIPPED)


class _DownloadError(Exception):
    """A download that must not replace the stored file; the message gives the reason."""

    def __init__(self, reason: str, status: SyncStatus = SyncStatus.FAILED) -> None:
        self.status = status
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class _Job:
    spec: FeedSpec
    file: FeedFile
    directory: Path
    timeout: float


async def sync_feeds(
    data_dir: Path,
    specs: tuple[FeedSpec, ...],
    client: httpx.AsyncClient,
    names: list[str] | None = None,
    settings: Settings | None = None,
    *,
    only_due: bool = False,
    clock: Clock = utcnow,
) -> list[SyncOutcome]:
    """Sync the named feeds (all enabled feeds when ``names`` is None).

    ``settings.source(name).url`` replaces a feed's download address and
    ``settings.source(name).timeout`` its step timeout. With ``only_due``,
    files checked less than the feed's sync interval ago are skipped.
    Raises FeedError only for an unknown feed name, before any download.
    """
    settings = settings or Settings()
    chosen = _choose(specs, names)
    outcomes: list[SyncOutcome] = []
    jobs: list[_Job] = []
    for spec in chosen:
        if names is None and not settings.source(spec.name).enabled:
            outcomes.append(_skipped(spec, "disabled in the configuration"))
            continue
        jobs.extend(_jobs(data_dir, spec, settings))
    now = clock()
    due = [job for job in jobs if not only_due or _is_due(job, now)]
    outcomes.extend(
        SyncOutcome(job.spec.name, job.file.filename, SyncStatus.SKIPPED, "not due yet")
        for job in jobs
        if job not in due
    )
    limit = asyncio.Semaphore(MAX_PARALLEL)

    async def run(job: _Job) -> SyncOutcome:
        async with limit:
            return await _sync_file(client, job, clock)

    outcomes.extend(await asyncio.gather(*(run(job) for job in due)))
    return outcomes


def _choose(specs: tuple[FeedSpec, ...], names: list[str] | None) -> list[FeedSpec]:
    if names is None:
        return list(specs)
    by_name = {spec.name: spec for spec in specs}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        known = ", ".join(by_name)
        raise FeedError(f"unknown feed {', '.join(unknown)}: expected one of {known}")
    return [by_name[name] for name in names]


def _jobs(data_dir: Path, spec: FeedSpec, settings: Settings) -> list[_Job]:
    source = settings.source(spec.name)
    timeout = source.timeout or DEFAULT_TIMEOUT
    directory = feed_dir(data_dir, spec.name)
    files = spec.files
    if source.url:
        # NOTE: an address override replaces the whole file list, so a feed of
        # several lists syncs only its first file from that address. Files of
        # the other lists already on disk stay and are still loaded.
        files = (FeedFile(spec.files[0].filename, source.url),)
    return [_Job(spec, file, directory, timeout) for file in files]


def _skipped(spec: FeedSpec, message: str) -> SyncOutcome:
    return SyncOutcome(spec.name, "", SyncStatus.SKIPPED, message)


def _is_due(job: _Job, now: datetime) -> bool:
    state = read_sidecar(job.directory).get(job.file.filename)
    if (
        state is None
        or state.checked_at is None
        or not (job.directory / job.file.filename).exists()
    ):
        return True
    return now - state.checked_at >= job.spec.sync_interval


def redact_url(url: str) -> str:
    """Return the URL without credentials and query, fit for logs and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def _sync_file(client: httpx.AsyncClient, job: _Job, clock: Clock) -> SyncOutcome:
    target = job.directory / job.file.filename
    state = read_sidecar(job.directory).get(job.file.filename, FileState())
    headers = _conditional_headers(state, job.file.url) if target.exists() else {}
    safe_url = redact_url(job.file.url)
    started = time.monotonic()
    try:
        response, body = await _fetch(client, job, headers)
    except _DownloadError as exc:
        return _failed(job, target, exc.status, str(exc))
    logger.info(
        "feed %s: GET %s -> %d in %.0f ms",
        job.spec.name,
        safe_url,
        response.status_code,
        (time.monotonic() - started) * 1000,
    )
    if response.status_code == 304 and headers:
        update_sidecar(job.directory, job.file.filename, replace(state, checked_at=clock()))
        return SyncOutcome(
            job.spec.name,
            job.file.filename,
            SyncStatus.NOT_MODIFIED,
            "not modified since the last sync; the existing file is current",
            safe_url,
            304,
        )
    if response.status_code != 200:
        message = f"HTTP {response.status_code} from {safe_url}"
        return _failed(job, target, SyncStatus.FAILED, message, response.status_code)
    return _store(job, target, response, body, clock())


def _conditional_headers(state: FileState, url: str) -> dict[str, str]:
    if state.url != url:
        return {}  # validators from another address do not apply to this one
    headers = {}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    return headers


async def _fetch(
    client: httpx.AsyncClient, job: _Job, headers: dict[str, str]
) -> tuple[httpx.Response, bytes]:
    """Download one file; raises _DownloadError with an operator-facing reason."""
    safe_url = redact_url(job.file.url)
    deadline = job.timeout * DEADLINE_FACTOR
    try:
        async with asyncio.timeout(deadline):
            return await _download(client, job, headers)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        reason = f"offline: cannot connect to {safe_url} ({str(exc) or type(exc).__name__})"
        raise _DownloadError(reason, SyncStatus.OFFLINE) from exc
    except httpx.TimeoutException as exc:
        raise _DownloadError(f"timed out after {job.timeout:g} s on {safe_url}") from exc
    except TimeoutError as exc:
        reason = f"the download from {safe_url} did not finish within {deadline:g} s"
        raise _DownloadError(reason) from exc
    except httpx.HTTPError as exc:
        raise _DownloadError(f"download from {safe_url} failed: {exc}") from exc


async def _download(
    client: httpx.AsyncClient, job: _Job, headers: dict[str, str]
) -> tuple[httpx.Response, bytes]:
    async with client.stream(
        "GET",
        job.file.url,
        headers=headers,
        timeout=httpx.Timeout(job.timeout),
        follow_redirects=True,
    ) as response:
        if response.status_code != 200:
            return response, b""
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_FEED_BYTES:
                safe_url = redact_url(job.file.url)
                raise _DownloadError(f"the body from {safe_url} exceeds {MAX_FEED_BYTES} bytes")
            chunks.append(chunk)
        return response, b"".join(chunks)


def _store(
    job: _Job, target: Path, response: httpx.Response, body: bytes, now: datetime
) -> SyncOutcome:
    safe_url = redact_url(job.file.url)
    problem = _body_problem(job.spec, response, body)
    if isinstance(problem, str):
        return _failed(job, target, SyncStatus.FAILED, f"{safe_url} returned {problem}", 200)
    entries, rejected = problem
    state = FileState(
        url=job.file.url,
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
        checked_at=now,
        changed_at=now,
    )
    try:
        write_atomic(target, body)
        update_sidecar(job.directory, job.file.filename, state)
    except OSError as exc:
        reason = f"cannot write {target}: {exc.strerror}"
        return _failed(job, target, SyncStatus.FAILED, reason, 200)
    rejected_note = f", {rejected} lines rejected" if rejected else ""
    return SyncOutcome(
        job.spec.name,
        job.file.filename,
        SyncStatus.UPDATED,
        f"downloaded {entries} entries{rejected_note}",
        safe_url,
        200,
        entries,
    )


def _body_problem(spec: FeedSpec, response: httpx.Response, body: bytes) -> str | tuple[int, int]:
    """Return why a 200 body is unusable, or (entries, rejected lines) when it is usable."""
    if not body.strip():
        return "an empty body"
    start = body.lstrip()[:15].lower()
    content_type = response.headers.get("Content-Type", "")
    if "text/html" in content_type or start.startswith((b"<!doctype html", b"<html")):
        return "an HTML page instead of the feed (an error, login or captive portal page?)"
    report = ParseReport()
    entries = sum(1 for _ in iter_feed(spec, decode_feed(body), report))
    if entries == 0:
        expected = feed_format(spec.format).description
        return f"no valid entry (expected {expected})"
    return entries, report.rejected_count


def _failed(
    job: _Job, target: Path, status: SyncStatus, reason: str, http_status: int | None = None
) -> SyncOutcome:
    if target.exists():
        state = read_sidecar(job.directory).get(job.file.filename)
        since = state.changed_at if state and state.changed_at else None
        kept_note = (
            f"the existing file from {since.astimezone(UTC):%Y-%m-%d %H:%M} UTC is kept"
            if since
            else "the existing file is kept"
        )
    else:
        kept_note = "no earlier file exists, so the feed stays unavailable"
    # INFO: every caller reports the outcome; `iocscope feeds sync` prints it.
    logger.info("feed %s: sync of %s failed: %s", job.spec.name, job.file.filename, reason)
    return SyncOutcome(
        job.spec.name,
        job.file.filename,
        status,
        f"{reason}; {kept_note}",
        redact_url(job.file.url),
        http_status,
    )
