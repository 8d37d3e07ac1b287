"""`stockpipe load ...`: lake -> bronze, the calendar seed, and dbt (silver, gold) as pod-friendly commands.

Wire into the main app with `app.add_typer(load_app, name="load")`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

load_app = typer.Typer(
    help="Warehouse: load the lake into bronze (DuckDB or Snowflake) and build silver/gold with dbt.",
    no_args_is_help=True,
)


def _settings(target: str | None) -> Any:
    from stockpipe.logs import setup_logging
    from stockpipe.settings import ConfigError, load_settings
    from stockpipe.warehouse.settings import WarehouseSettings

    try:
        settings = load_settings(WarehouseSettings)
        if target is not None:
            settings.warehouse = settings.warehouse.model_copy(update={"target": target})
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    setup_logging(settings.log_level)
    return settings


def _check_target(target: str | None) -> str | None:
    if target is not None and target not in ("duckdb", "snowflake"):
        raise typer.BadParameter("must be duckdb or snowflake", param_hint="--target")
    return target


@load_app.command("bronze")
def bronze_command(
    target: str | None = typer.Option(None, help="duckdb or snowflake (default: STOCKPIPE_WAREHOUSE__TARGET)"),
    plan: bool = typer.Option(False, "--plan", help="only list what a load would read (creates missing tables)"),
    listing: str = typer.Option(
        "recent", help="S3 lakes: recent (partitions from just before the newest loaded one) or full"
    ),
    lookback_days: int = typer.Option(2, min=0, help="with --listing recent: days before the newest loaded one"),
) -> None:
    """Load new and changed lake objects into bronze; prints the load report as JSON."""
    from stockpipe.lake.store import Lake
    from stockpipe.warehouse.loader import BronzeLoader, LoadError
    from stockpipe.warehouse.targets import open_target
    from stockpipe.warehouse.writerlock import warehouse_writer

    if listing not in ("recent", "full"):
        raise typer.BadParameter("must be recent or full", param_hint="--listing")
    settings = _settings(_check_target(target))
    lake = Lake(settings.lake)
    # One writer at a time: the continuous loader and the compaction job take the same lock.
    with warehouse_writer(settings), open_target(settings, lake) as tgt:
        loader = BronzeLoader(
            lake,
            tgt,
            batch_max_objects=settings.warehouse.batch_max_objects,
            batch_max_bytes=settings.warehouse.batch_max_bytes,
            listing="full" if listing == "full" else "recent",
            lookback_days=lookback_days,
        )
        if plan:
            tgt.ensure_schema()
            pending = loader.plan()
            print(json.dumps({"pending": [o.key for o in pending.objects], "listed": pending.listed}))
            return
        try:
            report = loader.run()
        except LoadError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    print(json.dumps(report.as_dict()))


@load_app.command("calendar-seed")
def calendar_seed_command(
    out: Path = typer.Option(Path("dbt/seeds/nyse_sessions.csv"), help="where the dbt seed goes"),  # noqa: B008
    first_year: int = typer.Option(2000, min=2000),  # calendar_seed.SEED_FIRST_YEAR: the calendar's start
    last_year: int = typer.Option(2027),
) -> None:
    """Write the NYSE calendar (sessions, early closes, UTC open/close) as a dbt seed."""
    from stockpipe.marketdata.calendar import CalendarRangeError
    from stockpipe.warehouse.calendar_seed import write_seed

    if last_year < first_year:
        raise typer.BadParameter("must not be before --first-year", param_hint="--last-year")
    try:
        days = write_seed(out, first_year, last_year)
    except CalendarRangeError as exc:
        raise typer.BadParameter(str(exc), param_hint="--last-year") from None
    typer.echo(f"{out}: {days} days, {first_year}-01-01..{last_year}-12-31")


def _instant(text: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 instant: {text!r}", param_hint="--as-of") from None
    if instant.tzinfo is None:
        raise typer.BadParameter("needs a UTC offset, e.g. 2025-01-14T21:00:00+00:00", param_hint="--as-of")
    return instant


def _run_dbt(args: list[str], target: str | None) -> None:
    from stockpipe.warehouse.dbt_runner import run_dbt

    settings = _settings(_check_target(target))
    outcome = run_dbt(args, settings)
    if not outcome.success:
        for failure in outcome.failures():
            typer.echo(failure, err=True)
        if outcome.exception:
            typer.echo(f"error: {outcome.exception}", err=True)
        raise typer.Exit(1)


@load_app.command("dbt-build")
def dbt_build_command(
    select: list[str] = typer.Option([], "--select", "-s", help="dbt node selection"),  # noqa: B008
    exclude: list[str] = typer.Option([], "--exclude", help="dbt node exclusion"),  # noqa: B008
    full_refresh: bool = typer.Option(False, "--full-refresh", help="rebuild incremental models from scratch"),
    dbt_vars: str | None = typer.Option(None, "--vars", help="dbt vars as YAML, e.g. '{freshness_as_of: ...}'"),
    as_of: str | None = typer.Option(
        None, "--as-of", help="measure data freshness at this ISO 8601 instant (with offset) instead of now"
    ),
    changed_only: bool = typer.Option(
        False, "--changed-only", help="only the branches of bronze tables that got rows since the last build"
    ),
    target: str | None = typer.Option(None, help="duckdb or snowflake (default: STOCKPIPE_WAREHOUSE__TARGET)"),
) -> None:
    """`dbt build` (seeds, silver, gold, tests) on the configured warehouse."""
    args = ["build"]
    if as_of is not None:
        if dbt_vars:
            raise typer.BadParameter("cannot be combined with --vars (set freshness_as_of there)", param_hint="--as-of")
        dbt_vars = json.dumps({"freshness_as_of": _instant(as_of).isoformat()})
    if changed_only:
        if select:
            raise typer.BadParameter("cannot be combined with --select", param_hint="--changed-only")
        from stockpipe.warehouse.dbt_runner import changed_branches

        branches = changed_branches(_settings(_check_target(target)))
        if branches == []:
            typer.echo("no bronze table got rows since the last build: nothing to do", err=True)
            return
        # Views only need a build when their SQL changes, not when data arrives.
        select = [f"source:bronze.{t}+" for t in branches or []]
        exclude = [*exclude, "config.materialized:view"] if branches else exclude
    if dbt_vars:
        args += ["--vars", dbt_vars]
    for s in select:
        args += ["--select", s]
    for e in exclude:
        args += ["--exclude", e]
    if full_refresh:
        args.append("--full-refresh")
    _run_dbt(args, target)


@load_app.command("continuous")
def continuous_command() -> None:
    """Long-running: load the objects the consumer announces, then dbt-build the intraday models (freshness)."""
    from stockpipe.logs import setup_logging
    from stockpipe.settings import ConfigError, load_settings
    from stockpipe.warehouse.continuous import ContinuousLoaderSettings, run_continuous_loader

    try:
        settings = load_settings(ContinuousLoaderSettings)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    setup_logging(settings.log_level)
    run_continuous_loader(settings)


@load_app.command("dbt-freshness")
def dbt_freshness_command(
    target: str | None = typer.Option(None, help="duckdb or snowflake (default: STOCKPIPE_WAREHOUSE__TARGET)"),
) -> None:
    """`dbt source freshness`: bronze measured against the NYSE clock (weekends and holidays do not count)."""
    _run_dbt(["source", "freshness"], target)
