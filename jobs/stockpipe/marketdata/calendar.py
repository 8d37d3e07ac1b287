"""The NYSE trading calendar (exchange_calendars' XNYS): sessions, open/close times, early closes."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

NEW_YORK = ZoneInfo("America/New_York")
# History accepts bars from here on; the dbt calendar seed (stockpipe.warehouse.calendar_seed) starts here too.
CALENDAR_START = date(2000, 1, 1)
_CALENDAR_START = CALENDAR_START
# exchange_calendars only knows about a year ahead; ad-hoc closures arrive with library releases.
_CALENDAR_YEARS_AHEAD = 1


class CalendarRangeError(ValueError):
    """The date is outside the window the calendar knows."""


@dataclass(frozen=True)
class Session:
    day: date
    open_utc: datetime
    close_utc: datetime
    early_close: bool

    @property
    def open_ny(self) -> datetime:
        return self.open_utc.astimezone(NEW_YORK)

    @property
    def close_ny(self) -> datetime:
        return self.close_utc.astimezone(NEW_YORK)

    @property
    def minutes(self) -> int:
        return int((self.close_utc - self.open_utc).total_seconds() // 60)


@functools.lru_cache(maxsize=1)
def _xnys() -> xcals.ExchangeCalendar:
    end = date(datetime.now(UTC).year + _CALENDAR_YEARS_AHEAD, 12, 31)
    return xcals.get_calendar("XNYS", start=_CALENDAR_START.isoformat(), end=end.isoformat())


def _check(day: date) -> pd.Timestamp:
    cal = _xnys()
    ts = pd.Timestamp(day)
    if ts < cal.first_session or ts > cal.last_session:
        raise CalendarRangeError(
            f"{day} is outside the NYSE calendar window {cal.first_session.date()}..{cal.last_session.date()}"
        )
    return ts


def _utc(ts: pd.Timestamp) -> datetime:
    result: datetime = ts.to_pydatetime().astimezone(UTC)
    return result


@functools.lru_cache(maxsize=1)
def _early_close_days() -> frozenset[date]:
    return frozenset(ts.date() for ts in _xnys().early_closes)


def is_session(day: date) -> bool:
    cal = _xnys()
    if CALENDAR_START <= day < cal.first_session.date():
        return False  # the window's first days before its first session (2000-01-01 and -02)
    return bool(cal.is_session(_check(day)))


def session(day: date) -> Session | None:
    """The session on `day`, or None when the exchange is closed that day."""
    if not is_session(day):
        return None
    cal = _xnys()
    ts = pd.Timestamp(day)
    return Session(
        day=day,
        open_utc=_utc(cal.session_open(ts)),
        close_utc=_utc(cal.session_close(ts)),
        early_close=day in _early_close_days(),
    )


def sessions_between(start: date, end: date) -> list[date]:
    """Session days from start to end, both included."""
    if end < start:
        return []
    return [ts.date() for ts in _xnys().sessions_in_range(_check(start), _check(end))]


def is_open(at: datetime) -> bool:
    """Whether the regular session is open at instant `at` (timezone-aware)."""
    if at.tzinfo is None:
        raise ValueError("is_open needs a timezone-aware datetime")
    s = session(at.astimezone(NEW_YORK).date())
    return s is not None and s.open_utc <= at < s.close_utc


def next_open(after: datetime) -> datetime:
    """The next session open strictly after `after` (or the current session's open if not yet open)."""
    day = after.astimezone(NEW_YORK).date()
    for offset in range(0, 15):
        s = session(day + timedelta(days=offset))
        if s is not None and s.open_utc > after:
            return s.open_utc
    raise CalendarRangeError(f"no NYSE session within 15 days after {after.isoformat()}")


def previous_session(day: date) -> date:
    """The last session strictly before `day`."""
    result: date = _xnys().date_to_session(_check(day - timedelta(days=1)), direction="previous").date()
    return result


def calendar_entry(day: date) -> dict[str, object]:
    """One date as the `stockpipe calendar --json` contract prints it."""
    s = session(day)
    return {
        "date": day.isoformat(),
        "session": s is not None,
        "open_utc": s.open_utc.isoformat().replace("+00:00", "Z") if s else None,
        "close_utc": s.close_utc.isoformat().replace("+00:00", "Z") if s else None,
        "early_close": bool(s and s.early_close),
    }
