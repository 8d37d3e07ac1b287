"""A deterministic synthetic market, for running the whole pipeline with no API key.

Every number is a pure function of (seed, symbol, day): the daily bar of a day is the
open/high/low/close/volume of that day's intraday path, so the stream and the history agree.

Some symbols split (one or two splits between 2001 and 2029, 2:1 to 10:1) and some pay quarterly
dividends. Their schedule is a pure function of (seed, symbol) too, fixed in calendar dates (an
action goes ex on the first session on or after its date), so that no price depends on how far
the calendar reaches. Prices are quoted raw, as traded: a split divides the price by its ratio
(and multiplies the volume), a dividend lowers the price by its yield on the ex-date.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import numpy as np

from stockpipe.marketdata import calendar

_OCTAVES = ((7, 0.02), (23, 0.05), (71, 0.09), (251, 0.18))  # (period in days, amplitude of log price)
_DAILY_NOISE = 0.008
_GAP_NOISE = 0.004
_MINUTE_VOL = 0.018 / math.sqrt(390)
_SPLIT_RATIOS = (2.0, 3.0, 4.0, 10.0)
_ACTION_YEARS = range(2000, 2030)  # the schedule's reach, independent of the calendar's
_DIVIDEND_MONTHS = (2, 5, 8, 11)


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
class CorporateAction:
    """A split (value: new shares per old share) or a cash dividend (value: USD per share) going ex on ex_date."""

    symbol: str
    ex_date: date
    kind: Literal["split", "dividend"]
    value: float


@dataclass(frozen=True)
class _Schedule:
    """A symbol's actions in calendar dates, and the running raw-price multipliers they imply."""

    dates: tuple[date, ...]  # sorted; an action applies to the sessions on or after its date
    splits: tuple[float, ...]  # ratio per date (1.0: none)
    dividend_yields: tuple[float, ...]  # quarterly yield per date (0.0: none)
    log_price: tuple[float, ...]  # log of the raw-price multiplier from dates[i] on (before any: [0])
    log_shares: tuple[float, ...]  # log of the split factor so far from dates[i] on

    def at(self, day: date) -> tuple[float, float]:
        """(raw-price multiplier, share multiplier) on session `day`."""
        i = bisect.bisect_right(self.dates, day)
        return math.exp(self.log_price[i]), math.exp(self.log_shares[i])


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

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - the market lives as long as the process
    def _schedule(self, symbol: str) -> _Schedule:
        actions: dict[date, list[float]] = {}  # date -> [split ratio, dividend yield]
        h = stable_int(self.seed, "splits", symbol)
        if h % 3 == 0:
            for k in range(1 + (h >> 8) % 2):
                year = _ACTION_YEARS[1 + stable_int(self.seed, "split-year", symbol, k) % (len(_ACTION_YEARS) - 1)]
                month = 1 + stable_int(self.seed, "split-month", symbol, k) % 12
                when = date(year, month, 1 + stable_int(self.seed, "split-day", symbol, k) % 28)
                ratio = _SPLIT_RATIOS[stable_int(self.seed, "split-ratio", symbol, k) % len(_SPLIT_RATIOS)]
                actions.setdefault(when, [1.0, 0.0])[0] *= ratio
        h = stable_int(self.seed, "dividends", symbol)
        if h % 2 == 0:
            quarterly_yield = 0.002 + ((h >> 8) % 50) / 10_000
            for year in _ACTION_YEARS[(h >> 16) % 20 :]:
                for month in _DIVIDEND_MONTHS:
                    when = date(year, month, 5 + stable_int(self.seed, "dividend-day", symbol, year, month) % 20)
                    actions.setdefault(when, [1.0, 0.0])[1] = quarterly_yield
        dates = tuple(sorted(actions))
        total_split = math.log(math.prod(actions[d][0] for d in dates))
        # The price before every split is the level times all ratios, so that after the last one the
        # symbol trades around its base price; each dividend lowers it by its yield for good.
        log_price, log_shares = [total_split], [-total_split]
        for d in dates:
            ratio, dividend_yield = actions[d]
            log_price.append(log_price[-1] - math.log(ratio) + math.log1p(-dividend_yield))
            log_shares.append(log_shares[-1] + math.log(ratio))
        return _Schedule(
            dates=dates,
            splits=tuple(actions[d][0] for d in dates),
            dividend_yields=tuple(actions[d][1] for d in dates),
            log_price=tuple(log_price),
            log_shares=tuple(log_shares),
        )

    def corporate_actions(self, symbol: str, start: date, end: date) -> list[CorporateAction]:
        """The splits and dividends going ex in the sessions from start to end (both included), by ex-date.

        A dividend's cash is its quarterly yield of the last close before the ex-date, in cents.
        """
        schedule = self._schedule(symbol)
        out: list[CorporateAction] = []
        # An action goes ex at most a few days after its date (a weekend and a holiday, or an ad-hoc closure).
        for i in range(bisect.bisect_left(schedule.dates, start - timedelta(days=14)), len(schedule.dates)):
            when = schedule.dates[i]
            sessions = calendar.sessions_between(when, end) if when <= end else []
            if not sessions:
                break
            ex_date = sessions[0]
            if ex_date < start:
                continue
            if schedule.splits[i] != 1.0:
                out.append(CorporateAction(symbol, ex_date, "split", schedule.splits[i]))
            if schedule.dividend_yields[i] > 0.0:
                prev_close = self._close(symbol, calendar.previous_session(ex_date))
                cash = max(round(prev_close * schedule.dividend_yields[i], 2), 0.01)
                out.append(CorporateAction(symbol, ex_date, "dividend", cash))
        return out

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
        price_multiplier, _ = self._schedule(symbol).at(day)
        return round(math.exp(self._log_level(symbol, day)) * price_multiplier, 2)

    def _open(self, symbol: str, day: date) -> float:
        before = calendar.previous_session(day)
        prev = self._close(symbol, before)
        # A split or dividend going ex today moves the open like it moves the close.
        step = self._schedule(symbol).at(day)[0] / self._schedule(symbol).at(before)[0]
        return round(prev * step * math.exp(_GAP_NOISE * _unit(self.seed, symbol, "gap", day.toordinal())), 2)

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
        shares = self._schedule(symbol).at(day)[1]  # splits multiply the shares traded
        volumes = self.base_volume(symbol) * shares * curve / curve.sum() * rng.lognormal(0.0, 0.3, n)
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
