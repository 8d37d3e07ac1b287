from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from stockpipe.batch import jobs, lakeio
from stockpipe.batch.settings import HistorySettings
from stockpipe.lake.layout import DAILY_BARS, BatchObject
from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.marketdata.history import FatalProviderError, HistoryBar, SymbolNotFound
from tests.unit.batch.conftest import RecordingProvider, snapshot

Q1 = (date(2025, 1, 1), date(2025, 3, 31))


def lake_root(settings: HistorySettings) -> Path:
    return Path(settings.lake.url.removeprefix("file://"))


def bars_in_lake(settings: HistorySettings) -> dict[str, set[tuple[str, date]]]:
    """(symbol, session) of every bar in each daily-bar object, by key."""
    lake = Lake(settings.lake)
    held = {}
    for info in lake.walk("raw/daily_bars"):
        table = lakeio.decode(lake.read(info.key))
        held[info.key] = set(zip(table["symbol"].to_pylist(), table["date"].to_pylist(), strict=True))
    return held


def job_key(kind: str, start: date, end: date, chunk: int = 0) -> str:
    return BatchObject(DAILY_BARS, kind, start, end, chunk).key


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
    assert summary.objects_written == 1  # one object for the job, not one per symbol and day
    assert len(provider.calls) == 3
    root = lake_root(settings)
    before = snapshot(root)
    held = bars_in_lake(settings)
    assert list(held) == [job_key("backfill", *Q1)]
    bars = held[job_key("backfill", *Q1)]
    assert len(bars) == 3 * len(sessions)
    assert ("AAPL", date(2025, 1, 9)) not in bars  # the national day of mourning
    assert ("BRK.B", date(2025, 1, 10)) in bars
    table = lakeio.decode(Lake(settings.lake).read(job_key("backfill", *Q1)))
    keys = list(zip(table["symbol"].to_pylist(), table["date"].to_pylist(), strict=True))
    assert keys == sorted(keys)  # a fixed row order: the same bars give the same bytes

    again = jobs.backfill(settings, *Q1, provider=provider)
    assert again.calls == 0  # complete in the lake: nothing to fetch
    assert again.symbols_up_to_date == 3

    refetched = jobs.backfill(settings, *Q1, refetch=True, provider=provider)
    assert refetched.calls == 3
    assert (refetched.bars_written, refetched.bars_unchanged) == (0, 3 * len(sessions))
    assert snapshot(root) == before  # same names, same bytes, not even rewritten


MISSING = [("MSFT", date(2025, 3, 3)), ("MSFT", date(2025, 3, 4)), ("AAPL", date(2025, 2, 14))]


def spoil_missing(symbol: str, bars: list[HistoryBar]) -> list[HistoryBar]:
    """Bars of the MISSING sessions come back broken (rejected, so never written)."""
    return [replace(b, low=b.high + 1) if (symbol, b.day) in MISSING else b for b in bars]


def test_gaps_fetch_only_the_missing_sessions(settings: HistorySettings, provider: RecordingProvider) -> None:
    provider.tamper = spoil_missing
    first = jobs.backfill(settings, *Q1, provider=provider)
    assert first.bars_rejected == 3
    root = lake_root(settings)
    before = snapshot(root)
    provider.tamper = None
    provider.calls.clear()

    summary = jobs.gaps(settings, *Q1, provider=provider)
    assert sorted(provider.calls) == [
        ("AAPL", date(2025, 2, 14), date(2025, 2, 14)),
        ("MSFT", date(2025, 3, 3), date(2025, 3, 4)),
    ]
    assert (summary.bars_written, summary.objects_written, summary.symbols_up_to_date) == (3, 1, 1)
    after = snapshot(root)
    assert {k: v for k, v in after.items() if k in before} == before  # the backfill's object untouched
    assert bars_in_lake(settings)[job_key("gaps", *Q1)] == set(MISSING)

    provider.calls.clear()
    again = jobs.gaps(settings, *Q1, provider=provider)
    assert (provider.calls, again.objects_written) == ([], 0)  # nothing missing any more
    assert snapshot(root) == after


