from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

from stockpipe.marketdata import calendar
from stockpipe.marketdata.synthetic import SyntheticMarket


def test_same_seed_same_numbers_and_seeds_differ() -> None:
    day = date(2025, 3, 3)
    assert SyntheticMarket(1).daily_bar("AAPL", day) == SyntheticMarket(1).daily_bar("AAPL", day)
    assert SyntheticMarket(1).daily_bar("AAPL", day) != SyntheticMarket(2).daily_bar("AAPL", day)


def test_daily_bar_is_the_ohlc_of_the_intraday_path() -> None:
    market = SyntheticMarket()
    for day in calendar.sessions_between(date(2025, 11, 24), date(2025, 12, 5)):
        bar = market.daily_bar("MSFT", day)
        path = market.intraday("MSFT", day)
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert (bar.open, bar.close) == (path.prices[0], path.prices[-1])
        assert bar.volume == int(path.volumes.sum()) > 0
        session = calendar.session(day)
        assert session is not None
        assert len(path.prices) == session.minutes


def test_moves_are_realistic() -> None:
    market = SyntheticMarket()
    days = calendar.sessions_between(date(2025, 1, 2), date(2025, 6, 30))
    closes = [market.daily_bar("NVDA", d).close for d in days]
    returns = [abs(b / a - 1) for a, b in itertools.pairwise(closes)]
    assert max(returns) < 0.15
    assert sum(returns) / len(returns) > 0.002  # it does move


def test_quote_during_session_matches_the_path_so_far() -> None:
    market = SyntheticMarket()
    at = datetime(2025, 11, 28, 15, 0, 30, tzinfo=UTC)  # 30 minutes after the open
    quote = market.quote_at("AAPL", at)
    path = market.intraday("AAPL", date(2025, 11, 28))
    assert quote.c == path.prices[30]
    assert quote.o == path.prices[0]
    assert quote.h == path.prices[:31].max()
    assert quote.pc == market.daily_bar("AAPL", date(2025, 11, 26)).close
    assert quote.t == int(datetime(2025, 11, 28, 15, 0, tzinfo=UTC).timestamp())
