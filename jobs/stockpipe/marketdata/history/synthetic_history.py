"""Daily bars from the synthetic market: no key, deterministic, and the same OHLCV as its stream."""

from __future__ import annotations

from datetime import date

from stockpipe.marketdata import calendar
from stockpipe.marketdata.history.base import HistoryBar, RetryPolicy, paced_call
from stockpipe.marketdata.ratelimit import RateBudget
from stockpipe.marketdata.synthetic import SyntheticMarket


class SyntheticHistory:
    name = "synthetic"

    def __init__(self, budget: RateBudget, market: SyntheticMarket | None = None) -> None:
        self.budget = budget
        self.market = market or SyntheticMarket()

    def _bars(self, symbol: str, start: date, end: date) -> list[HistoryBar]:
        # daily_bar is the OHLCV of the intraday path the synthetic stream replays, so history and stream agree.
        out = []
        for day in calendar.sessions_between(start, end):
            b = self.market.daily_bar(symbol, day)
            out.append(HistoryBar(symbol, day, b.open, b.high, b.low, b.close, float(b.volume)))
        return out

    def fetch(self, symbol: str, start: date, end: date) -> list[HistoryBar]:
        # Paced like the real providers, so a job behaves the same whatever the source.
        return paced_call(self.name, self.budget, RetryPolicy(), lambda: self._bars(symbol, start, end))
