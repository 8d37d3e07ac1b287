"""History jobs with the real finnhub-python client against the Finnhub stand-in, into the local MinIO."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from stockpipe.batch import jobs, lakeio
from stockpipe.batch.cli import history_app
from stockpipe.batch.settings import HistorySettings
from stockpipe.lake.layout import DAILY_BARS, BatchObject
from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe.settings import LakeSettings
from stockpipe_dev.localservices.finnhub_standin import FinnhubStandin
from tests.conftest import FREE_TOKEN, PREMIUM_TOKEN
from tests.integration.batch.conftest import (
    FAST_PER_MINUTE,
    SYMBOLS20,
    bars_held,
    drop_bars,
    finnhub_settings,
    lake_env,
    lake_state,
)

# Year to date as of the early close after Thanksgiving 2025.
YTD = (date(2025, 1, 1), date(2025, 11, 28))


def candle_calls(standin: FinnhubStandin) -> int:
    return standin.calls_by_path.get("/api/v1/stock/candle", 0)


def cli_env(lake: LakeSettings, standin: FinnhubStandin, token: str = PREMIUM_TOKEN) -> dict[str, str]:
    return {
        **lake_env(lake),
        "STOCKPIPE_HISTORY_PROVIDER": "finnhub",
        "STOCKPIPE_FINNHUB_TOKEN": token,
        "STOCKPIPE_FINNHUB_API_URL": standin.api_url,
        "STOCKPIPE_HISTORY_BUDGET_PER_MINUTE": str(FAST_PER_MINUTE),
        "STOCKPIPE_HISTORY_SYMBOLS": ",".join(SYMBOLS20),
    }


@pytest.fixture(scope="module")
def backfilled(module_lake: LakeSettings, module_finnhub: FinnhubStandin) -> tuple[HistorySettings, jobs.JobSummary]:
    """One year-to-date backfill of 20 symbols, shared by this module's tests (each leaves the lake as it was)."""
    settings = finnhub_settings(module_lake, module_finnhub)
    return settings, jobs.backfill(settings, *YTD)


def test_year_to_date_backfill_of_20_symbols(backfilled: tuple[HistorySettings, jobs.JobSummary]) -> None:
    settings, summary = backfilled
    sessions = calendar.sessions_between(*YTD)
    assert summary.ok, summary.to_dict()
    assert summary.calls == 20
    assert summary.bars_written == 20 * len(sessions)
    assert summary.objects_written == 1  # 20 symbols x 230 sessions: one object
    lake = Lake(settings.lake)
    expected = {BatchObject(DAILY_BARS, "backfill", *YTD, 0).key, lakeio.WATERMARKS_KEY}
    assert set(lake_state(lake)) == expected
    assert date(2025, 1, 9) not in sessions  # closed: national day of mourning
    assert date(2025, 11, 27) not in sessions  # Thanksgiving
    held = bars_held(lake)
    assert set(held) == {(s, d) for d in sessions for s in SYMBOLS20}

    row = held[("BRK.B", date(2025, 11, 28))]
    bar = SyntheticMarket().daily_bar("BRK.B", date(2025, 11, 28))  # what the stand-in serves
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == (
        bar.open, bar.high, bar.low, bar.close, bar.volume,
    )  # fmt: skip
    assert row["source"] == "finnhub"
    assert row["fetched_at"] == datetime(2025, 11, 28, 18, 0, tzinfo=UTC)  # the 13:00 early close
    assert lakeio.Watermarks.load(lake).marks == dict.fromkeys(SYMBOLS20, date(2025, 11, 28))


def test_a_rerun_leaves_the_lake_unchanged(
    backfilled: tuple[HistorySettings, jobs.JobSummary], module_finnhub: FinnhubStandin
) -> None:
    settings, _ = backfilled
    lake = Lake(settings.lake)
    before, calls = lake_state(lake), candle_calls(module_finnhub)

    again = jobs.backfill(settings, *YTD)
    assert again.calls == 0  # every session already in the lake
    assert candle_calls(module_finnhub) == calls

    # Forced re-fetch through the command line, as a pod runs it: same answers, so nothing is written.
    result = CliRunner().invoke(
        history_app,
        ["backfill", "--start", "2025-01-01", "--end", "2025-11-28", "--refetch"],
        env=cli_env(settings.lake, module_finnhub),
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["calls"], summary["bars_written"]) == (20, 0)
    assert candle_calls(module_finnhub) == calls + 20
    assert lake_state(lake) == before  # same names, sizes and ETags (the MD5 of the bytes)


