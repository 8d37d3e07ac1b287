"""`stockpipe watch probe`: pipeline_watch's job (wire with `app.add_typer(watch_app, name="watch")`).

stdout: one JSON report (Airflow's XCom); stderr: logs. Exit codes: 0 report printed, 1 Kafka or the
lake unreachable, 2 bad arguments or settings.
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer

watch_app = typer.Typer(
    help="Pipeline health facts for pipeline_watch: heartbeats, freshness per symbol, dead letters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@watch_app.callback()
def _group() -> None:
    """Keeps `probe` a subcommand (typer flattens a group of one command)."""


@watch_app.command("probe")
def probe_command(
    as_of: str | None = typer.Option(None, "--as-of", help="ISO instant to judge (the run's time); default now"),
) -> None:
    """Print the facts as of one instant as JSON (judging them is pipeline_watch's job)."""
    from stockpipe.logs import redact, setup_logging
    from stockpipe.orchestration.watch import WatchSettings, probe_json
    from stockpipe.settings import ConfigError, load_settings

    try:
        at = datetime.fromisoformat(as_of.replace("Z", "+00:00")) if as_of else datetime.now(UTC)
    except ValueError:
        raise typer.BadParameter(f"{as_of!r} is not an ISO date-time", param_hint="--as-of") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    try:
        settings = load_settings(WatchSettings)
        settings.expected_symbols()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    setup_logging(settings.log_level)
    try:
        report = probe_json(settings, at)
    except Exception as exc:
        typer.echo(f"error: watch probe failed: {redact(f'{type(exc).__name__}: {exc}')}", err=True)
        raise typer.Exit(1) from None
    typer.echo(report)
