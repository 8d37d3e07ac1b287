"""Calendar gating: the session a run is for, or the reason it skips; never from the wall clock."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from stockpipe.orchestration import gating


@pytest.mark.parametrize(
    ("at", "session"),
    [
        (datetime(2025, 12, 1, 23, 30, tzinfo=UTC), date(2025, 12, 1)),  # Monday 18:30 New York
        (datetime(2025, 11, 28, 23, 30, tzinfo=UTC), date(2025, 11, 28)),  # early close: still a session
        (datetime(2025, 12, 2, 3, 0, tzinfo=UTC), date(2025, 12, 1)),  # 22:00 the evening before in New York
    ],
)
def test_the_session_is_the_new_york_date_of_the_run(at: datetime, session: date) -> None:
    assert gating.session_for(at) == session


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        (datetime(2025, 12, 6, 23, 30, tzinfo=UTC), "2025-12-06 (Saturday) is not an NYSE session"),
        (datetime(2025, 12, 25, 23, 30, tzinfo=UTC), "2025-12-25 (Thursday) is not an NYSE session"),
        (datetime(2025, 1, 9, 23, 30, tzinfo=UTC), "2025-01-09 (Thursday) is not an NYSE session"),  # ad-hoc closure
    ],
)
def test_a_closed_day_is_not_a_session_and_says_why(at: datetime, reason: str) -> None:
    with pytest.raises(gating.NotASession, match=re.escape(reason)):
        gating.session_for(at)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        gating.session_for(datetime(2025, 12, 1, 12, 0))


def test_backfill_defaults_to_year_to_date_up_to_the_last_closed_session() -> None:
    during_session = datetime(2025, 12, 2, 15, 0, tzinfo=UTC)  # 10:00 New York: Dec 2 has not closed
    span = gating.backfill_range(None, None, during_session)
    assert (span.start, span.end) == (date(2025, 1, 1), date(2025, 12, 1))
    assert span.sessions > 200
    assert span.as_xcom() == {"start": "2025-01-01", "end": "2025-12-01", "sessions": span.sessions}


def test_backfill_range_without_a_session_skips_and_a_reversed_one_fails() -> None:
    at = datetime(2025, 12, 10, tzinfo=UTC)
    with pytest.raises(gating.NotASession, match="no NYSE session between 2025-12-06 and 2025-12-07"):
        gating.backfill_range(date(2025, 12, 6), date(2025, 12, 7), at)
    with pytest.raises(ValueError, match="after end"):
        gating.backfill_range(date(2025, 12, 5), date(2025, 12, 1), at)
    assert gating.backfill_range(date(2025, 12, 1), date(2025, 12, 5), at).sessions == 5
