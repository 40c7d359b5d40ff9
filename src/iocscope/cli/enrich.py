"""``iocscope enrich VALUE``: enrich one indicator from the command line."""

from __future__ import annotations

import asyncio
import sys

import click
import orjson

from iocscope.cli.context import cli_context
from iocscope.cli.render import make_console, render_enrichment
from iocscope.engine.report import enrichment_record
from iocscope.indicators.model import IndicatorType
from iocscope.indicators.parse import parse_indicator
from iocscope.runtime import open_runtime


@click.command("enrich")
@click.argument("value")
@click.option(
    "--type",
    "type_name",
    type=click.Choice([t.value for t in IndicatorType]),
    default=None,
    help="Indicator type; detected from the value when omitted.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def enrich_command(value: str, type_name: str | None, as_json: bool) -> None:
    """Enrich one indicator: score, verdict, reasons and one row per source."""
    indicator = parse_indicator(value, IndicatorType(type_name) if type_name else None)
    settings = cli_context().settings()

    async def run() -> dict[str, object]:
        async with open_runtime(settings) as runtime:
            return enrichment_record(await runtime.engine.enrich(indicator))

    record = asyncio.run(run())
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n")
        return
    render_enrichment(make_console(), record)
