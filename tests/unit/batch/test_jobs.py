from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from stockpipe.batch import jobs, lakeio
from stockpipe.batch.settings import HistorySettings
from stockpipe.lake.layout import daily_bar_key
from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.marketdata.history import FatalProviderError, HistoryBar, SymbolNotFound
from tests.unit.batch.conftest import RecordingProvider, snapshot

Q1 = (date(2025, 1, 1), date(2025, 3, 31))


def lake_root(settings: HistorySettings) -> Path:
    return Path(settings.lake.url.removeprefix("file://"))


def test_missing_runs_groups_consecutive_sessions() -> None:
    sessions = calendar.sessions_between(date(2025, 3, 3), date(2025, 3, 14))
    present = set(sessions) - {date(2025, 3, 3), date(2025, 3, 4), date(2025, 3, 7), date(2025, 3, 14)}
    assert jobs.missing_runs(sessions, present) == [
        (date(2025, 3, 3), date(2025, 3, 4)),
        (date(2025, 3, 7), date(2025, 3, 7)),
        (date(2025, 3, 14), date(2025, 3, 14)),
    ]
    assert jobs.missing_runs(sessions, set(sessions)) == []


def test_backfill_writes_every_session_and_a_rerun_changes_nothing(
    settings: HistorySettings, provider: RecordingProvider
) -> None:
    summary = jobs.backfill(settings, *Q1, provider=provider)
    sessions = calendar.sessions_between(*Q1)
    assert summary.ok
    assert summary.bars_written == 3 * len(sessions)
    assert len(provider.calls) == 3
    root = lake_root(settings)
    before = snapshot(root)
    assert f"{daily_bar_key(date(2025, 1, 9), 'AAPL')}" not in before  # the national day of mourning
    assert daily_bar_key(date(2025, 1, 10), "BRK.B") in before

    again = jobs.backfill(settings, *Q1, provider=provider)
    assert again.calls == 0  # complete in the lake: nothing to fetch
    assert again.symbols_up_to_date == 3

    refetched = jobs.backfill(settings, *Q1, refetch=True, provider=provider)
    assert refetched.calls == 3
    assert (refetched.bars_written, refetched.bars_unchanged) == (0, 3 * len(sessions))
    assert snapshot(root) == before  # same names, same bytes, not even rewritten


def test_gaps_fetch_only_the_missing_sessions(settings: HistorySettings, provider: RecordingProvider) -> None:
    jobs.backfill(settings, *Q1, provider=provider)
    root = lake_root(settings)
    before = snapshot(root)
    lake = Lake(settings.lake)
    for day, symbol in [(date(2025, 3, 3), "MSFT"), (date(2025, 3, 4), "MSFT"), (date(2025, 2, 14), "AAPL")]:
        lake.delete(daily_bar_key(day, symbol))
    provider.calls.clear()

    summary = jobs.gaps(settings, *Q1, provider=provider)
    assert sorted(provider.calls) == [
        ("AAPL", date(2025, 2, 14), date(2025, 2, 14)),
        ("MSFT", date(2025, 3, 3), date(2025, 3, 4)),
    ]
    assert (summary.bars_written, summary.symbols_up_to_date) == (3, 1)
    after = snapshot(root)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}


def test_daily_catches_up_from_the_watermark_and_a_rerun_fetches_nothing(
    settings: HistorySettings, provider: RecordingProvider
) -> None:
    jobs.backfill(settings, date(2025, 11, 1), date(2025, 11, 25), provider=provider)
    provider.calls.clear()

    summary = jobs.daily(settings, date(2025, 12, 1), provider=provider)
    # One call per symbol from the session after its watermark; Thanksgiving (27th) has no bar.
    assert provider.calls == [(s, date(2025, 11, 26), date(2025, 12, 1)) for s in ("AAPL", "MSFT", "BRK.B")]
    assert summary.bars_written == 3 * 3
    lake = Lake(settings.lake)
    assert lake.exists(daily_bar_key(date(2025, 11, 28), "MSFT"))  # the early close has its bar
    assert not lake.exists(daily_bar_key(date(2025, 11, 27), "MSFT"))
    assert lakeio.Watermarks.load(lake).marks == dict.fromkeys(("AAPL", "MSFT", "BRK.B"), date(2025, 12, 1))

    provider.calls.clear()
    again = jobs.daily(settings, date(2025, 12, 1), provider=provider)
    assert provider.calls == []
    assert again.symbols_up_to_date == 3