def test_gaps_finds_the_holes_and_fetches_nothing_else(
    backfilled: tuple[HistorySettings, jobs.JobSummary], module_finnhub: FinnhubStandin
) -> None:
    settings, _ = backfilled
    lake = Lake(settings.lake)
    before = bars_held(lake)
    holes = {("MSFT", date(2025, 3, 3)), ("MSFT", date(2025, 3, 4)), ("BRK.B", date(2025, 11, 28))}
    drop_bars(lake, holes)
    requested, calls = Counter(module_finnhub.symbols_requested), candle_calls(module_finnhub)

    summary = jobs.gaps(settings, *YTD)
    assert summary.ok
    assert (summary.bars_written, summary.objects_written) == (3, 1)
    assert Counter(module_finnhub.symbols_requested) - requested == Counter({"MSFT": 1, "BRK.B": 1})
    assert candle_calls(module_finnhub) == calls + 2  # one call per run of missing sessions
    gaps_key = BatchObject(DAILY_BARS, "gaps", *YTD, 0).key
    filled = lakeio.decode(lake.read(gaps_key))
    assert set(zip(filled["symbol"].to_pylist(), filled["date"].to_pylist(), strict=True)) == holes
    assert bars_held(lake) == before

    assert jobs.gaps(settings, *YTD).calls == 0


def test_daily_over_thanksgiving_week(s3_lake: LakeSettings, finnhub_standin: FinnhubStandin) -> None:
    finnhub_standin.per_minute = FAST_PER_MINUTE
    env = cli_env(s3_lake, finnhub_standin)
    runner = CliRunner()
    lake = Lake(s3_lake)

    first = runner.invoke(history_app, ["daily", "--date", "2025-11-26"], env=env)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["bars_written"] == 20

    holiday = runner.invoke(history_app, ["daily", "--date", "2025-11-27"], env=env)
    assert holiday.exit_code == 0
    assert "2025-11-27 (Thursday) is not an NYSE session" in holiday.stderr
    assert candle_calls(finnhub_standin) == 20

    early = runner.invoke(history_app, ["daily", "--date", "2025-11-28"], env=env)
    assert early.exit_code == 0, early.output
    assert json.loads(early.stdout)["bars_written"] == 20
    keys = set(lake_state(lake))
    assert BatchObject(DAILY_BARS, "daily", date(2025, 11, 28), date(2025, 11, 28), 0).key in keys
    assert {(s, date(2025, 11, 28)) for s in SYMBOLS20} <= set(bars_held(lake))
    assert not any("dt=2025-11-27" in k for k in keys)
    assert lakeio.Watermarks.load(lake).marks == dict.fromkeys(SYMBOLS20, date(2025, 11, 28))

    rerun = runner.invoke(history_app, ["daily", "--date", "2025-11-28"], env=env)
    assert json.loads(rerun.stdout)["calls"] == 0  # incremental: the watermark says it is loaded


def _non_log_lines(stderr: str) -> list[str]:
    lines = []
    for line in stderr.splitlines():
        try:
            json.loads(line)
        except ValueError:
            lines.append(line)
    return lines


def test_a_free_key_gets_one_clear_line_about_the_premium_plan(
    s3_lake: LakeSettings, finnhub_standin: FinnhubStandin
) -> None:
    finnhub_standin.per_minute = FAST_PER_MINUTE
    result = CliRunner().invoke(
        history_app, ["daily", "--date", "2025-11-28"], env=cli_env(s3_lake, finnhub_standin, FREE_TOKEN)
    )
    assert result.exit_code == 1
    lines = _non_log_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "premium Finnhub plan" in lines[0]
    assert "STOCKPIPE_HISTORY_PROVIDER=tiingo" in lines[0]
    assert "Traceback" not in result.output
    assert FREE_TOKEN not in result.output
    # Stopped at the first answers (at most the calls already in flight), not tried for all 20 symbols.
    assert candle_calls(finnhub_standin) <= HistorySettings.model_fields["history_concurrency"].default < 20


def test_a_rejected_key_is_named_without_showing_it(s3_lake: LakeSettings, finnhub_standin: FinnhubStandin) -> None:
    bad_key = "not-a-real-finnhub-key-1234"
    result = CliRunner().invoke(
        history_app, ["daily", "--date", "2025-11-28"], env=cli_env(s3_lake, finnhub_standin, bad_key)
    )
    assert result.exit_code == 1
    assert _non_log_lines(result.stderr) == [
        "error: Finnhub rejected the API key (HTTP 401: Invalid API key.): check STOCKPIPE_FINNHUB_TOKEN"
    ]
    assert bad_key not in result.output


def test_server_errors_are_retried(s3_lake: LakeSettings, finnhub_standin: FinnhubStandin) -> None:
    finnhub_standin.per_minute = FAST_PER_MINUTE
    finnhub_standin.fail_next(3, 502)
    settings = finnhub_settings(s3_lake, finnhub_standin, history_symbols=SYMBOLS20[:5])
    summary = jobs.daily(settings, date(2025, 11, 28))
    assert summary.ok, summary.to_dict()
    assert summary.bars_written == 5
    assert candle_calls(finnhub_standin) == 5 + 3
    stats: dict[str, Any] = finnhub_standin.stats()
    assert stats["http_429"] == {}
