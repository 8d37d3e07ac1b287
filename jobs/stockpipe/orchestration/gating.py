"""Calendar gating: which NYSE session (or range of sessions) a DAG run is for, or why it skips.

Pure functions of the run's time (never of now()), so that a re-run of the same logical date makes
the same decision. A run on a day the exchange is closed skips (AirflowSkipException) with the
reason in the task log; it does not fail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from stockpipe.marketdata import calendar

log = logging.getLogger("stockpipe.orchestration.gate")


class NotASession(Exception):
    """The run has nothing to do: the reason is the message."""


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date
    sessions: int

    def as_xcom(self) -> dict[str, str | int]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "sessions": self.sessions}


def new_york_day(at: datetime) -> date:
    if at.tzinfo is None:
        raise ValueError("a run time must be timezone-aware")
    return at.astimezone(calendar.NEW_YORK).date()


def session_for(at: datetime) -> date:
    """The session a run at `at` (New York date) is for; NotASession on a closed day."""
    day = new_york_day(at)
    if not calendar.is_session(day):
        raise NotASession(f"{day.isoformat()} ({day:%A}) is not an NYSE session: the exchange is closed")
    return day


def last_closed_session(at: datetime) -> date:
    """The newest session whose close is at or before `at`."""
    day = new_york_day(at)
    s = calendar.session(day)
    return day if s is not None and s.close_utc <= at else calendar.previous_session(day)


def backfill_range(start: date | None, end: date | None, at: datetime) -> DateRange:
    """A backfill's range: by default January 1 of the end's year to the last session closed by `at`."""
    last = end or last_closed_session(at)
    first = start or date(last.year, 1, 1)
    if first > last:
        raise ValueError(f"start {first} is after end {last}")
    sessions = len(calendar.sessions_between(first, last))
    if sessions == 0:
        raise NotASession(f"no NYSE session between {first} and {last}")
    return DateRange(first, last, sessions)