def test_a_retry_of_fewer_symbols_keeps_the_others_rows(settings: HistorySettings, provider: RecordingProvider) -> None:
    def msft_fails(symbol: str, bars: list[HistoryBar]) -> list[HistoryBar]:
        if symbol == "MSFT":
            raise SymbolNotFound("not today")
        return bars

    provider.tamper = msft_fails
    jobs.backfill(settings, *Q1, provider=provider)
    provider.tamper = None
    provider.calls.clear()
    retry = jobs.backfill(settings, *Q1, provider=provider)
    assert [c[0] for c in provider.calls] == ["MSFT"]
    assert retry.objects_written == 1
    sessions = calendar.sessions_between(*Q1)
    # The same object, now with all three symbols: the retry merged into it.
    assert {s for s, _ in bars_in_lake(settings)[job_key("backfill", *Q1)]} == {"AAPL", "MSFT", "BRK.B"}
    assert len(bars_in_lake(settings)[job_key("backfill", *Q1)]) == 3 * len(sessions)


def test_symbols_are_chunked_into_objects_by_the_job(settings: HistorySettings, provider: RecordingProvider) -> None:
    sessions = calendar.sessions_between(*Q1)
    settings = settings.model_copy(update={"history_rows_per_object": 2 * len(sessions)})
    summary = jobs.backfill(settings, *Q1, provider=provider)
    assert summary.objects_written == 2
    held = bars_in_lake(settings)
    # Symbols in sorted order, two per object: AAPL and BRK.B, then MSFT.
    assert {k: sorted({s for s, _ in v}) for k, v in held.items()} == {
        job_key("backfill", *Q1, 0): ["AAPL", "BRK.B"],
        job_key("backfill", *Q1, 1): ["MSFT"],
    }


def test_daily_catches_up_from_the_watermark_and_a_rerun_fetches_nothing(
    settings: HistorySettings, provider: RecordingProvider
) -> None:
    jobs.backfill(settings, date(2025, 11, 1), date(2025, 11, 25), provider=provider)
    provider.calls.clear()

    summary = jobs.daily(settings, date(2025, 12, 1), provider=provider)
    # One call per symbol from the session after its watermark; Thanksgiving (27th) has no bar.
    assert sorted(provider.calls) == [(s, date(2025, 11, 26), date(2025, 12, 1)) for s in ("AAPL", "BRK.B", "MSFT")]
    assert (summary.bars_written, summary.objects_written) == (3 * 3, 1)
    lake = Lake(settings.lake)
    bars = bars_in_lake(settings)[job_key("daily", date(2025, 12, 1), date(2025, 12, 1))]
    assert ("MSFT", date(2025, 11, 28)) in bars  # the early close has its bar
    assert ("MSFT", date(2025, 11, 27)) not in bars
    assert lakeio.Watermarks.load(lake).marks == dict.fromkeys(("AAPL", "MSFT", "BRK.B"), date(2025, 12, 1))

    provider.calls.clear()
    again = jobs.daily(settings, date(2025, 12, 1), provider=provider)
    assert provider.calls == []
    assert again.symbols_up_to_date == 3


def test_daily_without_a_watermark_loads_just_its_day(settings: HistorySettings, provider: RecordingProvider) -> None:
    summary = jobs.daily(settings, date(2025, 11, 28), provider=provider)
    assert sorted(provider.calls) == [(s, date(2025, 11, 28), date(2025, 11, 28)) for s in ("AAPL", "BRK.B", "MSFT")]
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
    bars = bars_in_lake(settings)[job_key("backfill", date(2025, 1, 2), date(2025, 1, 31))]
    assert ("MSFT", date(2025, 1, 2)) not in bars
    assert ("AAPL", date(2025, 1, 2)) in bars
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
