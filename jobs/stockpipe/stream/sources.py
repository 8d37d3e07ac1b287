"""Quote sources behind one interface: Finnhub REST (the real finnhub-python client) and synthetic."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, Protocol

import finnhub
from prometheus_client import Counter, Histogram
from tenacity import RetryCallState, retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from stockpipe.logs import redact, register_secret
from stockpipe.marketdata.ratelimit import RateBudget
from stockpipe.marketdata.synthetic import SyntheticMarket

log = logging.getLogger("stockpipe.sources")

API_LATENCY = Histogram("stockpipe_producer_api_latency_seconds", "Finnhub REST latency", ["endpoint"])
RATE_LIMITED = Counter("stockpipe_producer_rate_limited_total", "HTTP 429 answers from the provider")
API_ERRORS = Counter("stockpipe_producer_api_errors_total", "Failed provider calls", ["status"])


class KeyRejected(RuntimeError):
    """The provider refused the API key (401/403): retrying cannot help; someone must act."""


class QuoteSource(Protocol):
    name: str

    def fetch(self, symbol: str, at: datetime) -> dict[str, Any]:
        """Finnhub-shaped quote: c d dp h l o pc t."""


class SyntheticQuoteSource:
    name = "synthetic"

    def __init__(self, market: SyntheticMarket | None = None) -> None:
        self.market = market or SyntheticMarket()

    def fetch(self, symbol: str, at: datetime) -> dict[str, Any]:
        q = self.market.quote_at(symbol, at)
        return {"c": q.c, "d": q.d, "dp": q.dp, "h": q.h, "l": q.l, "o": q.o, "pc": q.pc, "t": q.t}


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, finnhub.FinnhubAPIException):
        status = int(exc.status_code)
        return status == 429 or status >= 500
    return isinstance(exc, finnhub.FinnhubRequestException | OSError)


class FinnhubQuoteSource:
    """Calls /quote through the shared rate budget; retries 429 and 5xx with jittered back-off."""

    name = "finnhub"

    def __init__(self, token: str, budget: RateBudget, api_url: str | None = None, attempts: int = 5) -> None:
        register_secret(token)
        client_class: type[finnhub.Client] = finnhub.Client
        if api_url:
            # A subclass, so pointing one client elsewhere never changes finnhub.Client for others.
            client_class = type("FinnhubClient", (finnhub.Client,), {"API_URL": api_url.rstrip("/")})
        self.client = client_class(api_key=token)
        self.budget = budget
        self.attempts = attempts

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, finnhub.FinnhubAPIException) and exc.status_code == 429:
            RATE_LIMITED.inc()
            self.budget.penalize(5.0)
        log.warning("finnhub call failed (%s), retry %d", redact(str(exc)), state.attempt_number)

    def fetch(self, symbol: str, at: datetime) -> dict[str, Any]:
        @retry(
            retry=retry_if_exception(_retryable),
            wait=wait_random_exponential(multiplier=0.5, max=20),
            stop=stop_after_attempt(self.attempts),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        def call() -> dict[str, Any]:
            self.budget.acquire()
            start = time.perf_counter()
            try:
                quote: dict[str, Any] = self.client.quote(symbol)
            except finnhub.FinnhubAPIException as exc:
                API_ERRORS.labels(str(exc.status_code)).inc()
                if exc.status_code in (401, 403):
                    raise KeyRejected(f"Finnhub refused the API key ({exc.status_code}: {exc.message})") from None
                raise
            finally:
                API_LATENCY.labels("quote").observe(time.perf_counter() - start)
            if not isinstance(quote, dict):
                raise finnhub.FinnhubRequestException(f"unexpected /quote answer: {str(quote)[:100]}")
            return quote

        return call()
