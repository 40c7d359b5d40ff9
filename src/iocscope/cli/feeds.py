"""``iocscope feeds sync|import|status``: keep the bulk feeds on local disk."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import click
import orjson
from rich.table import Table

from iocscope.cli.context import cli_context
from iocscope.cli.render import make_console, plural
from iocscope.runtime import ensure_data_dir
from iocscope.sources.feeds.catalogue import FEEDS, feed_spec
from iocscope.sources.feeds.store import FeedStatus, FeedStore, import_feed
from iocscope.sources.feeds.sync import SyncOutcome, SyncStatus, sync_feeds
from iocscope.sources.http import build_http_client

# Exit code of `feeds sync` when at least one feed could not be refreshed.
EXIT_SYNC_INCOMPLETE = 3


@click.group("feeds")
def feeds_group() -> None:
    """Sync, import and inspect the bulk feeds."""


@feeds_group.command("sync")
@click.argument("names", nargs=-1)
@click.option("--due", is_flag=True, help="Only feeds whose sync interval has passed.")
def sync_command(names: tuple[str, ...], due: bool) -> int:
    """Download the feeds (all, or NAMES) with conditional GET into the data directory."""
    settings = cli_context().settings()
    data_dir = ensure_data_dir(settings.data_dir)

    async def run() -> list[SyncOutcome]:
        async with build_http_client(settings) as client:
            return await sync_feeds(
                data_dir, FEEDS, client, names=list(names) or None, settings=settings, only_due=due
            )

    outcomes = asyncio.run(run())
    for outcome in outcomes:
        click.echo(f"{outcome.feed}/{outcome.file}: {_outcome_text(outcome)}", err=True)
    offline = [o for o in outcomes if o.status is SyncStatus.OFFLINE]
    failed = [o for o in outcomes if not o.ok]
    if offline and len(offline) == len(failed):
        click.echo(
            f"offline: {len(offline)} feed files could not be reached; the files already "
            "in the data directory are kept and used",
            err=True,
        )
    return EXIT_SYNC_INCOMPLETE if failed else 0


def _outcome_text(outcome: SyncOutcome) -> str:
    # Messages of some outcomes already start with their status word.
    status = outcome.status.value
    if outcome.message.startswith(f"{status}:"):
        return outcome.message
    return f"{status}: {outcome.message}"


@feeds_group.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def import_command(name: str, file: Path) -> None:
    """Load the feed NAME from a local FILE (for hosts without network access)."""
    if feed_spec(name) is None:
        known = ", ".join(spec.name for spec in FEEDS)
        raise click.BadParameter(f"unknown feed {name!r}; known feeds: {known}", param_hint="NAME")
    settings = cli_context().settings()
    status = import_feed(ensure_data_dir(settings.data_dir), name, file)
    click.echo(
        f"imported {plural(status.entries, 'entry', 'entries')} into feed {name} "
        f"({plural(status.rejected, 'line')} rejected, "
        f"{plural(status.dropped, 'non-public entry', 'non-public entries')} dropped)",
        err=True,
    )


@feeds_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_command(as_json: bool) -> None:
    """Show each feed: loaded or not, entries, rejected lines, last sync and age."""
    settings = cli_context().settings()
    statuses = FeedStore.load(settings.data_dir).status()
    if as_json:
        rows = [_status_row(status) for status in statuses]
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"feeds in {settings.data_dir / 'feeds'}")
    table.add_column("feed", no_wrap=True)
    for column in ("loaded", "entries", "rejected", "synced (UTC)", "age", "problems"):
        table.add_column(column, overflow="fold")
    for status in statuses:
        table.add_row(
            status.name,
            "yes" if status.loaded else "no",
            str(status.entries),
            str(status.rejected),
            status.synced_at.strftime("%Y-%m-%d %H:%M") if status.synced_at else "never",
            _age(status.age),
            "; ".join(status.errors),
        )
    make_console().print(table)


def _status_row(status: FeedStatus) -> dict[str, object]:
    return {
        "name": status.name,
        "title": status.title,
        "loaded": status.loaded,
        "entries": status.entries,
        "rejected": status.rejected,
        "dropped": status.dropped,
        "path": str(status.path) if status.path else None,
        "synced_at": status.synced_at.isoformat() if status.synced_at else None,
        "age_seconds": int(status.age.total_seconds()) if status.age else None,
        "etag": status.etag,
        "last_modified": status.last_modified,
        "errors": list(status.errors),
    }


def _age(age: timedelta | None) -> str:
    if age is None:
        return "-"
    hours = age.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"
