"""Quote sources behind one interface: Finnhub REST (the real finnhub-python client) and synthetic."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any, Protocol

import finnhub
import requests
from prometheus_client import Counter, Histogram
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from stockpipe.alerts.slack import SlackAlerter
from stockpipe.logs import redact, register_secret
from stockpipe.marketdata.history.base import RateLimited, TransientProviderError
from stockpipe.marketdata.ratelimit import RateBudget, retry_after_seconds
from stockpipe.marketdata.synthetic import SyntheticMarket

log = logging.getLogger("stockpipe.producer")

API_LATENCY = Histogram("stockpipe_producer_api_latency_seconds", "Finnhub REST latency", ["endpoint"])
RATE_LIMITED = Counter("stockpipe_producer_rate_limited_total", "HTTP 429 answers from the provider")
API_ERRORS = Counter("stockpipe_producer_api_errors_total", "Failed provider calls", ["status"])

RATE_LIMIT_INCIDENT = "finnhub-rate-limit"
UNREACHABLE_INCIDENT = "finnhub-unreachable"


class KeyRejected(RuntimeError):
    """The provider refused the API key (401/403): retrying cannot help; someone must act."""


class SourceStopped(RuntimeError):
    """The producer is stopping while a call was still being retried."""


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
    """Calls /quote through the shared rate budget and rides out 429s and outages without giving up.

    The token travels in the `X-Finnhub-Token` header, never in a URL (URLs reach logs, proxies and
    tracebacks). A 429 or a failed call is retried for as long as it takes, with a growing, jittered
    back-off (tenacity) that never waits less than the provider's `Retry-After`; a 429 also pauses
    every caller of the budget. `storm_after` failures in a row open one Slack incident (a 429 storm,
    or Finnhub unreachable), and the next answer sends its recovery. Only a refused key (401/403)
    ends the producer; a stop request ends a wait at once (SourceStopped).
    """

    name = "finnhub"

    def __init__(
        self,
        token: str,
        budget: RateBudget,
        api_url: str | None = None,
        attempts: int = 3,
        alerter: SlackAlerter | None = None,
        stop: threading.Event | None = None,
        max_wait_s: float = 60.0,
    ) -> None:
        register_secret(token)
        self.client = finnhub.Client(api_key=None)
        # finnhub-python puts the key in the query string; Finnhub also reads this header.
        self.client._session.params.pop("token", None)
        self.client._session.headers["X-Finnhub-Token"] = token
        if api_url:
            # An instance attribute: only this client is pointed elsewhere, never finnhub.Client itself.
            self.client.API_URL = api_url.rstrip("/")
        self.budget = budget
        self.storm_after = max(1, attempts)  # failures in a row that make an incident
        self.alerter = alerter or SlackAlerter(None)
        self.stop = stop or threading.Event()
        self.max_wait_s = max_wait_s
        self._backoff = wait_exponential_jitter(initial=1.0, max=max_wait_s, jitter=1.0)
        self._failures: dict[str, int] = {RATE_LIMIT_INCIDENT: 0, UNREACHABLE_INCIDENT: 0}

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
                wait = retry_after_seconds(exc.response.headers.get("Retry-After"))
                raise RateLimited(f"Finnhub HTTP 429: {detail}", wait) from None
            if status >= 500:
                raise TransientProviderError(f"Finnhub HTTP {status}: {detail}", status) from None
            raise
        except (finnhub.FinnhubRequestException, requests.RequestException) as exc:
            API_ERRORS.labels("network").inc()
            # The message may hold a URL: redact before it goes anywhere.
            raise TransientProviderError(f"Finnhub /quote failed: {redact(str(exc))[:300]}") from None
        finally:
            API_LATENCY.labels("quote").observe(time.perf_counter() - start)
        if not isinstance(quote, dict):
            raise TransientProviderError(f"unexpected /quote answer: {str(quote)[:100]}")
        return quote

    def _wait(self, state: RetryCallState) -> float:
        """The growing back-off, but never shorter than what the provider asked for."""
        exc = state.outcome.exception() if state.outcome else None
        asked = exc.retry_after_s if isinstance(exc, RateLimited) else None
        return max(float(self._backoff(state)), min(asked or 0.0, 3600.0))

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        kind = RATE_LIMIT_INCIDENT if isinstance(exc, RateLimited) else UNREACHABLE_INCIDENT
        if isinstance(exc, RateLimited):
            self.budget.penalize(wait)  # every caller of the budget pauses too
        self._failures[kind] += 1
        log.warning(
            "Finnhub: %s; retrying in %.1f s (failure %d in a row)", redact(str(exc)), wait, self._failures[kind]
        )
        if self._failures[kind] == self.storm_after:
            what = "answers 429 (rate limit)" if kind == RATE_LIMIT_INCIDENT else "cannot be reached"
            self.alerter.incident(
                kind,
                f":warning: stockpipe producer: Finnhub {what} {self._failures[kind]} times in a row"
                f" ({redact(str(exc))});"
                " quotes are delayed, the producer keeps retrying with back-off",
                kind="producer",
            )

    def _recovered(self) -> None:
        for kind, count in self._failures.items():
            if count:
                self._failures[kind] = 0
                self.alerter.resolve(
                    kind, f":white_check_mark: stockpipe producer: Finnhub answers again after {count} failures"
                )

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise SourceStopped("stopping while waiting to retry Finnhub")

    def fetch(self, symbol: str, at: datetime) -> dict[str, Any]:
        def attempt() -> dict[str, Any]:
            self.budget.acquire()
            return self._quote(symbol)

        retrying = Retrying(
            retry=retry_if_exception_type(TransientProviderError),  # RateLimited included
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        quote = retrying(attempt)
        self._recovered()
        return quote
