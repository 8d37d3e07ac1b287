"""The dbt calendar seed agrees with stockpipe.marketdata.calendar on every day it covers."""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path

from typer.testing import CliRunner

from stockpipe.marketdata import calendar
from stockpipe.warehouse.calendar_seed import SEED_COLUMNS, seed_csv
from stockpipe.warehouse.cli import load_app

SEED = Path(__file__).resolve().parents[3] / "dbt" / "seeds" / "nyse_sessions.csv"


def test_shipped_seed_matches_the_calendar_day_by_day() -> None:
    with SEED.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0].keys()) == SEED_COLUMNS
    # From the first day history accepts (the calendar's start), so no accepted bar is outside the seed.
    assert (rows[0]["date_day"], rows[-1]["date_day"]) == (calendar.CALENDAR_START.isoformat(), "2027-12-31")
    assert len(rows) == (date(2027, 12, 31) - calendar.CALENDAR_START).days + 1
    for row in rows:
        day = date.fromisoformat(row["date_day"])
        session = calendar.session(day)
        assert (row["is_session"] == "true") is (session is not None), day
        if session is None:
            assert row["is_early_close"] == "false"
            assert row["session_open_utc"] == row["session_close_utc"] == ""
        else:
            assert (row["is_early_close"] == "true") is session.early_close, day
            assert datetime.fromisoformat(row["session_open_utc"]) == session.open_utc, day
            assert datetime.fromisoformat(row["session_close_utc"]) == session.close_utc, day


def test_seed_knows_holidays_early_closes_and_ad_hoc_closures() -> None:
    with SEED.open(encoding="utf-8") as f:
        by_day = {r["date_day"]: r for r in csv.DictReader(f)}
    assert by_day["2025-01-09"]["is_session"] == "false"  # national day of mourning
    assert by_day["2025-11-27"]["is_session"] == "false"  # Thanksgiving
    assert by_day["2025-11-28"]["is_early_close"] == "true"
    assert by_day["2025-11-28"]["session_close_utc"] == "2025-11-28 18:00:00+00:00"  # 13:00 New York
    assert by_day["2025-07-07"]["session_open_utc"] == "2025-07-07 13:30:00+00:00"  # daylight saving time
    assert by_day["2001-09-11"]["is_session"] == "false"  # closed after the attacks, until 2001-09-17
    assert by_day["2001-09-17"]["is_session"] == "true"
    assert by_day["2012-10-29"]["is_session"] == "false"  # Hurricane Sandy
    assert by_day["2005-01-03"]["is_session"] == "true"


def test_the_command_regenerates_the_shipped_seed_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "nyse_sessions.csv"
    result = CliRunner().invoke(load_app, ["calendar-seed", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "10227 days" in result.output
    assert out.read_bytes() == SEED.read_bytes() == seed_csv().encode()


def test_the_command_refuses_years_the_calendar_does_not_know(tmp_path: Path) -> None:
    result = CliRunner().invoke(load_app, ["calendar-seed", "--out", str(tmp_path / "x.csv"), "--last-year", "2099"])
    assert result.exit_code == 2
    assert "is outside the NYSE calendar" in " ".join(result.output.replace("│", " ").split())
    assert not (tmp_path / "x.csv").exists()
