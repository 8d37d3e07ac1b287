"""A local stand-in for Finnhub's REST API, quirks included, for the real finnhub-python client.

Point the client at it with `finnhub.Client.API_URL = standin.api_url`. It answers like Finnhub:
- 401 without a known token; 429 over the per-minute budget (and over 30 calls/s);
- `/quote`: all zeros (d, dp null) for unknown symbols; the previous session's quote (a stale `t`)
  for symbols configured as stale; otherwise the synthetic market's quote at the stand-in's clock;
- `/stock/candle`: 403 for free tokens (candles are premium), daily candles for premium tokens.
Control: `GET /_standin/stats` (accepted calls per token and minute, 429s), `POST /_standin/fail`
(`{"count": n, "status": 500}`: the next n data calls fail with that status).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

from stockpipe.contracts.watchlist import SYMBOL_RE
from stockpipe.marketdata import calendar
from stockpipe.marketdata.synthetic import SyntheticMarket, epoch
from stockpipe_dev.localservices.http_standin import HttpStandin, Response, StandinRequest

ZERO_QUOTE = {"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0}


class FinnhubStandin(HttpStandin):
    def __init__(
        self,
        free_tokens: Iterable[str] = (),
        premium_tokens: Iterable[str] = (),
        per_minute: int = 60,
        per_second: int = 30,
        unknown_symbols: Iterable[str] = ("ZZZZ",),
        stale_symbols: Iterable[str] = (),
        market: SyntheticMarket | None = None,
        clock: Callable[[], datetime] | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.free_tokens = set(free_tokens)
        self.premium_tokens = set(premium_tokens)
        self.per_minute = per_minute
        self.per_second = per_second
        self.unknown_symbols = set(unknown_symbols)
        self.stale_symbols = set(stale_symbols)
        self.market = market or SyntheticMarket()
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self.accepted_per_minute: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.accepted_times: dict[str, list[float]] = defaultdict(list)
        self.rejected_429: dict[str, int] = defaultdict(int)
        self.calls_by_path: dict[str, int] = defaultdict(int)
        self.symbols_requested: dict[str, int] = defaultdict(int)
        self._failures: deque[int] = deque()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v1"

    # -- rate budget -------------------------------------------------------------------------
    def _admit(self, token: str) -> bool:
        now = time.monotonic()
        with self._lock:
            window = self._recent[token]
            while window and now - window[0] >= 60.0:
                window.popleft()
            last_second = sum(1 for t in window if now - t < 1.0)
            if len(window) >= self.per_minute or last_second >= self.per_second:
                self.rejected_429[token] += 1
                return False
            window.append(now)
            wall = time.time()
            self.accepted_times[token].append(wall)
            self.accepted_per_minute[token][int(wall // 60)] += 1
            return True

    def max_calls_in_any_minute(self, token: str) -> int:
        """The most calls Finnhub accepted from `token` in any sliding 60 s window."""
        times = sorted(self.accepted_times.get(token, []))
        best, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= 60.0:
                start += 1
            best = max(best, end - start + 1)
        return best

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {
                "accepted_per_minute": {t: dict(m) for t, m in self.accepted_per_minute.items()},
                "max_in_any_minute": {t: self.max_calls_in_any_minute(t) for t in self.accepted_times},
                "http_429": dict(self.rejected_429),
                "calls_by_path": dict(self.calls_by_path),
                "symbols_requested": dict(self.symbols_requested),
            }

    def fail_next(self, count: int, status: int = 500) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    # -- API ---------------------------------------------------------------------------------
    def handle(self, request: StandinRequest) -> Response:
        if request.path == "/_standin/stats":
            return 200, self.stats(), {}
        if request.path == "/_standin/fail":
            spec = json.loads(request.body or b"{}")
            self.fail_next(int(spec.get("count", 1)), int(spec.get("status", 500)))
            return 200, {"ok": True}, {}
        token = request.query.get("token") or request.headers.get("X-Finnhub-Token", "")
        if not token:
            return 401, {"error": "Please use an API key."}, {}
        if token not in self.free_tokens | self.premium_tokens:
            return 401, {"error": "Invalid API key."}, {}
        if not self._admit(token):
            return 429, {"error": "API limit reached. Please try again later. Remaining Limit: 0"}, {}
        with self._lock:
            self.calls_by_path[request.path] += 1
            if self._failures:
                return self._failures.popleft(), "upstream error", {}
        if request.path == "/api/v1/quote":
            return self._quote(request.query.get("symbol", ""))
        if request.path == "/api/v1/stock/candle":
            if token not in self.premium_tokens:
                return 403, {"error": "You don't have access to this resource."}, {}
            return self._candles(request.query)
        return 404, {"error": "Not found"}, {}

    def _quote(self, symbol: str) -> Response:
        with self._lock:
            self.symbols_requested[symbol] += 1
        if not SYMBOL_RE.match(symbol) or symbol in self.unknown_symbols:
            return 200, dict(ZERO_QUOTE), {}
        at = self.clock()
        if symbol in self.stale_symbols:
            # During a session Finnhub can still serve the previous session's last quote.
            prev = calendar.session(calendar.previous_session(at.astimezone(calendar.NEW_YORK).date()))
            assert prev is not None
            at = prev.close_utc - timedelta(seconds=1)
        q = self.market.quote_at(symbol, at)
        return 200, {"c": q.c, "d": q.d, "dp": q.dp, "h": q.h, "l": q.l, "o": q.o, "pc": q.pc, "t": q.t}, {}

    def _candles(self, query: dict[str, str]) -> Response:
        symbol = query.get("symbol", "")
        if query.get("resolution") != "D":
            return 422, {"error": "Only daily resolution is served by the stand-in."}, {}
        try:
            start = datetime.fromtimestamp(int(query["from"]), UTC).date()
            end = datetime.fromtimestamp(int(query["to"]), UTC).date()
        except (KeyError, ValueError):
            return 422, {"error": "Wrong from/to."}, {}
        with self._lock:
            self.symbols_requested[symbol] += 1
        today = self.clock().astimezone(calendar.NEW_YORK).date()
        days: list[date] = [
            d
            for d in calendar.sessions_between(start, min(end, today))
            if symbol not in self.unknown_symbols and SYMBOL_RE.match(symbol)
        ]
        if not days:
            return 200, {"s": "no_data"}, {}
        bars = [self.market.daily_bar(symbol, d) for d in days]
        return (
            200,
            {
                "c": [b.close for b in bars],
                "h": [b.high for b in bars],
                "l": [b.low for b in bars],
                "o": [b.open for b in bars],
                "s": "ok",
                "t": [epoch(b.day) for b in bars],
                "v": [b.volume for b in bars],
            },
            {},
        )
