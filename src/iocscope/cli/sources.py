"""``iocscope sources``: every source, its types, key requirement and state."""

from __future__ import annotations

import asyncio
from typing import Any

import click
import orjson
from rich.table import Table

from iocscope.cli.context import cli_context
from iocscope.cli.render import make_console
from iocscope.runtime import Runtime, open_runtime
from iocscope.sources.registry import SourceState


@click.command("sources")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def sources_command(as_json: bool) -> None:
    """List every source: kind, indicator types, key requirement, and enabled or why not."""
    settings = cli_context().settings()

    async def run() -> tuple[tuple[SourceState, ...], list[dict[str, Any]]]:
        async with open_runtime(settings) as runtime:
            return runtime.states, [_row(state, runtime) for state in runtime.states]

    states, rows = asyncio.run(run())
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"{sum(s.enabled for s in states)} of {len(states)} sources enabled")
    for column in ("source", "kind", "types", "key", "limits", "state"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["name"],
            row["kind"],
            ", ".join(row["types"]),
            "required" if row["needs_key"] else "no",
            row["limits"],
            row["state"],
        )
    make_console().print(table)


def _row(state: SourceState, runtime: Runtime) -> dict[str, Any]:
    meta = state.meta
    rate, budget = runtime.engine.limits_for(meta)
    budget_left = runtime.limiter.budget_left(meta.name, budget)
    limits = []
    if rate:
        limits.append(f"{rate:g}/min")
    if budget is not None:
        limits.append(f"{budget_left} of {budget} left today")
    return {
        "name": meta.name,
        "title": meta.title,
        "kind": meta.kind.value,
        "types": sorted(t.value for t in meta.types),
        "needs_key": meta.needs_key,
        "limits": ", ".join(limits) or "-",
        "rate_per_minute": rate,
        "daily_budget": budget,
        "budget_left": budget_left,
        "enabled": state.enabled,
        "state": state.reason,
        "licence": meta.licence,
    }
