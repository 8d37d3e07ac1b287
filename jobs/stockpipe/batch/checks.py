"""Every bar is checked before it reaches the lake; a bad one is rejected with its reason."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from stockpipe.contracts.bars import ADJUSTMENT_COLUMNS
from stockpipe.marketdata import calendar
from stockpipe.marketdata.history import HistoryBar


@dataclass(frozen=True)
class Rejection:
    symbol: str
    day: date
    reason: str  # short and fixed, so that reasons can be counted
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.symbol} {self.day}: {self.reason}{f' ({self.detail})' if self.detail else ''}"


def _problem(bar: HistoryBar) -> tuple[str, str] | None:
    """(reason, detail) of the first thing wrong with one bar, or None."""
    prices = {"open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close}
    for name, value in (*prices.items(), ("volume", bar.volume)):
        if not math.isfinite(value):
            return f"{name} missing or not a number", ""
    for name, value in prices.items():
        if value <= 0:
            return "price not positive", f"{name}={value}"
    if bar.low > bar.high:
        return "low above high", f"low={bar.low} high={bar.high}"
    for name in ("open", "close"):
        if not bar.low <= prices[name] <= bar.high:
            return f"{name} outside low..high", f"{name}={prices[name]} low={bar.low} high={bar.high}"
    if bar.volume < 0:
        return "negative volume", f"volume={bar.volume}"
    # Adjustment fields are optional (None), but a present one must make sense: the actions drive
    # the warehouse's adjusted history.
    for name in ADJUSTMENT_COLUMNS:
        value = getattr(bar, name)
        if value is not None and (not math.isfinite(value) or value < 0):
            return f"{name} not a number or negative", f"{name}={value}"
    if bar.split_factor is not None and bar.split_factor == 0:
        return "split factor zero", ""
    try:
        if not calendar.is_session(bar.day):
            return "not an NYSE session", bar.day.strftime("%A")
    except calendar.CalendarRangeError as exc:
        return "outside the calendar window", str(exc)
    return None


def check_bars(
    symbol: str, bars: Iterable[HistoryBar], start: date, end: date
) -> tuple[list[HistoryBar], list[Rejection]]:
    """Accepted bars sorted by day, and the rejected ones with reasons."""
    accepted: dict[date, HistoryBar] = {}
    rejected: list[Rejection] = []
    for bar in bars:
        if bar.symbol != symbol:
            rejected.append(Rejection(symbol, bar.day, "wrong symbol", bar.symbol))
        elif not start <= bar.day <= end:
            # Never written: a bar outside the asked range would bypass the watermark's logic.
            rejected.append(Rejection(symbol, bar.day, "outside the requested range", f"{start}..{end}"))
        elif bar.day in accepted:
            rejected.append(Rejection(symbol, bar.day, "duplicate day"))
        elif (problem := _problem(bar)) is not None:
            rejected.append(Rejection(symbol, bar.day, *problem))
        else:
            accepted[bar.day] = bar
    return [accepted[d] for d in sorted(accepted)], rejected
