from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from typer.testing import CliRunner

from stockpipe.cli import app
from stockpipe.marketdata import calendar


@pytest.mark.parametrize(
    ("day", "is_session", "early"),
    [
        ("2025-01-09", False, False),  # national day of mourning: an ad-hoc closure
        ("2025-11-27", False, False),  # Thanksgiving
        ("2025-11-28", True, True),  # the day after: closes at 13:00
        ("2025-12-24", True, True),
        ("2025-07-03", True, True),
        ("2025-07-04", False, False),
        ("2026-11-28", False, False),  # a Saturday
        ("2026-11-25", True, False),
    ],
)
def test_sessions_and_early_closes(day: str, is_session: bool, early: bool) -> None:
    entry = calendar.calendar_entry(date.fromisoformat(day))
    assert entry["session"] is is_session
    assert entry["early_close"] is early


def test_open_and_close_in_both_time_zones_across_dst() -> None:
    winter = calendar.session(date(2025, 1, 10))
    summer = calendar.session(date(2025, 7, 10))
    assert winter
    assert summer
    assert (winter.open_utc.hour, winter.open_utc.minute) == (14, 30)
    assert (summer.open_utc.hour, summer.open_utc.minute) == (13, 30)
    assert (winter.open_ny.hour, winter.close_ny.hour) == (9, 16) == (summer.open_ny.hour, summer.close_ny.hour)
    early = calendar.session(date(2025, 11, 28))
    assert early
    assert early.close_ny.hour == 13
    assert early.minutes == 210


def test_is_open_and_next_open() -> None:
    assert calendar.is_open(datetime(2025, 11, 28, 17, 59, tzinfo=UTC))
    assert not calendar.is_open(datetime(2025, 11, 28, 18, 0, tzinfo=UTC))
    # Wednesday evening before Thanksgiving: the next open is Friday.
    assert calendar.next_open(datetime(2025, 11, 26, 22, 0, tzinfo=UTC)) == datetime(2025, 11, 28, 14, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.is_open(datetime(2025, 11, 28, 17, 0))


def test_sessions_between_and_previous_session() -> None:
    days = calendar.sessions_between(date(2025, 1, 6), date(2025, 1, 10))
    assert [d.day for d in days] == [6, 7, 8, 10]
    assert calendar.previous_session(date(2025, 1, 10)) == date(2025, 1, 8)
    assert calendar.previous_session(date(2025, 1, 13)) == date(2025, 1, 10)


def test_out_of_window_dates_are_a_clear_error() -> None:
    with pytest.raises(calendar.CalendarRangeError, match="outside the NYSE calendar window"):
        calendar.is_session(date(1990, 1, 2))


def test_calendar_cli_prints_one_json_object_per_date() -> None:
    result = CliRunner().invoke(app, ["calendar", "2025-11-28", "2025-01-09", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == [
        {
            "date": "2025-11-28",
            "session": True,
            "open_utc": "2025-11-28T14:30:00Z",
            "close_utc": "2025-11-28T18:00:00Z",
            "early_close": True,
        },
        {"date": "2025-01-09", "session": False, "open_utc": None, "close_utc": None, "early_close": False},
    ]


def test_calendar_cli_rejects_a_bad_date() -> None:
    result = CliRunner().invoke(app, ["calendar", "2025-13-01"])
    assert result.exit_code == 2
    assert "not a date" in result.output
