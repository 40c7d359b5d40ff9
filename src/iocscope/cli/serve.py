"""``iocscope serve``: the REST API and the analyst page on uvicorn."""

from __future__ import annotations

import ipaddress
import logging

import click

from iocscope.api.app import build_server, create_app
from iocscope.api.settings import api_settings
from iocscope.cli.context import cli_context

logger = logging.getLogger(__name__)


@click.command("serve")
@click.option("--host", default=None, help="Address to bind (default: api.host, 127.0.0.1).")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="TCP port to listen on (default: api.port, 8088).",
)
def serve_command(host: str | None, port: int | None) -> None:
    """Serve the REST API, the OpenAPI docs and the analyst page."""
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
    server.run()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
