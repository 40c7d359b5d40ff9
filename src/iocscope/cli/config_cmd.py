"""``iocscope config check``: validate and show the effective configuration."""

from __future__ import annotations

import click
import orjson

from iocscope.cli.context import cli_context
from iocscope.config import Settings, find_config_path, resolve_api_key
from iocscope.errors import ConfigError
from iocscope.sources.registry import catalogue, configuration_problems

MASK = "********"


@click.group("config")
def config_group() -> None:
    """Inspect the configuration."""


# Exit code of `config check` when the file is valid but has problems.
EXIT_PROBLEMS = 1


@config_group.command("check")
def check_command() -> int:
    """Validate the configuration and print the effective settings, secrets masked."""
    context = cli_context()
    path = find_config_path(context.config_path)
    settings = context.settings()
    effective = settings.model_dump(mode="json")
    effective["config_file"] = str(path) if path else "none (embedded defaults)"
    keys = _key_states(settings)
    effective["api_keys"] = keys
    click.echo(orjson.dumps(effective, option=orjson.OPT_INDENT_2).decode())
    problems = configuration_problems(settings)
    problems += [
        f"API key of {name}: {state}" for name, state in keys.items() if state.startswith("invalid")
    ]
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    if problems:
        click.echo(f"configuration has {len(problems)} problem(s)", err=True)
        return EXIT_PROBLEMS
    click.echo("configuration is valid", err=True)
    return 0


def _key_states(settings: Settings) -> dict[str, str]:
    states: dict[str, str] = {}
    for entry in catalogue():
        if not entry.meta.needs_key:
            continue
        name = entry.meta.name
        try:
            key = resolve_api_key(name, settings.source(name))
        except ConfigError as exc:
            states[name] = f"invalid: {exc}"
            continue
        states[name] = f"set ({MASK})" if key is not None else "not set"
    return states
