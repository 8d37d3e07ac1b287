"""Session windows: 30 s while the NYSE session is open, the long window outside it, from event time alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from stockpipe.settings import ConfigError, load_settings
from stockpipe.stream.consumer import ConsumerSettings
from stockpipe.stream.windows import window_date, window_start, window_starts

OPEN = datetime(2025, 12, 2, 14, 30, tzinfo=UTC)  # 09:30 New York
CLOSE = datetime(2025, 12, 2, 21, 0, tzinfo=UTC)


def micros(*ats: datetime) -> np.ndarray:
    return np.asarray([int(a.timestamp() * 1_000_000) for a in ats], dtype=np.int64)


def test_short_windows_only_while_the_session_is_open() -> None:
    at = [
        OPEN - timedelta(seconds=1),  # pre-market: the 900 s window 14:15
        OPEN,
        OPEN + timedelta(seconds=29.9),
        OPEN + timedelta(seconds=30),
        CLOSE - timedelta(seconds=1),
        CLOSE,  # after the close: 900 s windows again
        CLOSE + timedelta(minutes=14),
    ]
    starts = window_starts(micros(*at), 900, 30)
    expected = [
        OPEN - timedelta(minutes=15),
        OPEN,
        OPEN,
        OPEN + timedelta(seconds=30),
        CLOSE - timedelta(seconds=30),
        CLOSE,
        CLOSE,
    ]
    assert starts.tolist() == [int(e.timestamp()) for e in expected]
    assert np.all(np.diff(starts) >= 0)  # windows never go back in time
    assert window_date(int(starts[0])) == OPEN.date()


def test_early_close_weekends_and_no_session_window() -> None:
    early_close = datetime(2025, 11, 28, 18, 0, tzinfo=UTC)  # the day after Thanksgiving closes at 13:00
    assert window_start(early_close - timedelta(seconds=5), 900, 30) == int(early_close.timestamp()) - 30
    assert window_start(early_close + timedelta(seconds=5), 900, 30) == int(early_close.timestamp())
    saturday = datetime(2025, 11, 29, 15, 0, 10, tzinfo=UTC)
    assert window_start(saturday, 900, 30) == int(saturday.timestamp()) - 10
    assert window_start(OPEN + timedelta(seconds=45), 900, None) == int(OPEN.timestamp())


@pytest.mark.usefixtures("no_outside_settings")
def test_session_window_must_divide_the_half_hour() -> None:
    assert load_settings(ConsumerSettings).session_window_seconds == 30
    assert load_settings(ConsumerSettings, session_window_seconds=None).session_window_seconds is None
    with pytest.raises(ConfigError, match="session_window_seconds"):
        load_settings(ConsumerSettings, session_window_seconds=7)
