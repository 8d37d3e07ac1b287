"""Record-time windows of stream files: short while the NYSE session is open, long otherwise.

A file is cut when a record's window starts later than the file's (see lakewriter). Windows are
identified by their start (UTC epoch seconds), computed from the record's own event time and the
exchange calendar only, so every incarnation of the consumer cuts the same files. During a session
the window is `session_window_s` (default 30 s: a quote waits at most that long for its file, which
bounds the real-time path's freshness); outside it, `window_s`. Sessions open and close on the
half hour (UTC), so a short window never straddles the open or the close, and window starts grow
with time across both.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta

import numpy as np

from stockpipe.marketdata import calendar

SESSION_GRID_S = 1800  # opens and closes fall on the half hour


@functools.lru_cache(maxsize=4096)
def _session_bounds(day: date) -> tuple[int, int] | None:
    """(open, close) in epoch seconds of a New York date's session, or None."""
    try:
        s = calendar.session(day)
    except calendar.CalendarRangeError:
        return None  # outside the calendar's window: no session known, long windows
    return None if s is None else (int(s.open_utc.timestamp()), int(s.close_utc.timestamp()))


def _sessions(first: date, last: date) -> tuple[np.ndarray, np.ndarray]:
    """(opens, closes) in epoch seconds of the sessions between two New York dates, in order."""
    bounds = [
        b for b in (_session_bounds(first + timedelta(days=i)) for i in range((last - first).days + 1)) if b is not None
    ]
    return np.asarray([b[0] for b in bounds], dtype=np.int64), np.asarray([b[1] for b in bounds], dtype=np.int64)


def _ny_date(seconds: int) -> date:
    return datetime.fromtimestamp(seconds, UTC).astimezone(calendar.NEW_YORK).date()


def window_starts(micros: np.ndarray, window_s: int, session_window_s: int | None = None) -> np.ndarray:
    """The start (epoch seconds) of each event time's window (event times in epoch microseconds)."""
    seconds = np.asarray(micros, dtype=np.int64) // 1_000_000
    starts = seconds - seconds % window_s
    if session_window_s is None or session_window_s == window_s or len(seconds) == 0:
        return starts
    lo, hi = int(seconds.min()), int(seconds.max())
    opens, closes = _sessions(_ny_date(lo) - timedelta(days=1), _ny_date(hi))
    if len(opens) == 0:
        return starts
    idx = np.searchsorted(opens, seconds, side="right") - 1
    in_session = (idx >= 0) & (seconds < closes[np.clip(idx, 0, None)])
    return np.where(in_session, seconds - seconds % session_window_s, starts)


def window_start(at: datetime, window_s: int, session_window_s: int | None = None) -> int:
    """The start of one instant's window (a watermark's)."""
    micros = np.asarray([int(at.timestamp() * 1_000_000)], dtype=np.int64)
    return int(window_starts(micros, window_s, session_window_s)[0])


def window_date(start: int) -> date:
    """The dt= date of a file whose window starts at `start`."""
    return datetime.fromtimestamp(start, UTC).date()
