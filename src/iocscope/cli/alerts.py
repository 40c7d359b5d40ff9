"""``iocscope alerts``: enrich a file or stream of Wazuh alerts (alerts.json NDJSON).

Records go to standard output, one JSON object per observable; the summary
and any per-line errors go to standard error.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import click
import orjson
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from iocscope.cli.context import cli_context
from iocscope.cli.render import make_console
from iocscope.config import Settings
from iocscope.engine.alerts import AlertEnricher
from iocscope.observables.alerts import read_alerts
from iocscope.runtime import open_runtime

# Exit code when not one input line was an alert.
EXIT_NO_ALERTS = 1
# Per-line errors printed in full before they are only counted.
MAX_ERRORS_SHOWN = 20


@click.command("alerts")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, allow_dash=True))
def alerts_command(files: tuple[Path, ...]) -> int:
    """Enrich Wazuh alerts read from FILES (alerts.json format; '-' or nothing for stdin)."""
    settings = cli_context().settings()
    paths = files or (Path("-"),)
    for path in paths:
        # Pipes such as <(zcat alerts.json.gz) are not regular files but are readable.
        if str(path) != "-" and (not path.exists() or path.is_dir()):
            raise click.BadParameter(f"{path} is not a readable file", param_hint="FILES")
    stderr = make_console(stderr=True)
    summary = asyncio.run(_run(settings, paths, stderr))
    _print_summary(summary)
    if summary["alerts_read"] == 0 and summary["invalid_lines"] > 0:
        click.echo("error: no input line is a Wazuh alert in the alerts.json format", err=True)
        return EXIT_NO_ALERTS
    return 0


async def _run(settings: Settings, paths: tuple[Path, ...], stderr: Console) -> dict[str, Any]:
    async with open_runtime(settings) as runtime:
        enricher = AlertEnricher(runtime.engine, settings.alerts.max_observables)
        window = runtime.settings.concurrency
        pending: deque[asyncio.Task[list[dict[str, Any]]]] = deque()
        errors_shown = 0
        with _progress(stderr) as progress:
            task_id = progress.add_task("alerts", total=None)
            for path in paths:
                for item in read_alerts(_lines(path)):
                    if item.alert is None:
                        enricher.summary.invalid_lines += 1
                        errors_shown = _report_line_error(stderr, path, item.error, errors_shown)
                        continue
                    pending.append(asyncio.create_task(enricher.enrich_alert(item.alert)))
                    if len(pending) >= window:
                        _write(await pending.popleft())
                        progress.advance(task_id)
            while pending:
                _write(await pending.popleft())
                progress.advance(task_id)
        return enricher.summary.as_dict(runtime.engine)


def _lines(path: Path) -> Iterator[bytes]:
    if str(path) == "-":
        yield from sys.stdin.buffer
        return
    handle: BinaryIO
    with path.open("rb") as handle:
        yield from handle


def _write(records: list[dict[str, Any]]) -> None:
    out = sys.stdout.buffer
    for record in records:
        out.write(orjson.dumps(record) + b"\n")
    out.flush()


def _report_line_error(stderr: Console, path: Path, error: str | None, shown: int) -> int:
    if shown < MAX_ERRORS_SHOWN:
        stderr.print(f"{path}: {error}", markup=False, highlight=False)
    elif shown == MAX_ERRORS_SHOWN:
        stderr.print("further line errors are only counted in the summary", markup=False)
    return shown + 1


def _progress(stderr: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}: {task.completed} enriched"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )


def _print_summary(summary: dict[str, Any]) -> None:
    # Plain lines, never wrapped: scripts grep this summary.
    click.echo("summary:", err=True)
    for key, value in summary.items():
        if isinstance(value, dict):
            text = ", ".join(f"{name}={count}" for name, count in value.items()) or "none"
        else:
            text = str(value)
        click.echo(f"  {key.replace('_', ' ')}: {text}", err=True)
