"""Daily bars from Finnhub's `/stock/candle` through the finnhub-python client (premium plans only).

Finnhub's candles have no adjustment fields: no split factor, no dividend and no separately
adjusted prices (its daily candles come split-adjusted as of the fetch, its docs say). The bars
leave `adj_*`, `split_factor` and `dividend_cash` null, and the warehouse treats their history as
free of actions (adjusted = as delivered). Splits and dividends would need Finnhub's
`/stock/split` and `/stock/dividend` (premium too); use Tiingo for an action-aware history.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import finnhub
import requests

from stockpipe.logs import redact, register_secret
from stockpipe.marketdata.history.base import (
    FatalProviderError,
    HistoryBar,
    HistoryError,
    RateLimited,
    RetryPolicy,
    TransientProviderError,
    number,
    paced_call,
)
from stockpipe.marketdata.ratelimit import RateBudget

PREMIUM_REQUIRED = (
    "Finnhub answered 403 to /stock/candle: daily candles need a premium Finnhub plan. "
    "Use the free provider (STOCKPIPE_HISTORY_PROVIDER=tiingo with STOCKPIPE_TIINGO_TOKEN, or =synthetic) "
    "or set a premium key in STOCKPIPE_FINNHUB_TOKEN."
)


def _utc_midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


class FinnhubCandles:
    name = "finnhub"

    def __init__(
        self,
        token: str,
        budget: RateBudget,
        api_url: str | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        register_secret(token)
        self.budget = budget
        self.retry = retry or RetryPolicy()
        self.timeout_s = timeout_s
        self._token = token
        self._api_url = api_url
        # requests.Session is not documented as thread-safe: one client per worker thread.
        self._local = threading.local()

    def _client(self) -> finnhub.Client:
        client: finnhub.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = finnhub.Client(api_key=self._token)
            if self._api_url:
                # An instance attribute: only this client is pointed elsewhere, not the class.
                client.API_URL = self._api_url.rstrip("/")
            client.DEFAULT_TIMEOUT = self.timeout_s
            self._local.client = client
        return client

    def _call(self, symbol: str, start: date, end: date) -> Any:
        # `to` is the last second of the end day, so that day's candle is included.
        frm, to = _utc_midnight(start), _utc_midnight(end + timedelta(days=1)) - 1
        try:
            return self._client().stock_candles(symbol, "D", frm, to)
        except finnhub.FinnhubAPIException as exc:
            status, detail = exc.status_code, redact(str(exc.message))
            if status == 403:
                raise FatalProviderError(PREMIUM_REQUIRED) from None
            if status == 401:
                raise FatalProviderError(
                    f"Finnhub rejected the API key (HTTP 401: {detail}): check STOCKPIPE_FINNHUB_TOKEN"
                ) from None
            if status == 429:
                raise RateLimited(f"Finnhub HTTP 429: {detail}") from None
            if status >= 500:
                raise TransientProviderError(f"Finnhub HTTP {status}: {detail}", status) from None
            raise HistoryError(f"Finnhub HTTP {status} for {symbol}: {detail}") from None
        except finnhub.FinnhubRequestException as exc:
            raise HistoryError(f"Finnhub sent an unreadable answer for {symbol}: {redact(str(exc))[:200]}") from None
        except requests.RequestException as exc:
            # The message holds the URL, token included: redact before it goes anywhere.
            raise TransientProviderError(f"Finnhub unreachable: {redact(str(exc))}") from None

    def fetch(self, symbol: str, start: date, end: date) -> list[HistoryBar]:
        payload = paced_call(self.name, self.budget, self.retry, lambda: self._call(symbol, start, end))
        if not isinstance(payload, dict):
            raise HistoryError(f"Finnhub candles for {symbol}: expected an object, got {type(payload).__name__}")
        status = payload.get("s")
        if status == "no_data":
            return []
        if status != "ok":
            raise HistoryError(f"Finnhub candles for {symbol}: status {status!r}")
        try:
            columns = [payload[k] for k in ("t", "o", "h", "l", "c", "v")]
            rows = list(zip(*columns, strict=True))
        except (KeyError, TypeError, ValueError) as exc:
            raise HistoryError(f"Finnhub candles for {symbol}: malformed arrays ({exc})") from None
        bars = []
        for t, o, h, low, c, v in rows:
            try:
                day = datetime.fromtimestamp(int(t), UTC).date()
            except (TypeError, ValueError, OverflowError):
                raise HistoryError(f"Finnhub candles for {symbol}: bad timestamp {t!r}") from None
            bars.append(HistoryBar(symbol, day, number(o), number(h), number(low), number(c), number(v)))
        return bars
