"""What every daily-history provider offers, and how its calls are paced and retried.

A provider turns (symbol, first day, last day) into daily bars, one HTTP call per fetch, every
call paced by the provider's own `RateBudget` (shared by all the threads of a job). 429 and 5xx
answers and dropped connections are retried with jittered exponential back-off (tenacity); a 429
also pauses every caller of the budget. Errors that no retry can fix (a rejected key, a plan
without access) are `FatalProviderError`s: the job stops at the first one with its message.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Protocol, TypeVar, runtime_checkable

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from stockpipe.logs import redact
from stockpipe.marketdata.ratelimit import RateBudget

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class HistoryBar:
    """One session's bar as a provider sent it; checked before it reaches the lake.

    Numbers stay floats (NaN for a missing value) so that a malformed answer is rejected with a
    reason by the checks instead of failing the whole symbol while parsing.

    The adjustment fields are None when the provider does not have them (Finnhub candles): the
    provider's adjusted OHLCV as of its fetch, and the corporate actions going ex that session
    (`split_factor`: new shares per old share, 1.0 without a split; `dividend_cash`: cash per share,
    0.0 without a dividend). The warehouse derives adjusted history from the actions (see
    stockpipe.contracts.bars), so a provider without adjusted prices may still give actions.
    """

    symbol: str
    day: date
    open: float
    high: float
    low: float
    close: float
    volume: float
    adj_open: float | None = None
    adj_high: float | None = None
    adj_low: float | None = None
    adj_close: float | None = None
    adj_volume: float | None = None
    split_factor: float | None = None
    dividend_cash: float | None = None


class HistoryError(Exception):
    """The provider could not give the bars of one symbol; other symbols may still work."""


class SymbolNotFound(HistoryError):
    """The provider does not know the symbol."""


class TransientProviderError(HistoryError):
    """A 5xx, a dropped connection or a timeout: worth another try."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(TransientProviderError):
    """HTTP 429: over the provider's allowance."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message, 429)
        self.retry_after_s = retry_after_s


class FatalProviderError(HistoryError):
    """No retry and no other symbol will do better (bad key, plan without access): stop the job."""


@runtime_checkable
class HistoryProvider(Protocol):
    """A source of daily bars. `fetch` makes one paced, retried call and returns the bars it got."""

    name: str
    budget: RateBudget

    def fetch(self, symbol: str, start: date, end: date) -> list[HistoryBar]:
        """Bars of `symbol` for the sessions from `start` to `end` (both included), in any order."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    initial_wait_s: float = 1.0
    max_wait_s: float = 30.0
    # A 429 pauses every caller of the budget this long (unless the provider says Retry-After).
    rate_limit_pause_s: float = 10.0


def optional_number(value: object) -> float | None:
    """A provider's optional number: None when absent (null), NaN when present but not a number."""
    return None if value is None else number(value)


def number(value: object) -> float:
    """A provider's number as a float, NaN when it is missing or not a number."""
    if isinstance(value, bool):
        return math.nan
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def paced_call(
    provider: str,
    budget: RateBudget,
    policy: RetryPolicy,
    call: Callable[[], T],
    *,
    on_retry: Callable[[BaseException], None] | None = None,
    exhausted_hint: str = (
        "lower STOCKPIPE_HISTORY_BUDGET_PER_MINUTE or run `stockpipe history gaps` later to load the rest"
    ),
) -> T:
    """Run `call` under the budget, retrying transient failures; a 429 that outlasts every retry is fatal."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited):
            budget.penalize(exc.retry_after_s if exc.retry_after_s is not None else policy.rate_limit_pause_s)
        if exc is not None and on_retry is not None:
            on_retry(exc)
        log.warning(
            "%s: retrying after %s (attempt %s of %s)",
            provider,
            redact(str(exc)),
            state.attempt_number,
            policy.attempts,
            extra={"provider": provider, "attempt": state.attempt_number},
        )

    def attempt() -> T:
        budget.acquire()
        return call()

    retrying = Retrying(
        retry=retry_if_exception_type(TransientProviderError),
        wait=wait_exponential_jitter(
            initial=policy.initial_wait_s, max=policy.max_wait_s, jitter=policy.initial_wait_s
        ),
        stop=stop_after_attempt(policy.attempts),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except RateLimited as exc:
        # The budget was respected and the provider still says no: its allowance (hourly/daily on
        # free plans) is used up, and every other symbol would get the same answer.
        raise FatalProviderError(
            f"{provider} still answers 429 (rate limit) after {policy.attempts} tries: its allowance is used up; "
            + exhausted_hint
        ) from exc
