"""A deterministic synthetic market, for running the whole pipeline with no API key.

Every number is a pure function of (seed, symbol, day): the daily bar of a day is the
open/high/low/close/volume of that day's intraday path, so the stream and the history agree.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from stockpipe.marketdata import calendar

_OCTAVES = ((7, 0.02), (23, 0.05), (71, 0.09), (251, 0.18))  # (period in days, amplitude of log price)
_DAILY_NOISE = 0.008
_GAP_NOISE = 0.004
_MINUTE_VOL = 0.018 / math.sqrt(390)


def stable_int(*parts: object) -> int:
    digest = hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _unit(*parts: object) -> float:
    """A deterministic number in [-1, 1)."""
    return (stable_int(*parts) / 2**63) - 1.0


@dataclass(frozen=True)
class DailyBar:
    symbol: str
    day: date
    open: float
    high: float
    low: float
    close: float
    volume: int


@dataclass(frozen=True)
class QuoteValues:
    """The fields of Finnhub's /quote answer."""

    c: float
    d: float
    dp: float
    h: float
    l: float  # noqa: E741 - Finnhub's own field name
    o: float
    pc: float
    t: int


@dataclass(frozen=True)
class IntradayPath:
    open_utc: datetime
    prices: np.ndarray  # one price per session minute, in cents-rounded dollars
    volumes: np.ndarray  # shares traded in each minute


class SyntheticMarket:
    def __init__(self, seed: int = 7) -> None:
        self.seed = seed

    def base_price(self, symbol: str) -> float:
        return round(20 + (stable_int(self.seed, "base", symbol) % 48000) / 100, 2)

    def base_volume(self, symbol: str) -> int:
        return 1_000_000 + stable_int(self.seed, "volume", symbol) % 40_000_000

    def _log_level(self, symbol: str, day: date) -> float:
        """Smooth value noise over calendar days: trends over weeks and months, no drift to zero."""
        x = day.toordinal()
        level = math.log(self.base_price(symbol))
        for period, amplitude in _OCTAVES:
            k, frac = divmod(x, period)
            a = _unit(self.seed, symbol, period, k)
            b = _unit(self.seed, symbol, period, k + 1)
            t = frac / period
            t = t * t * (3 - 2 * t)
            level += amplitude * (a + (b - a) * t)
        return level + _DAILY_NOISE * _unit(self.seed, symbol, "day", x)

    def _close(self, symbol: str, day: date) -> float:
        return round(math.exp(self._log_level(symbol, day)), 2)

    def _open(self, symbol: str, day: date) -> float:
        prev = self._close(symbol, calendar.previous_session(day))
        return round(prev * math.exp(_GAP_NOISE * _unit(self.seed, symbol, "gap", day.toordinal())), 2)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - the market lives as long as the process
    def intraday(self, symbol: str, day: date) -> IntradayPath:
        s = calendar.session(day)
        if s is None:
            raise ValueError(f"{day} is not an NYSE session")
        n = s.minutes
        rng = np.random.default_rng([self.seed, stable_int(symbol), day.toordinal()])
        start, end = math.log(self._open(symbol, day)), math.log(self._close(symbol, day))
        # Brownian bridge from the open to the close, so the day's bar is the path's OHLC.
        walk = np.concatenate([[0.0], np.cumsum(rng.normal(0.0, _MINUTE_VOL, n - 1))])
        ramp = np.linspace(0.0, 1.0, n)
        log_path = start + walk - ramp * walk[-1] + ramp * (end - start)
        prices = np.round(np.exp(log_path), 2)
        x = np.linspace(0.0, 1.0, n)
        curve = 1.0 + 6.0 * (x - 0.5) ** 2  # U-shaped: busy open and close, quiet lunch
        volumes = self.base_volume(symbol) * curve / curve.sum() * rng.lognormal(0.0, 0.3, n)
        return IntradayPath(open_utc=s.open_utc, prices=prices, volumes=np.maximum(volumes.astype(np.int64), 1))

    def daily_bar(self, symbol: str, day: date) -> DailyBar:
        path = self.intraday(symbol, day)
        return DailyBar(
            symbol=symbol,
            day=day,
            open=float(path.prices[0]),
            high=float(path.prices.max()),
            low=float(path.prices.min()),
            close=float(path.prices[-1]),
            volume=int(path.volumes.sum()),
        )

    def quote_at(self, symbol: str, at: datetime) -> QuoteValues:
        """What Finnhub's /quote would answer at instant `at`: the last minute traded so far."""
        day = at.astimezone(calendar.NEW_YORK).date()
        s = calendar.session(day)
        if s is None or at < s.open_utc:
            day = calendar.previous_session(day)
            s = calendar.session(day)
            assert s is not None
        path = self.intraday(symbol, day)
        minute = min(int((at - s.open_utc).total_seconds() // 60), len(path.prices) - 1)
        seen = path.prices[: minute + 1]
        c = float(seen[-1])
        pc = self.daily_bar(symbol, calendar.previous_session(day)).close
        return QuoteValues(
            c=c,
            d=round(c - pc, 2),
            dp=round((c - pc) / pc * 100, 4),
            h=float(seen.max()),
            l=float(seen.min()),
            o=float(seen[0]),
            pc=pc,
            t=int((s.open_utc + timedelta(minutes=minute)).timestamp()),
        )


def epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
