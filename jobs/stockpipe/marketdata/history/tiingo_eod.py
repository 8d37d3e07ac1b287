"""Daily bars from Tiingo's end-of-day endpoint, a free sign-up (tiingo.com).

`GET <api>/tiingo/daily/<ticker>/prices?startDate=YYYY-MM-DD&endDate=YYYY-MM-DD` answers a JSON
list of `{date, open, high, low, close, volume, adjOpen, ..., divCash, splitFactor}`. The token
goes in the `Authorization: Token ...` header (Tiingo also takes `?token=`), so no URL we could
log carries it. Free plan: 50 requests an hour, 1,000 a day, 500 distinct symbols a month.
We keep the raw (as traded) prices, Tiingo's adjusted ones (adjusted for splits and dividends as
of the fetch) and the session's `splitFactor` and `divCash`, from which the warehouse derives its
own adjusted history (a later split restates it without a re-fetch).
"""

from __future__ import annotations

import threading
from datetime import date
from typing import Any

import requests

from stockpipe.logs import redact, register_secret
from stockpipe.marketdata.history.base import (
    FatalProviderError,
    HistoryBar,
    HistoryError,
    RateLimited,
    RetryPolicy,
    SymbolNotFound,
    TransientProviderError,
    number,
    optional_number,
    paced_call,
)
from stockpipe.marketdata.ratelimit import RateBudget

DEFAULT_API_URL = "https://api.tiingo.com"


def tiingo_ticker(symbol: str) -> str:
    """Tiingo writes share classes with a dash (BRK-B) where exchanges use a dot (BRK.B)."""
    return symbol.replace(".", "-")


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return redact(response.text[:200])
    if isinstance(body, dict) and "detail" in body:
        return redact(str(body["detail"]))
    return redact(str(body)[:200])


class TiingoDaily:
    name = "tiingo"

    def __init__(
        self,
        token: str,
        budget: RateBudget,
        api_url: str = DEFAULT_API_URL,
        retry: RetryPolicy | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        register_secret(token)
        self.budget = budget
        self.retry = retry or RetryPolicy()
        self.timeout_s = timeout_s
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update({"Authorization": f"Token {self._token}", "Content-Type": "application/json"})
            self._local.session = session
        return session

    def _call(self, symbol: str, start: date, end: date) -> Any:
        url = f"{self.api_url}/tiingo/daily/{tiingo_ticker(symbol)}/prices"
        params = {"startDate": start.isoformat(), "endDate": end.isoformat(), "format": "json"}
        try:
            response = self._session().get(url, params=params, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise TransientProviderError(f"Tiingo unreachable: {redact(str(exc))}") from None
        status = response.status_code
        if status == 200:
            try:
                return response.json()
            except ValueError:
                raise HistoryError(f"Tiingo sent an unreadable answer for {symbol}") from None
        detail = _detail(response)
        if status == 401:
            raise FatalProviderError(
                f"Tiingo rejected the API token (HTTP 401: {detail}): check STOCKPIPE_TIINGO_TOKEN"
            )
        if status == 403:
            raise FatalProviderError(f"Tiingo refused access (HTTP 403: {detail}): check the plan of this token")
        if status == 404:
            raise SymbolNotFound(f"Tiingo does not know {symbol}: {detail}")
        if status == 429:
            retry_after = response.headers.get("Retry-After")
            raise RateLimited(
                f"Tiingo HTTP 429: {detail}", float(retry_after) if retry_after and retry_after.isdigit() else None
            )
        if status >= 500:
            raise TransientProviderError(f"Tiingo HTTP {status}: {detail}", status)
        raise HistoryError(f"Tiingo HTTP {status} for {symbol}: {detail}")

    def fetch(self, symbol: str, start: date, end: date) -> list[HistoryBar]:
        payload = paced_call(self.name, self.budget, self.retry, lambda: self._call(symbol, start, end))
        if not isinstance(payload, list):
            raise HistoryError(f"Tiingo prices for {symbol}: expected a list, got {type(payload).__name__}")
        bars = []
        for row in payload:
            if not isinstance(row, dict):
                raise HistoryError(f"Tiingo prices for {symbol}: a row is not an object")
            try:
                # "2025-01-02T00:00:00.000Z": the session's date at midnight UTC.
                day = date.fromisoformat(str(row["date"])[:10])
            except (KeyError, ValueError):
                raise HistoryError(f"Tiingo prices for {symbol}: bad date {row.get('date')!r}") from None
            bars.append(
                HistoryBar(
                    symbol,
                    day,
                    number(row.get("open")),
                    number(row.get("high")),
                    number(row.get("low")),
                    number(row.get("close")),
                    number(row.get("volume")),
                    adj_open=optional_number(row.get("adjOpen")),
                    adj_high=optional_number(row.get("adjHigh")),
                    adj_low=optional_number(row.get("adjLow")),
                    adj_close=optional_number(row.get("adjClose")),
                    adj_volume=optional_number(row.get("adjVolume")),
                    split_factor=optional_number(row.get("splitFactor")),
                    dividend_cash=optional_number(row.get("divCash")),
                )
            )
        return bars
