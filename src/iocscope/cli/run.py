"""``iocscope run``: the enrichment daemon for a Wazuh manager."""

from __future__ import annotations

import asyncio
import logging
import signal

import click
import orjson

from iocscope.cli.context import cli_context
from iocscope.config import Settings
from iocscope.engine.alerts import AlertEnricher
from iocscope.runtime import open_runtime
from iocscope.wazuh.daemon import Daemon
from iocscope.wazuh.follower import AlertsFollower
from iocscope.wazuh.journal import DeliveryJournal
from iocscope.wazuh.queue import SPILL_DIR_NAME, QueueWriter
from iocscope.wazuh.spool import SpoolReader

logger = logging.getLogger(__name__)

JOURNAL_FILE = "delivery.sqlite3"
CHECKPOINT_FILE = "alerts-json.checkpoint"
QUEUE_BUFFER_DIR = SPILL_DIR_NAME


@click.command("run")
@click.option("--once", is_flag=True, help="Process what is waiting, print a JSON summary, exit.")
@click.option(
    "--follow/--no-follow",
    default=None,
    help="Also follow alerts.json (default: the wazuh.follow_alerts setting).",
)
def run_command(once: bool, follow: bool | None) -> None:
    """Enrich alerts from the integratord spool (and alerts.json) and send events to Wazuh."""
    _log_info_by_default()
    settings = cli_context().settings()
    asyncio.run(
        _run(settings, once=once, follow=settings.wazuh.follow_alerts if follow is None else follow)
    )


def _log_info_by_default() -> None:
    """Log iocscope's INFO lines unless -v chose a level: a daemon reports starts and stops."""
    root = click.get_current_context().find_root()
    if not root.params.get("verbose"):
        logging.getLogger("iocscope").setLevel(logging.INFO)


async def _run(settings: Settings, *, once: bool, follow: bool) -> None:
    wazuh = settings.wazuh
    async with open_runtime(settings) as runtime:
        data_dir = settings.data_dir
        journal = DeliveryJournal(data_dir / JOURNAL_FILE)
        follower = (
            AlertsFollower(wazuh.alerts_json_path(), data_dir / CHECKPOINT_FILE) if follow else None
        )
        writer = QueueWriter(wazuh.queue_socket_path(), spill_dir=data_dir / QUEUE_BUFFER_DIR)
        daemon = Daemon(
            AlertEnricher(runtime.engine, settings.alerts.max_observables),
            writer,
            journal,
            wazuh,
            spool=SpoolReader(wazuh.spool_path()),
            follower=follower,
            concurrency=settings.concurrency,
        )
        try:
            stop = asyncio.Event()
            if not once:
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(signum, stop.set)
            await daemon.run(stop, once=once)
            if once:
                # One JSON line on standard output, for scripts and monitoring.
                click.echo(orjson.dumps(daemon.summary()).decode())
        finally:
            writer.close()
            journal.close()
