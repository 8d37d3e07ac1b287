"""The NYSE calendar as a dbt seed (dbt/seeds/nyse_sessions.csv): one row per calendar day.

dim_date and the session-aware freshness checks read it. It is generated from
stockpipe.marketdata.calendar (exchange_calendars' XNYS) so that the warehouse and the pipeline
agree on every session, early close and ad-hoc closure; regenerate it (`stockpipe load
calendar-seed`) when exchange_calendars is upgraded or the window needs another year.

It starts where the calendar does (stockpipe.marketdata.calendar.CALENDAR_START, 2000), so every
bar that history accepts is a session of the seed: one source of sessions for the jobs and dbt.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from stockpipe.marketdata import calendar

SEED_FIRST_YEAR = calendar.CALENDAR_START.year
SEED_LAST_YEAR = 2027
SEED_COLUMNS: tuple[str, ...] = ("date_day", "is_session", "is_early_close", "session_open_utc", "session_close_utc")
DEFAULT_SEED_PATH = Path("dbt/seeds/nyse_sessions.csv")


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")


def seed_rows(first_year: int = SEED_FIRST_YEAR, last_year: int = SEED_LAST_YEAR) -> list[dict[str, str]]:
    """Every day from Jan 1 of first_year to Dec 31 of last_year, with its session (times in UTC)."""
    rows: list[dict[str, str]] = []
    day, end = date(first_year, 1, 1), date(last_year, 12, 31)
    while day <= end:
        s = calendar.session(day)
        rows.append(
            {
                "date_day": day.isoformat(),
                "is_session": "true" if s else "false",
                "is_early_close": "true" if s and s.early_close else "false",
                "session_open_utc": _ts(s.open_utc) if s else "",
                "session_close_utc": _ts(s.close_utc) if s else "",
            }
        )
        day += timedelta(days=1)
    return rows


def seed_csv(first_year: int = SEED_FIRST_YEAR, last_year: int = SEED_LAST_YEAR) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SEED_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(seed_rows(first_year, last_year))
    return out.getvalue()


def write_seed(
    path: Path = DEFAULT_SEED_PATH, first_year: int = SEED_FIRST_YEAR, last_year: int = SEED_LAST_YEAR
) -> int:
    """Write the seed; returns the number of days. Deterministic: the same calendar gives the same bytes."""
    text = seed_csv(first_year, last_year)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return text.count("\n") - 1
