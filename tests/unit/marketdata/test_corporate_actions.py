"""Splits and dividends of the synthetic market, and the adjusted bars its history and Tiingo's stand-in serve."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest

from stockpipe.marketdata import calendar
from stockpipe.marketdata.history import HistoryBar, SyntheticHistory, TiingoDaily
from stockpipe.marketdata.history.synthetic_history import synthetic_bars
from stockpipe.marketdata.ratelimit import RateBudget
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe_dev.localservices.tiingo_standin import TiingoStandin

# Seed 11's NSR: dividends going ex 2024-08-26 and 2024-11-11, a 10:1 split going ex 2024-10-14.
MARKET = SyntheticMarket(seed=11)
SYMBOL = "NSR"
START, END = date(2024, 7, 1), date(2025, 1, 10)
SPLIT_DAY = date(2024, 10, 14)


def test_the_schedule_is_deterministic_and_actions_go_ex_on_sessions() -> None:
    actions = MARKET.corporate_actions(SYMBOL, START, END)
    assert actions == SyntheticMarket(seed=11).corporate_actions(SYMBOL, START, END)
    assert [(a.ex_date, a.kind) for a in actions] == [
        (date(2024, 8, 26), "dividend"), (SPLIT_DAY, "split"), (date(2024, 11, 11), "dividend")
    ]  # fmt: skip
    assert all(calendar.is_session(a.ex_date) for a in actions)
    # Some symbols split, some pay dividends, some do neither.
    kinds = [{a.kind for a in MARKET.corporate_actions(s, date(2001, 1, 2), END)} for s in ("AAPL", "MSFT", "NVDA")]
    assert {"dividend"} in kinds
    assert {"split"} in kinds
    assert set() in kinds


def test_a_split_divides_the_raw_price_and_multiplies_the_volume() -> None:
    before, on = MARKET.daily_bar(SYMBOL, calendar.previous_session(SPLIT_DAY)), MARKET.daily_bar(SYMBOL, SPLIT_DAY)
    assert 0.05 < on.open / before.close < 0.15  # the stream quotes the raw price: a tenth of the day before
    assert 0.05 < on.close / before.close < 0.15
    assert 5 < on.volume / before.volume < 20
    path = MARKET.intraday(SYMBOL, SPLIT_DAY)  # what the stream replays that day
    assert (on.open, on.close) == (path.prices[0], path.prices[-1])


def test_a_dividend_is_a_cash_amount_near_its_yield_and_the_price_drops_by_about_it() -> None:
    for action in MARKET.corporate_actions(SYMBOL, START, END):
        if action.kind == "dividend":
            prev = MARKET.daily_bar(SYMBOL, calendar.previous_session(action.ex_date)).close
            assert 0.001 < action.value / prev < 0.01
            assert action.value == round(action.value, 2)


def test_history_bars_carry_the_actions_and_are_adjusted_as_of_the_last_session() -> None:
    bars = SyntheticHistory(RateBudget(per_minute=60_000), MARKET).fetch(SYMBOL, START, END)
    by_day = {b.day: b for b in bars}
    assert by_day[SPLIT_DAY].split_factor == 10.0
    assert {b.day for b in bars if b.dividend_cash} == {date(2024, 8, 26), date(2024, 11, 11)}
    assert by_day[END].adj_close == by_day[END].close  # nothing went ex after the last bar
    # Adjusted closes give the total return: the split day's true return, the ex-date's with the dividend.
    for earlier, later in itertools.pairwise(bars):
        assert later.adj_close is not None
        assert earlier.adj_close is not None
        true_return = (later.close + (later.dividend_cash or 0.0)) * (later.split_factor or 1.0) / earlier.close
        assert later.adj_close / earlier.adj_close == pytest.approx(true_return, rel=1e-6)
    # Volumes before the split in today's shares.
    first = bars[0]
    assert first.adj_volume == pytest.approx(first.volume * 10)


def test_an_earlier_fetch_does_not_know_the_later_split() -> None:
    early = synthetic_bars(MARKET, SYMBOL, START, date(2024, 10, 1))
    late = synthetic_bars(MARKET, SYMBOL, START, date(2024, 10, 1), as_of=END)
    assert [b.close for b in early] == [b.close for b in late]
    assert early[-1].adj_close == early[-1].close
    assert late[-1].adj_close is not None
    assert late[-1].adj_close < early[-1].close / 10  # the split and the November dividend


def test_tiingo_bars_keep_the_adjusted_prices_split_factor_and_dividend() -> None:
    standin = TiingoStandin(tokens=["tok"], market=MARKET, clock=lambda: datetime(2025, 1, 13, tzinfo=UTC))
    standin.start()
    try:
        bars = TiingoDaily("tok", RateBudget(per_minute=60_000), api_url=standin.url).fetch(SYMBOL, START, END)
    finally:
        standin.stop()

    def fields(b: HistoryBar) -> tuple[object, ...]:
        return (b.day, b.close, b.adj_close, b.split_factor, b.dividend_cash)

    assert [fields(b) for b in bars] == [fields(b) for b in synthetic_bars(MARKET, SYMBOL, START, END)]
    assert {b.day for b in bars if b.split_factor != 1.0} == {SPLIT_DAY}


def test_the_calendar_window_starts_in_2000_without_a_session_before_january_3() -> None:
    assert calendar.CALENDAR_START.isoformat() == "2000-01-01"
    assert not calendar.is_session(date(2000, 1, 1))
    assert calendar.session(date(2000, 1, 2)) is None
    assert calendar.is_session(date(2000, 1, 3))
    with pytest.raises(calendar.CalendarRangeError):
        calendar.is_session(date(1999, 12, 31))
