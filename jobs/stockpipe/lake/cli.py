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
    from stockpipe.freshness.writerlock import warehouse_writer
    from stockpipe.lake.compaction import compact_day, duckdb_ledger
    from stockpipe.lake.store import Lake
    from stockpipe.logs import setup_logging
    from stockpipe.settings import ConfigError, load_settings
    from stockpipe.warehouse.settings import WarehouseSettings

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
    if ledger and settings.warehouse.target == "duckdb":
        from stockpipe.warehouse.duckdb_target import DuckDBTarget

        # The ledger is written in the same step as the deletes: one warehouse writer at a time.
        with warehouse_writer(settings), DuckDBTarget(settings.warehouse.duckdb_path, lake) as target:
            target.ensure_schema()
            report = compact_day(lake, when, target_rows, register=duckdb_ledger(target))
    else:
        report = compact_day(lake, when, target_rows)
    print(json.dumps(report.as_dict()))
