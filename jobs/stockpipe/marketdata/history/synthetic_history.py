"""Daily bars from the synthetic market: no key, deterministic, and the same OHLCV as its stream.

Like Tiingo, each bar carries the session's split factor and cash dividend and the provider's
adjusted OHLCV. A provider adjusts as of its fetch; this one adjusts as of the last session of the
request (so the same request always gives the same bars): prices are multiplied by
(1 / ratio) * close / (close + cash) of every action going ex after the bar and up to that
session (the close being the ex-date's), volumes by the ratios. That is the adjustment the
warehouse derives from the actions (dbt `fct_daily_bars`), so a fetch of the whole history agrees
with it.
"""

from __future__ import annotations

from datetime import date

from stockpipe.marketdata import calendar
from stockpipe.marketdata.history.base import HistoryBar, RetryPolicy, paced_call
from stockpipe.marketdata.ratelimit import RateBudget
from stockpipe.marketdata.synthetic import DailyBar, SyntheticMarket


def synthetic_bars(
    market: SyntheticMarket, symbol: str, start: date, end: date, as_of: date | None = None
) -> list[HistoryBar]:
    """The bars of the sessions from start to end, adjusted for the actions going ex up to `as_of` (default: end)."""
    days = calendar.sessions_between(start, end)
    if not days:
        return []
    as_of = max(as_of or end, end)
    splits: dict[date, float] = {}
    dividends: dict[date, float] = {}
    for action in market.corporate_actions(symbol, start, as_of):
        (splits if action.kind == "split" else dividends)[action.ex_date] = action.value
    # The actions after the last bar (up to as_of) adjust every bar.
    price_factor, share_factor = 1.0, 1.0
    for ex_date in sorted(set(splits) | set(dividends)):
        if ex_date > end:
            close = market.daily_bar(symbol, ex_date).close
            split = splits.get(ex_date, 1.0)
            price_factor *= close / (close + dividends.get(ex_date, 0.0)) / split
            share_factor *= split
    # Walk back from the last session: each bar is adjusted for the actions after it.
    out: list[HistoryBar] = []
    for day in reversed(days):
        b: DailyBar = market.daily_bar(symbol, day)
        split, cash = splits.get(day, 1.0), dividends.get(day, 0.0)
        out.append(
            HistoryBar(
                symbol,
                day,
                b.open,
                b.high,
                b.low,
                b.close,
                float(b.volume),
                adj_open=round(b.open * price_factor, 6),
                adj_high=round(b.high * price_factor, 6),
                adj_low=round(b.low * price_factor, 6),
                adj_close=round(b.close * price_factor, 6),
                adj_volume=round(b.volume * share_factor, 3),
                split_factor=split,
                dividend_cash=cash,
            )
        )
        price_factor *= b.close / (b.close + cash) / split
        share_factor *= split
    out.reverse()
    return out


class SyntheticHistory:
    name = "synthetic"

    def __init__(self, budget: RateBudget, market: SyntheticMarket | None = None) -> None:
        self.budget = budget
        self.market = market or SyntheticMarket()

    def fetch(self, symbol: str, start: date, end: date) -> list[HistoryBar]:
        # daily_bar is the OHLCV of the intraday path the synthetic stream replays, so history and stream agree.
        # Paced like the real providers, so a job behaves the same whatever the source.
        return paced_call(
            self.name, self.budget, RetryPolicy(), lambda: synthetic_bars(self.market, symbol, start, end)
        )
