"""``iocscope serve``: the REST API and the analyst page on uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import signal
from types import FrameType

import click
import uvicorn

from iocscope.api.app import build_server, create_app
from iocscope.api.settings import api_settings
from iocscope.cli.context import cli_context

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@click.command("serve")
@click.option("--host", default=None, help="Address to bind (default: api.host, 127.0.0.1).")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="TCP port to listen on (default: api.port, 8088).",
)
def serve_command(host: str | None, port: int | None) -> None:
    """Serve the REST API, the OpenAPI docs and the analyst page.

    SIGTERM or SIGINT stops the server after the requests in progress finish,
    and the command then exits with status 0.
    """
    settings = cli_context().settings()
    api = api_settings(settings)
    bind_host = host or api.host
    bind_port = port or api.port
    if not _is_loopback(bind_host):
        logger.warning(
            "serving on %s, which other hosts can reach: put a TLS proxy in front of it, "
            "because API keys travel in headers",
            bind_host,
        )
    server = build_server(create_app(settings, api), bind_host, bind_port)
    click.echo(f"serving iocscope on http://{bind_host}:{bind_port}", err=True)
    received = run_until_stopped(server)
    reason = f" by {signal.Signals(received).name}" if received is not None else ""
    click.echo(f"iocscope serve stopped{reason}", err=True)


def run_until_stopped(server: uvicorn.Server) -> int | None:
    """Run ``server`` until it shuts down; return the stop signal it received, if any.

    uvicorn handles SIGINT and SIGTERM with a graceful shutdown, restores the
    handlers it found, then raises the signal again so that the process dies
    by it (a shell then reports status 143 for SIGTERM). The handlers
    installed here are the ones it restores. They record the signal instead,
    so the caller returns normally, and they are removed again before this
    function returns.
    """
    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        # Also reached when the signal comes before uvicorn installs its own
        # handlers, and then the server stops right after its startup.
        server.should_exit = True

    previous = {number: signal.signal(number, record) for number in STOP_SIGNALS}
    try:
        server.run()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    # uvicorn raises the signals it caught again in reverse order, so the
    # last one recorded is the first it caught.
    return received[-1] if received else None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
