"""`stockpipe lake ...`: lake maintenance (wire with `app.add_typer(lake_app, name="lake")`)."""

from __future__ import annotations

import json
from datetime import date

import typer

lake_app = typer.Typer(help="Lake maintenance: compaction of a session's small stream files.", no_args_is_help=True)


@lake_app.callback()
def _group() -> None:
    """Keeps `compact` a subcommand (typer flattens a group of one command)."""


@lake_app.command("compact")
def compact_command(
    day: str = typer.Option(..., "--date", help="the dt= date (UTC) whose stream files are compacted"),
    target_rows: int = typer.Option(1_000_000, min=1, help="rows per compacted object at most"),
    ledger: bool = typer.Option(True, help="record compacted objects in the DuckDB load ledger when possible"),
) -> None:
    """Rewrite a day's small stream files per partition into few large ones (atomic, idempotent); JSON report."""
    from stockpipe.lake.compaction import compact_day
    from stockpipe.lake.store import Lake
    from stockpipe.logs import setup_logging
    from stockpipe.settings import ConfigError, load_settings
    from stockpipe.warehouse.settings import WarehouseSettings
    from stockpipe.warehouse.targets import compaction_register

    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise typer.BadParameter(f"not a date: {day!r}", param_hint="--date") from None
    try:
        settings = load_settings(WarehouseSettings)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    setup_logging(settings.log_level)
    lake = Lake(settings.lake)
    # The warehouse takes its writer lock per group's ledger swap only, never for the whole rewrite.
    register = compaction_register(settings, lake) if ledger else None
    report = compact_day(lake, when, target_rows, register=register)
    print(json.dumps(report.as_dict()))
