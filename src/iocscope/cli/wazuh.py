"""``iocscope wazuh install|uninstall|check|cdb``: set up and verify a Wazuh manager."""

from __future__ import annotations

from pathlib import Path

import click

from iocscope.cli.context import cli_context
from iocscope.wazuh import cdb, check
from iocscope.wazuh.install import (
    DEFAULT_RULE_BASE_ID,
    DEFAULT_SYSTEMD_UNIT,
    InstallOptions,
    InstallResult,
    install,
    uninstall,
)
from iocscope.wazuh.ossec_conf import IntegrationOptions

_DIR = click.Path(path_type=Path, file_okay=False)


def _wazuh_dir(explicit: Path | None) -> Path:
    return explicit or cli_context().settings().wazuh.wazuh_dir


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _rule_ids(value: str, option: str) -> tuple[int, ...]:
    parts = _split(value)
    if not all(part.isdigit() for part in parts):
        raise click.BadParameter(
            f"expected comma-separated rule IDs, got {value!r}", param_hint=option
        )
    return tuple(int(part) for part in parts)


def _echo_result(result: InstallResult, *, dry_run: bool) -> None:
    if result.diff:
        click.echo(result.diff, nl=not result.diff.endswith("\n"))
    for action in result.actions:
        click.echo(str(action))
    if result.chown_commands:
        click.echo("set the owners with these commands, run as root:")
        for command in dict.fromkeys(result.chown_commands):
            click.echo(f"  {command}")
    for note in result.notes:
        click.echo(f"next: {note}")
    if dry_run:
        click.echo("dry run: nothing was written")
    elif not result.changed:
        click.echo("already up to date")


wazuh_dir_option = click.option(
    "--wazuh-dir",
    type=_DIR,
    default=None,
    help="Wazuh manager directory. Default: wazuh.wazuh_dir of the configuration (/var/ossec).",
)
dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Show the ossec.conf diff and file actions; write nothing."
)
group_option = click.option(
    "--group",
    default=None,
    help="Group of the Wazuh daemons that owns installed files. Default: wazuh, else ossec.",
)
systemd_unit_option = click.option(
    "--systemd-unit",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_SYSTEMD_UNIT,
    show_default=True,
    help="Where --systemd writes (or uninstall removes) the unit file.",
)


@click.group("wazuh")
def wazuh_group() -> None:
    """Install iocscope into a Wazuh manager, check the setup, export CDB lists."""


@wazuh_group.command("install")
@wazuh_dir_option
@dry_run_option
@click.option(
    "--level",
    type=click.IntRange(0, 16),
    default=None,
    help="Lowest alert level sent to iocscope. Default: wazuh.min_level (3).",
)
@click.option(
    "--groups", default="", help="Only alerts in one of these rule groups (comma-separated)."
)
@click.option("--rule-ids", default="", help="Only alerts of these rule IDs (comma-separated).")
@click.option(
    "--rule-base-id",
    type=int,
    default=DEFAULT_RULE_BASE_ID,
    show_default=True,
    help="First rule ID of iocscope's rules file (custom range 100000-119999).",
)
@click.option(
    "--ar-rule-ids",
    default="",
    help="Rule IDs whose alerts run the iocscope-ar active response (comma-separated).",
)
@click.option("--systemd", is_flag=True, help="Also write a systemd unit for `iocscope run`.")
@systemd_unit_option
@group_option
@click.option("--scripts-dir", type=_DIR, default=None, hidden=True)
def install_command(  # noqa: PLR0917 - click passes every option as an argument
    wazuh_dir: Path | None,
    dry_run: bool,
    level: int | None,
    groups: str,
    rule_ids: str,
    rule_base_id: int,
    ar_rule_ids: str,
    systemd: bool,
    systemd_unit: Path,
    group: str | None,
    scripts_dir: Path | None,
) -> None:
    """Place the scripts and rules, create the spool and edit ossec.conf (with a backup)."""
    settings = cli_context().settings()
    integration = IntegrationOptions(
        level=settings.wazuh.min_level if level is None else level,
        groups=_split(groups),
        rule_ids=_rule_ids(rule_ids, "--rule-ids"),
    )
    options = InstallOptions(
        wazuh_dir=_wazuh_dir(wazuh_dir),
        integration=integration,
        rule_base_id=rule_base_id,
        ar_rule_ids=_rule_ids(ar_rule_ids, "--ar-rule-ids"),
        systemd_unit=systemd_unit if systemd else None,
        dry_run=dry_run,
        group=group,
        scripts_dir=scripts_dir,
    )
    _echo_result(install(options), dry_run=dry_run)


