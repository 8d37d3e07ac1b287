"""History jobs with the free provider (Tiingo) against its stand-in."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from stockpipe.batch import jobs, lakeio
from stockpipe.batch.cli import history_app
from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe.settings import LakeSettings
from stockpipe_dev.localservices.tiingo_standin import TiingoStandin
from tests.integration.batch.conftest import TIINGO_TOKEN, bars_held, tiingo_settings

YTD = (date(2025, 1, 1), date(2025, 11, 28))


def local_lake(tmp_path: Path) -> LakeSettings:
    return LakeSettings(url=f"file://{tmp_path / 'lake'}")


def cli_env(tmp_path: Path, standin: TiingoStandin, symbols: str, token: str = TIINGO_TOKEN) -> dict[str, str]:
    return {
        "STOCKPIPE_LAKE__URL": f"file://{tmp_path / 'lake'}",
        "STOCKPIPE_HISTORY_PROVIDER": "tiingo",
        "STOCKPIPE_TIINGO_TOKEN": token,
        "STOCKPIPE_TIINGO_API_URL": standin.url,
        "STOCKPIPE_HISTORY_BUDGET_PER_MINUTE": "6000",
        "STOCKPIPE_HISTORY_SYMBOLS": symbols,
        "STOCKPIPE_HISTORY_RETRY_INITIAL_S": "0.01",
        "STOCKPIPE_HISTORY_RETRY_MAX_S": "0.05",
    }


def test_year_to_date_backfill_from_tiingo(tmp_path: Path, tiingo_standin: TiingoStandin) -> None:
    settings = tiingo_settings(local_lake(tmp_path), tiingo_standin, history_symbols=["AAPL", "BRK.B", "MSFT"])
    summary = jobs.backfill(settings, *YTD)
    sessions = calendar.sessions_between(*YTD)
    assert summary.ok, summary.to_dict()
    assert summary.bars_written == 3 * len(sessions)
    assert tiingo_standin.symbols_requested == {"AAPL": 1, "BRK-B": 1, "MSFT": 1}  # Tiingo's dash for the class
    assert ("AAPL", "2025-01-01", "2025-11-28") in tiingo_standin.ranges_requested
    held = bars_held(Lake(settings.lake))
    row = held[("BRK.B", date(2025, 11, 28))]
    bar = SyntheticMarket().daily_bar("BRK.B", date(2025, 11, 28))
    assert (row["open"], row["close"], row["volume"], row["source"]) == (bar.open, bar.close, bar.volume, "tiingo")
    assert ("AAPL", date(2025, 1, 9)) not in held


def test_bad_rows_are_rejected_with_reasons_and_gaps_loads_them_once_fixed(
    tmp_path: Path, tiingo_standin: TiingoStandin
) -> None:
    tiingo_standin.bad_rows = {
        ("AAPL", date(2025, 3, 4)): {"high": 1.0, "low": 2.0},
        ("AAPL", date(2025, 3, 5)): {"volume": -100},
        ("AAPL", date(2025, 3, 6)): {"close": None},
        # A row on the 2025-01-09 closure, as a provider with a stale calendar could send.
        ("AAPL", date(2025, 1, 9)): {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 5},
    }
    settings = tiingo_settings(local_lake(tmp_path), tiingo_standin, history_symbols=["AAPL", "MSFT"])
    summary = jobs.backfill(settings, date(2025, 1, 2), date(2025, 3, 31))
    assert summary.bars_rejected == 4
    assert summary.rejected_reasons == {
        "close missing or not a number": 1,
        "low above high": 1,
        "negative volume": 1,
        "not an NYSE session": 1,
    }
    assert "AAPL 2025-03-05: negative volume (volume=-100.0)" in summary.rejected_examples
    lake = Lake(settings.lake)
    held = bars_held(lake)
    for day in (date(2025, 3, 4), date(2025, 3, 5), date(2025, 3, 6), date(2025, 1, 9)):
        assert ("AAPL", day) not in held
    assert ("MSFT", date(2025, 3, 4)) in held

    tiingo_standin.bad_rows = {}  # the provider corrected its data
    requested = Counter(tiingo_standin.symbols_requested)
    fixed = jobs.gaps(settings, date(2025, 1, 2), date(2025, 3, 31))
    assert fixed.bars_written == 3
    assert Counter(tiingo_standin.symbols_requested) - requested == Counter({"AAPL": 1})
    assert tiingo_standin.ranges_requested[-1] == ("AAPL", "2025-03-04", "2025-03-06")


def test_an_unknown_ticker_fails_alone_with_tiingos_message(tmp_path: Path, tiingo_standin: TiingoStandin) -> None:
    result = CliRunner().invoke(
        history_app,
        ["backfill", "--start", "2025-11-24", "--end", "2025-11-28"],
        env=cli_env(tmp_path, tiingo_standin, "AAPL,ZZZZ"),
    )
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: 1 of 2 symbols failed (ZZZZ: Tiingo does not know ZZZZ: Error: Ticker 'ZZZZ' not found)"
    )
    assert json.loads(result.stdout)["bars_written"] == 4  # AAPL: 24, 25, 26, 28


def test_a_bad_token_is_one_line_and_never_shown(tmp_path: Path, tiingo_standin: TiingoStandin) -> None:
    bad = "wrong-tiingo-token-9876"
    result = CliRunner().invoke(
        history_app, ["daily", "--date", "2025-11-28"], env=cli_env(tmp_path, tiingo_standin, "AAPL,MSFT", bad)
    )
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: Tiingo rejected the API token (HTTP 401: Invalid token.): check STOCKPIPE_TIINGO_TOKEN"
    )
    assert bad not in result.output


def test_the_hourly_allowance_stops_the_run_and_gaps_resumes(tmp_path: Path, tiingo_standin: TiingoStandin) -> None:
    tiingo_standin.per_hour = 3
    symbols = ["AAPL", "MSFT", "NVDA", "AMZN", "IBM"]
    settings = tiingo_settings(
        local_lake(tmp_path), tiingo_standin, history_symbols=symbols, history_concurrency=1, history_retry_attempts=2
    )
    stopped = jobs.backfill(settings, date(2025, 11, 24), date(2025, 11, 28))
    assert stopped.fatal is not None
    assert "allowance is used up" in stopped.fatal
    assert tiingo_standin.http_429 == 2  # the call and its one retry
    lake = Lake(settings.lake)
    # Symbols go in sorted order (the job's objects chunk them so): the first three got in.
    assert set(lakeio.Watermarks.load(lake).marks) == {"AAPL", "AMZN", "IBM"}  # progress kept

    tiingo_standin.per_hour = 100  # the next hour
    requested = Counter(tiingo_standin.symbols_requested)
    resumed = jobs.gaps(settings, date(2025, 11, 24), date(2025, 11, 28))
    assert resumed.ok
    assert Counter(tiingo_standin.symbols_requested) - requested == Counter({"MSFT": 1, "NVDA": 1})
    assert set(lakeio.Watermarks.load(lake).marks) == set(symbols)


def test_server_errors_are_retried(tmp_path: Path, tiingo_standin: TiingoStandin) -> None:
    tiingo_standin.fail_next(2, 503)
    settings = tiingo_settings(local_lake(tmp_path), tiingo_standin, history_symbols=["AAPL"])
    summary = jobs.daily(settings, date(2025, 11, 28))
    assert summary.ok
    assert summary.bars_written == 1
    assert tiingo_standin.calls == 3