def test_daily_without_a_watermark_loads_just_its_day(settings: HistorySettings, provider: RecordingProvider) -> None:
    summary = jobs.daily(settings, date(2025, 11, 28), provider=provider)
    assert provider.calls == [(s, date(2025, 11, 28), date(2025, 11, 28)) for s in ("AAPL", "MSFT", "BRK.B")]
    assert summary.bars_written == 3


def test_daily_on_a_closed_day_is_a_clean_skip(settings: HistorySettings, provider: RecordingProvider) -> None:
    summary = jobs.daily(settings, date(2025, 1, 9), provider=provider)
    assert summary.skipped is not None
    assert "not an NYSE session" in summary.skipped
    assert summary.ok
    assert provider.calls == []


def test_daily_refuses_a_session_still_trading(settings: HistorySettings, provider: RecordingProvider) -> None:
    during = datetime(2025, 11, 28, 17, 0, tzinfo=UTC)  # before the 13:00 New York early close
    with pytest.raises(jobs.HistoryJobError, match=r"has not closed yet \(2025-11-28 18:00 UTC\)"):
        jobs.daily(settings, date(2025, 11, 28), provider=provider, now=during)


def test_bad_bars_are_rejected_counted_and_not_written(settings: HistorySettings, provider: RecordingProvider) -> None:
    def spoil(symbol: str, bars: list[HistoryBar]) -> list[HistoryBar]:
        if symbol != "MSFT":
            return bars
        bars[0] = replace(bars[0], low=bars[0].high + 1)
        bars[1] = replace(bars[1], volume=-5.0)
        return [*bars, replace(bars[2], day=date(2025, 1, 9))]

    provider.tamper = spoil
    summary = jobs.backfill(settings, date(2025, 1, 2), date(2025, 1, 31), provider=provider)
    assert summary.bars_rejected == 3
    assert summary.rejected_reasons == {"low above high": 1, "negative volume": 1, "not an NYSE session": 1}
    assert any("MSFT 2025-01-09: not an NYSE session" in e for e in summary.rejected_examples)
    lake = Lake(settings.lake)
    assert not lake.exists(daily_bar_key(date(2025, 1, 2), "MSFT"))
    assert lake.exists(daily_bar_key(date(2025, 1, 2), "AAPL"))
    assert summary.ok  # rejected bars are data problems, reported; gaps retries those sessions later


def test_one_failing_symbol_does_not_stop_the_others(settings: HistorySettings, provider: RecordingProvider) -> None:
    def unknown(symbol: str, bars: list[HistoryBar]) -> list[HistoryBar]:
        if symbol == "BRK.B":
            raise SymbolNotFound("no such ticker")
        return bars

    provider.tamper = unknown
    summary = jobs.backfill(settings, date(2025, 1, 2), date(2025, 1, 10), provider=provider)
    assert summary.symbols_failed == {"BRK.B": "no such ticker"}
    assert summary.symbols_loaded == 2
    assert not summary.ok
    assert set(lakeio.Watermarks.load(Lake(settings.lake)).marks) == {"AAPL", "MSFT"}


def test_a_fatal_provider_error_stops_the_job(settings: HistorySettings, provider: RecordingProvider) -> None:
    def refuse(symbol: str, bars: list[HistoryBar]) -> list[HistoryBar]:
        raise FatalProviderError("plan without access")

    provider.tamper = refuse
    settings = settings.model_copy(update={"history_concurrency": 1})
    summary = jobs.backfill(settings, date(2025, 1, 2), date(2025, 1, 10), provider=provider)
    assert summary.fatal == "plan without access"
    assert len(provider.calls) == 1  # the other symbols were not tried
