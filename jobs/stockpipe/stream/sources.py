"""Quote sources behind one interface: Finnhub REST (the real finnhub-python client) and synthetic."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Protocol

import finnhub
import requests
from prometheus_client import Counter, Histogram

from stockpipe.logs import redact, register_secret
from stockpipe.marketdata.history.base import RateLimited, RetryPolicy, TransientProviderError, paced_call
from stockpipe.marketdata.ratelimit import RateBudget
from stockpipe.marketdata.synthetic import SyntheticMarket

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


class FinnhubQuoteSource:
    """Calls /quote through the shared rate budget; retries 429 and 5xx with jittered back-off.

    The pacing and retry mechanism is the one the history providers use (`paced_call`).
    """

    name = "finnhub"

    def __init__(self, token: str, budget: RateBudget, api_url: str | None = None, attempts: int = 5) -> None:
        register_secret(token)
        self.client = finnhub.Client(api_key=token)
        if api_url:
            # An instance attribute: only this client is pointed elsewhere, never finnhub.Client itself.
            self.client.API_URL = api_url.rstrip("/")
        self.budget = budget
        self.policy = RetryPolicy(attempts=attempts, rate_limit_pause_s=5.0)

    def _quote(self, symbol: str) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            quote = self.client.quote(symbol)
        except finnhub.FinnhubAPIException as exc:
            status, detail = int(exc.status_code), redact(str(exc.message))
            API_ERRORS.labels(str(status)).inc()
            if status in (401, 403):
                raise KeyRejected(f"Finnhub refused the API key ({status}: {detail})") from None
            if status == 429:
                RATE_LIMITED.inc()
                raise RateLimited(f"Finnhub HTTP 429: {detail}") from None
            if status >= 500:
                raise TransientProviderError(f"Finnhub HTTP {status}: {detail}", status) from None
            raise
        except (finnhub.FinnhubRequestException, requests.RequestException) as exc:
            API_ERRORS.labels("network").inc()
            # The message may hold the URL, token included: redact before it goes anywhere.
            raise TransientProviderError(f"Finnhub /quote failed: {redact(str(exc))[:300]}") from None
        finally:
            API_LATENCY.labels("quote").observe(time.perf_counter() - start)
        if not isinstance(quote, dict):
            raise TransientProviderError(f"unexpected /quote answer: {str(quote)[:100]}")
        return quote

    def fetch(self, symbol: str, at: datetime) -> dict[str, Any]:
        return paced_call(
            "finnhub quotes",
            self.budget,
            self.policy,
            lambda: self._quote(symbol),
            exhausted_hint="lower STOCKPIPE_CALLS_PER_MINUTE",
        )
