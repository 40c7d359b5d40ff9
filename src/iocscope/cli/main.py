"""The ``iocscope`` command: options shared by every command and exit codes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from iocscope import __version__
from iocscope.cli.alerts import alerts_command
from iocscope.cli.config_cmd import config_group
from iocscope.cli.context import CliContext
from iocscope.cli.enrich import enrich_command
from iocscope.cli.feeds import feeds_group
from iocscope.cli.keys import keys_group
from iocscope.cli.run import run_command
from iocscope.cli.serve import serve_command
from iocscope.cli.sources import sources_command
from iocscope.cli.wazuh import wazuh_group
from iocscope.errors import IocscopeError

# Exit codes of every command. Click itself exits with 2 on a usage error.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="iocscope")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Configuration file (TOML). Default: $IOCSCOPE_CONFIG, then /etc/iocscope/iocscope.toml.",
)
@click.option("-v", "--verbose", count=True, help="Log more: -v for INFO, -vv for DEBUG.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, verbose: int) -> None:
    """Enrich Wazuh alerts and indicators with threat intelligence."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    # httpx logs every request with its full URL; iocscope logs its own line per call.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    ctx.obj = CliContext(config_path=config_path)


cli.add_command(enrich_command)
cli.add_command(alerts_command)
cli.add_command(feeds_group)
cli.add_command(sources_command)
cli.add_command(config_group)
cli.add_command(run_command)
cli.add_command(wazuh_group)
cli.add_command(serve_command)
cli.add_command(keys_group)


def main() -> None:
    """Run the command line and turn iocscope errors into exit codes."""
    try:
        result = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except IocscopeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    # A command's return value, or the code given to ctx.exit(), is the exit code.
    sys.exit(result if isinstance(result, int) else EXIT_OK)