@wazuh_group.command("uninstall")
@wazuh_dir_option
@dry_run_option
@click.option("--systemd", is_flag=True, help="Also remove the systemd unit file.")
@systemd_unit_option
def uninstall_command(
    wazuh_dir: Path | None, dry_run: bool, systemd: bool, systemd_unit: Path
) -> None:
    """Remove iocscope's blocks, scripts, rules and lists; keep backups and a non-empty spool."""
    options = InstallOptions(
        wazuh_dir=_wazuh_dir(wazuh_dir),
        systemd_unit=systemd_unit if systemd else None,
        dry_run=dry_run,
    )
    _echo_result(uninstall(options), dry_run=dry_run)


@wazuh_group.command("check")
@wazuh_dir_option
@group_option
@click.option(
    "--max-backlog-age",
    type=click.FloatRange(min=1),
    default=check.DEFAULT_BACKLOG_MAX_AGE,
    show_default=True,
    help="Seconds an alert may wait in the spool before the daemon counts as down.",
)
@click.option(
    "--data-dir",
    type=_DIR,
    default=None,
    help="iocscope's data directory, to count events waiting for analysisd "
    "(default: the configured data directory).",
)
@click.pass_context
def check_command(
    ctx: click.Context,
    wazuh_dir: Path | None,
    group: str | None,
    max_backlog_age: float,
    data_dir: Path | None,
) -> None:
    """Check the installation and ossec.log; exit 1 when any check fails."""
    options = check.CheckOptions(
        wazuh_dir=_wazuh_dir(wazuh_dir),
        group=group,
        backlog_max_age=max_backlog_age,
        data_dir=data_dir or cli_context().settings().data_dir,
    )
    results = check.run_checks(options)
    click.echo(check.render_table(results))
    ctx.exit(check.exit_code(results))


@wazuh_group.command("cdb")
@wazuh_dir_option
@click.option(
    "--out",
    "out_dir",
    type=_DIR,
    default=None,
    help="Write lists and rules into this directory instead, leaving ossec.conf alone.",
)
@click.option(
    "--base-id",
    type=int,
    default=cdb.DEFAULT_CDB_BASE_ID,
    show_default=True,
    help="First rule ID of the CDB rules file (custom range 100000-119999).",
)
@click.option(
    "--max-keys",
    type=click.IntRange(min=1),
    default=cdb.DEFAULT_MAX_KEYS_PER_NETWORK,
    show_default=True,
    help="Most keys one IPv4 network may expand into; larger ones are skipped.",
)
@dry_run_option
@group_option
def cdb_command(  # noqa: PLR0917 - click passes every option as an argument
    wazuh_dir: Path | None,
    out_dir: Path | None,
    base_id: int,
    max_keys: int,
    dry_run: bool,
    group: str | None,
) -> None:
    """Compile the synced blocklist feeds into Wazuh CDB lists plus rules that use them."""
    settings = cli_context().settings()
    export = cdb.build_export(settings.data_dir, base_id=base_id, max_keys_per_network=max_keys)
    for line in export.report.lines():
        click.echo(line)
    result = cdb.write_export(
        export, wazuh_dir=_wazuh_dir(wazuh_dir), out_dir=out_dir, group=group, dry_run=dry_run
    )
    _echo_result(result, dry_run=dry_run)
