"""A local stand-in for Tiingo's end-of-day REST API, quirks included.

`GET /tiingo/daily/<ticker>/prices?startDate=&endDate=` answers like Tiingo:
- 401 `{"detail": ...}` without a known token (header `Authorization: Token ...` or `?token=`);
- 429 past the hourly or daily request allowance (free plan: 50 an hour, 1,000 a day);
- 404 `{"detail": "Error: Ticker 'X' not found"}` for unknown tickers;
- otherwise a JSON list of bars from the synthetic market, with Tiingo's field names, for the
  sessions in the range that have closed by the stand-in's clock: raw OHLCV, `splitFactor` and
  `divCash` of the session, and adjusted OHLCV as of the last closed session (as Tiingo adjusts).
Test hooks: `bad_rows` replaces fields of one (ticker, day) row or adds a row on a day that is no
session; `fail_next(n, status)` fails the next n data calls.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from stockpipe.contracts.watchlist import SYMBOL_RE
from stockpipe.marketdata import calendar
from stockpipe.marketdata.history.synthetic_history import synthetic_bars
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe_dev.localservices.http_standin import HttpStandin, Response, StandinRequest

_OVER_HOURLY = (
    "Error: You have run over your hourly request allocation. Please upgrade at https://api.tiingo.com/pricing "
    "to have your limits increased."
)
_OVER_DAILY = (
    "Error: You have run over your daily request allocation. Please upgrade at https://api.tiingo.com/pricing "
    "to have your limits increased."
)


class TiingoStandin(HttpStandin):
    def __init__(
        self,
        tokens: Iterable[str] = (),
        per_hour: int = 50,
        per_day: int = 1000,
        unknown_symbols: Iterable[str] = ("ZZZZ",),
        market: SyntheticMarket | None = None,
        clock: Callable[[], datetime] | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.tokens = set(tokens)
        self.per_hour = per_hour
        self.per_day = per_day
        self.unknown_symbols = set(unknown_symbols)
        self.market = market or SyntheticMarket()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.bad_rows: dict[tuple[str, date], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self.calls = 0
        self.http_429 = 0
        self.symbols_requested: dict[str, int] = defaultdict(int)
        self.ranges_requested: list[tuple[str, str, str]] = []
        self._failures: deque[int] = deque()

    def fail_next(self, count: int, status: int = 500) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {"calls": self.calls, "http_429": self.http_429, "symbols_requested": dict(self.symbols_requested)}

    def _admit(self, token: str) -> str | None:
        """None when the call is within the allowance, else Tiingo's message."""
        now = time.monotonic()
        with self._lock:
            window = self._recent[token]
            while window and now - window[0] >= 86400.0:
                window.popleft()
            if len(window) >= self.per_day:
                self.http_429 += 1
                return _OVER_DAILY
            if sum(1 for t in window if now - t < 3600.0) >= self.per_hour:
                self.http_429 += 1
                return _OVER_HOURLY
            window.append(now)
            return None

    def handle(self, request: StandinRequest) -> Response:
        if request.path == "/_standin/stats":
            return 200, self.stats(), {}
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Token ").strip() if auth.startswith("Token ") else request.query.get("token", "")
        if not token:
            return 401, {"detail": "Please supply a token"}, {}
        if token not in self.tokens:
            return 401, {"detail": "Invalid token."}, {}
        parts = request.path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["tiingo", "daily"] or parts[3] != "prices":
            return 404, {"detail": "Not found."}, {}
        over = self._admit(token)
        if over:
            return 429, {"detail": over}, {}
        ticker = parts[2].upper()
        with self._lock:
            self.calls += 1
            self.symbols_requested[ticker] += 1
            self.ranges_requested.append((ticker, request.query.get("startDate", ""), request.query.get("endDate", "")))
            if self._failures:
                return self._failures.popleft(), {"detail": "Error: upstream failure"}, {}
        symbol = ticker.replace("-", ".")  # Tiingo's BRK-B is the exchange's BRK.B
        if not SYMBOL_RE.match(symbol) or symbol in self.unknown_symbols:
            return 404, {"detail": f"Error: Ticker '{ticker}' not found"}, {}
        try:
            start = date.fromisoformat(request.query["startDate"])
            end = date.fromisoformat(request.query.get("endDate") or start.isoformat())
        except (KeyError, ValueError):
            return 400, {"detail": "Error: startDate and endDate must be YYYY-MM-DD"}, {}
        return 200, self._rows(symbol, start, end), {}

    def _rows(self, symbol: str, start: date, end: date) -> list[dict[str, Any]]:
        now = self.clock()
        closed = [d for d in calendar.sessions_between(start, end) if _closed(d, now)]
        rows: dict[date, dict[str, Any]] = {}
        if closed:
            # Tiingo adjusts as of its latest data: every action that went ex up to the last closed session.
            as_of = calendar.previous_session(now.date() + timedelta(days=1))
            as_of = as_of if _closed(as_of, now) else calendar.previous_session(as_of)
            for b in synthetic_bars(self.market, symbol, closed[0], closed[-1], as_of):
                rows[b.day] = {
                    "date": f"{b.day.isoformat()}T00:00:00.000Z",
                    "close": b.close,
                    "high": b.high,
                    "low": b.low,
                    "open": b.open,
                    "volume": round(b.volume),
                    "adjClose": b.adj_close,
                    "adjHigh": b.adj_high,
                    "adjLow": b.adj_low,
                    "adjOpen": b.adj_open,
                    "adjVolume": b.adj_volume,
                    "divCash": b.dividend_cash,
                    "splitFactor": b.split_factor,
                }
        for (bad_symbol, day), fields in self.bad_rows.items():
            if bad_symbol == symbol and start <= day <= end:
                rows.setdefault(day, {"date": f"{day.isoformat()}T00:00:00.000Z"}).update(fields)
        return [rows[d] for d in sorted(rows)]


def _closed(day: date, now: datetime) -> bool:
    """Tiingo publishes a day's bar after the close."""
    s = calendar.session(day)
    return s is not None and s.close_utc <= now
