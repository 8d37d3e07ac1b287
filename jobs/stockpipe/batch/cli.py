"""`stockpipe history daily|backfill|gaps`: the batch history jobs, each a plain entry point for a pod.

stdout: one JSON summary per run (for Airflow's XCom). stderr: logs, the progress bar on a
terminal, and on failure one line saying what went wrong. Exit codes: 0 done (or a clean skip:
no session that day), 1 the job failed (the provider refused, symbols failed, the lake is down),
2 bad arguments or settings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

import typer

from stockpipe.logs import redact, setup_logging
from stockpipe.settings import ConfigError, load_settings

if TYPE_CHECKING:
    from stockpipe.batch.jobs import JobSummary
    from stockpipe.batch.settings import HistorySettings

history_app = typer.Typer(
    help="Daily bars into the lake: daily incremental load, backfill (year to date by default), gap backfill.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

log = logging.getLogger(__name__)


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option) from None


def _range(start: str | None, end: str | None) -> tuple[date, date]:
    """Year to date unless told otherwise: January 1 of the end's year to the last closed session."""
    from stockpipe.batch import jobs

    last = _day(end, "--end") or jobs.last_closed_session()
    return _day(start, "--start") or date(last.year, 1, 1), last


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {redact(message)}", err=True)
    return typer.Exit(code)


def _run(job: str, call: Callable[[HistorySettings], JobSummary]) -> None:
    # Imported here so that `stockpipe --help` does not load pyarrow, finnhub and the calendar.
    from stockpipe.batch import jobs
    from stockpipe.batch.settings import HistorySettings

    try:
        settings = load_settings(HistorySettings)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    setup_logging(settings.log_level)
    try:
        summary = call(settings)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    except jobs.HistoryJobError as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:
        log.exception("history %s failed", job)
        raise _fail(f"history {job} failed: {type(exc).__name__}: {exc}") from None
    typer.echo(json.dumps(summary.to_dict(), sort_keys=True))
    if summary.skipped:
        typer.echo(summary.skipped, err=True)
        return
    if summary.fatal:
        raise _fail(summary.fatal)
    if summary.symbols_failed:
        failed = summary.symbols_failed
        shown = "; ".join(f"{s}: {r}" for s, r in sorted(failed.items())[:5])
        raise _fail(f"{len(failed)} of {summary.symbols} symbols failed ({shown}{'; ...' if len(failed) > 5 else ''})")


@history_app.command("daily")
def daily_command(
    day: str = typer.Option(..., "--date", help="The session to load: the run's logical date (YYYY-MM-DD)"),
) -> None:
    """Load one session for every symbol, catching up from each symbol's watermark. A closed day is skipped."""
    from stockpipe.batch import jobs

    session = _day(day, "--date")
    assert session is not None
    _run("daily", lambda settings: jobs.daily(settings, session))


@history_app.command("backfill")
def backfill_command(
    start: str | None = typer.Option(None, help="First day (YYYY-MM-DD); default: January 1 of the end's year"),
    end: str | None = typer.Option(None, help="Last day (YYYY-MM-DD); default: the last session that has closed"),
    refetch: bool = typer.Option(False, help="Fetch every symbol, even those the lake holds completely"),
) -> None:
    """Load every session of a range (year to date by default) for the symbols that miss any."""
    from stockpipe.batch import jobs

    first, last = _range(start, end)
    _run("backfill", lambda settings: jobs.backfill(settings, first, last, refetch=refetch))


@history_app.command("gaps")
def gaps_command(
    start: str | None = typer.Option(None, help="First day (YYYY-MM-DD); default: January 1 of the end's year"),
    end: str | None = typer.Option(None, help="Last day (YYYY-MM-DD); default: the last session that has closed"),
) -> None:
    """Find the sessions the lake lacks per symbol and fetch only those."""
    from stockpipe.batch import jobs

    first, last = _range(start, end)
    _run("gaps", lambda settings: jobs.gaps(settings, first, last))
