"""``iocscope keys add|list|revoke``: the API keys of ``iocscope serve``."""

from __future__ import annotations

from pathlib import Path

import click
import orjson
from rich.table import Table

from iocscope.api.auth import add_key, read_keys, revoke_key
from iocscope.api.settings import api_settings
from iocscope.cli.context import cli_context
from iocscope.cli.render import make_console


def _keys_path() -> Path:
    settings = cli_context().settings()
    return api_settings(settings).keys_path(settings.data_dir)


@click.group("keys")
def keys_group() -> None:
    """Manage the API keys of the REST service (stored hashed in the keys file)."""


@keys_group.command("add")
@click.argument("name")
@click.option(
    "--rate",
    "rate_per_minute",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Requests per minute for this key (default: api.rate_per_minute).",
)
def add_command(name: str, rate_per_minute: float | None) -> None:
    """Create an API key called NAME and print it once; only its hash is stored."""
    path = _keys_path()
    new = add_key(path, name, rate_per_minute)
    click.echo(f"API key {new.record.name} (id {new.record.key_id}) added to {path}.", err=True)
    click.echo("Store it now: it is shown only once and cannot be recovered.", err=True)
    click.echo(new.plaintext)


@keys_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON.")
def list_command(as_json: bool) -> None:
    """List the keys: id, name, creation and revocation time (never the key itself)."""
    path = _keys_path()
    rows = [
        {
            "id": record.key_id,
            "name": record.name,
            "created": record.created,
            "revoked": record.revoked,
            "rate_per_minute": record.rate_per_minute,
        }
        for record in read_keys(path)
    ]
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"API keys in {path}")
    for column in ("id", "name", "created", "revoked", "rate/min"):
        table.add_column(column)
    for row in rows:
        rate = row["rate_per_minute"]
        table.add_row(
            str(row["id"]),
            str(row["name"]),
            str(row["created"]),
            str(row["revoked"] or "-"),
            "default" if rate is None else f"{rate:g}",
        )
    make_console().print(table)


@keys_group.command("revoke")
@click.argument("name_or_id")
def revoke_command(name_or_id: str) -> None:
    """Revoke the active key with this name or id; a running server stops accepting it."""
    path = _keys_path()
    record = revoke_key(path, name_or_id)
    click.echo(f"API key {record.name} (id {record.key_id}) revoked at {record.revoked}.")
