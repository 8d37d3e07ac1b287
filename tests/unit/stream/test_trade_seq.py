"""Trade seq numbers: identical trades in two websocket frames stay two trades."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from stockpipe.marketdata import calendar
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe.stream.trades import SyntheticTrades, trade_messages

AT = datetime(2025, 1, 10, 15, tzinfo=UTC)
ITEM = {"s": "AAPL", "p": 230.5, "t": 1736521200123, "v": 100, "c": ["1"]}


def test_seq_numbers_trades_that_share_symbol_and_time_across_frames() -> None:
    seen: dict[tuple[str, int], int] = {}
    first = trade_messages([ITEM, dict(ITEM)], AT, "finnhub_ws", seen)
    second = trade_messages([dict(ITEM), {**ITEM, "s": "MSFT"}], AT, "finnhub_ws", seen)
    assert [m["seq"] for m in first + second] == [0, 1, 2, 0]
    keys = {(m["symbol"], m["trade_ts"], m["price"], m["size"], m["seq"]) for m in first + second}
    assert len(keys) == 4  # bronze's natural key keeps every one


def test_without_memory_each_frame_starts_at_zero() -> None:
    assert [m["seq"] for m in trade_messages([ITEM], AT, "finnhub_ws")] == [0]
    assert [m["seq"] for m in trade_messages([ITEM], AT, "finnhub_ws")] == [0]


def test_synthetic_trades_exist_for_every_session_minute_and_none_outside() -> None:
    trades = SyntheticTrades(SyntheticMarket(seed=11))
    session = calendar.session(date(2025, 11, 28))  # an early close, 13:00 New York
    assert session is not None
    last_minute = session.close_utc - timedelta(minutes=1)
    assert len(trades.minute("AAPL", last_minute)) == 3
    assert trades.minute("AAPL", session.close_utc) == []
    # Extended hours reach past midnight UTC and into weekends: no trades, no error.
    assert trades.minute("AAPL", datetime(2025, 11, 29, 0, 30, tzinfo=UTC)) == []
