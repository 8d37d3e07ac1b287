"""`stockpipe calendar`: NYSE sessions for given dates."""

from __future__ import annotations

import json
from datetime import date

import typer


def calendar_command(
    dates: list[str] = typer.Argument(..., help="Dates as YYYY-MM-DD"),  # noqa: B008
    as_json: bool = typer.Option(False, "--json", help="One JSON object per date"),
) -> None:
    """Whether each date is an NYSE session, its open/close in UTC and whether it closes early."""
    from stockpipe.marketdata import calendar

    for raw in dates:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise typer.BadParameter(f"{raw!r} is not a date (YYYY-MM-DD)", param_hint="DATES") from None
        try:
            entry = calendar.calendar_entry(day)
        except calendar.CalendarRangeError as exc:
            raise typer.BadParameter(str(exc), param_hint="DATES") from None
        if as_json:
            print(json.dumps(entry))
        else:
            s = calendar.session(day)
            if s is None:
                print(f"{day}  closed")
            else:
                note = "  (early close)" if s.early_close else ""
                ny, utc = f"{s.open_ny:%H:%M}-{s.close_ny:%H:%M}", f"{s.open_utc:%H:%M}-{s.close_utc:%H:%M}"
                print(f"{day}  {ny} New York  {utc} UTC{note}")
