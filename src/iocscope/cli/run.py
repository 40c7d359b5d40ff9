"""``iocscope run``: the enrichment daemon for a Wazuh manager."""

from __future__ import annotations

import asyncio
import logging
import signal

import click

from iocscope.cli.context import cli_context
from iocscope.config import Settings
from iocscope.engine.alerts import AlertEnricher
from iocscope.runtime import open_runtime
from iocscope.wazuh.daemon import Daemon
from iocscope.wazuh.follower import AlertsFollower
from iocscope.wazuh.journal import DeliveryJournal
from iocscope.wazuh.queue import QueueWriter
from iocscope.wazuh.spool import SpoolReader

logger = logging.getLogger(__name__)

JOURNAL_FILE = "delivery.sqlite3"
CHECKPOINT_FILE = "alerts-json.checkpoint"
QUEUE_BUFFER_DIR = "queue-buffer"


@click.command("run")
@click.option("--once", is_flag=True, help="Process what is waiting, then exit.")
@click.option(
    "--follow/--no-follow",
    default=None,
    help="Also follow alerts.json (default: the wazuh.follow_alerts setting).",
)
def run_command(once: bool, follow: bool | None) -> None:
    """Enrich alerts from the integratord spool (and alerts.json) and send events to Wazuh."""
    settings = cli_context().settings()
    asyncio.run(
        _run(settings, once=once, follow=settings.wazuh.follow_alerts if follow is None else follow)
    )


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
        )
        try:
            if once:
                await daemon.run_once()
                writer.flush()
                click.echo(f"processed: {daemon.summary()}", err=True)
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            await daemon.run(stop)
        finally:
            writer.close()
            journal.close()
