from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stockpipe.batch.cli import history_app
from stockpipe.batch.settings import HistorySettings, build_provider
from stockpipe.contracts.watchlist import Watchlist
from stockpipe.logs import redact
from stockpipe.marketdata.history import FinnhubCandles, SyntheticHistory, TiingoDaily
from stockpipe.settings import ConfigError, load_settings


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    lake = tmp_path / "lake"
    monkeypatch.setenv("STOCKPIPE_LAKE__URL", f"file://{lake}")
    monkeypatch.setenv("STOCKPIPE_HISTORY_SYMBOLS", "AAPL,MSFT")
    return lake


def test_daily_on_a_closed_day_exits_0_and_says_why(env: Path) -> None:
    result = CliRunner().invoke(history_app, ["daily", "--date", "2025-01-09"])
    assert result.exit_code == 0
    assert "2025-01-09 (Thursday) is not an NYSE session" in result.stderr
    assert json.loads(result.stdout)["skipped"]
    assert not (env / "raw").exists()


def test_backfill_defaults_to_year_to_date_and_prints_a_json_summary(env: Path) -> None:
    result = CliRunner().invoke(history_app, ["backfill", "--end", "2025-01-10"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["start"], summary["end"]) == ("2025-01-01", "2025-01-10")
    assert summary["bars_written"] == 2 * 6  # Jan 2, 3, 6, 7, 8, 10: the 1st and 9th were closed
    assert sorted(p.name for p in (env / "raw" / "daily_bars").iterdir())[-1] == "dt=2025-01-10"


def test_gaps_on_a_complete_lake_fetches_nothing(env: Path) -> None:
    CliRunner().invoke(history_app, ["backfill", "--start", "2025-01-02", "--end", "2025-01-10"])
    result = CliRunner().invoke(history_app, ["gaps", "--start", "2025-01-02", "--end", "2025-01-10"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["calls"] == 0


def test_missing_token_is_a_one_line_settings_error(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_HISTORY_PROVIDER", "finnhub")
    result = CliRunner().invoke(history_app, ["daily", "--date", "2025-11-28"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "STOCKPIPE_FINNHUB_TOKEN" in lines[0]


def test_bad_dates_are_usage_errors(env: Path) -> None:
    assert CliRunner().invoke(history_app, ["daily", "--date", "28/11/2025"]).exit_code == 2
    result = CliRunner().invoke(history_app, ["backfill", "--start", "2025-03-01", "--end", "2025-01-31"])
    assert result.exit_code == 1
    assert "range is empty" in result.stderr


def test_symbols_from_a_list_json_or_the_watchlist_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_HISTORY_SYMBOLS", " aapl, BRK.B ")
    assert load_settings(HistorySettings).symbols() == ["AAPL", "BRK.B"]
    monkeypatch.setenv("STOCKPIPE_HISTORY_SYMBOLS", '["MSFT", "IBM"]')
    assert load_settings(HistorySettings).symbols() == ["MSFT", "IBM"]
    monkeypatch.delenv("STOCKPIPE_HISTORY_SYMBOLS")
    watchlist = tmp_path / "watchlist.json"
    watchlist.write_text(Watchlist(symbols=["NVDA", "AMD"], enabled=False).to_json())
    monkeypatch.setenv("STOCKPIPE_WATCHLIST_FILE", str(watchlist))
    assert load_settings(HistorySettings).symbols() == ["NVDA", "AMD"]


def test_no_or_bad_symbols_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="no symbols"):
        load_settings(HistorySettings).symbols()
    monkeypatch.setenv("STOCKPIPE_HISTORY_SYMBOLS", "AAPL,not a ticker")
    with pytest.raises(ConfigError, match="history_symbols"):
        load_settings(HistorySettings)


def test_each_provider_gets_its_own_budget_and_tokens_are_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(build_provider(load_settings(HistorySettings)), SyntheticHistory)
    monkeypatch.setenv("STOCKPIPE_HISTORY_PROVIDER", "finnhub")
    monkeypatch.setenv("STOCKPIPE_FINNHUB_TOKEN", "finnhub-secret-123")
    finnhub = build_provider(load_settings(HistorySettings))
    assert isinstance(finnhub, FinnhubCandles)
    assert finnhub.budget.per_minute == 60
    assert "finnhub-secret-123" not in redact("calling with finnhub-secret-123")
    monkeypatch.setenv("STOCKPIPE_HISTORY_PROVIDER", "tiingo")
    monkeypatch.setenv("STOCKPIPE_TIINGO_TOKEN", "tiingo-secret-456")
    monkeypatch.setenv("STOCKPIPE_HISTORY_BUDGET_PER_MINUTE", "7")
    tiingo = build_provider(load_settings(HistorySettings))
    assert isinstance(tiingo, TiingoDaily)
    assert tiingo.budget.per_minute == 7
    assert tiingo.budget is not finnhub.budget
