from __future__ import annotations

from datetime import date

from stockpipe.marketdata.history import HistoryProvider, SyntheticHistory
from stockpipe.marketdata.ratelimit import RateBudget
from stockpipe.marketdata.synthetic import SyntheticMarket


def test_bars_are_the_streams_daily_ohlcv_on_sessions_only() -> None:
    market = SyntheticMarket(seed=11)
    provider = SyntheticHistory(RateBudget(per_minute=6000), market)
    assert isinstance(provider, HistoryProvider)
    bars = provider.fetch("MSFT", date(2025, 1, 6), date(2025, 1, 10))
    assert [b.day for b in bars] == [date(2025, 1, 6), date(2025, 1, 7), date(2025, 1, 8), date(2025, 1, 10)]
    for bar in bars:
        path = market.intraday("MSFT", bar.day)  # what the synthetic stream replays that day
        assert (bar.open, bar.close) == (path.prices[0], path.prices[-1])
        assert (bar.high, bar.low) == (path.prices.max(), path.prices.min())
        assert bar.volume == path.volumes.sum()


def test_deterministic_and_the_early_close_has_a_bar() -> None:
    first = SyntheticHistory(RateBudget(per_minute=6000)).fetch("AAPL", date(2025, 11, 26), date(2025, 11, 28))
    second = SyntheticHistory(RateBudget(per_minute=6000)).fetch("AAPL", date(2025, 11, 26), date(2025, 11, 28))
    assert first == second
    assert [b.day for b in first] == [date(2025, 11, 26), date(2025, 11, 28)]


def test_every_fetch_is_one_call_on_the_budget() -> None:
    budget = RateBudget(per_minute=6000)
    provider = SyntheticHistory(budget)
    provider.fetch("AAPL", date(2025, 1, 2), date(2025, 1, 31))
    provider.fetch("MSFT", date(2025, 1, 2), date(2025, 1, 2))
    assert budget.calls == 2
