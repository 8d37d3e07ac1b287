from __future__ import annotations

import math

import pytest

from stockpipe.marketdata.history import FatalProviderError, HistoryError, RateLimited, RetryPolicy
from stockpipe.marketdata.history.base import TransientProviderError, number, paced_call
from stockpipe.marketdata.ratelimit import RateBudget

FAST = RetryPolicy(attempts=3, initial_wait_s=0.001, max_wait_s=0.002, rate_limit_pause_s=0.001)


class Flaky:
    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "bars"


def test_5xx_and_429_are_retried_each_try_on_the_budget() -> None:
    budget = RateBudget(per_minute=6000)
    call = Flaky(TransientProviderError("HTTP 502", 502), RateLimited("HTTP 429"))
    assert paced_call("test", budget, FAST, call) == "bars"
    assert call.calls == 3
    assert budget.calls == 3


def test_a_429_pauses_every_caller_of_the_budget() -> None:
    budget = RateBudget(per_minute=6000)
    paused: list[float] = []
    budget.penalize = paused.append  # type: ignore[method-assign]
    paced_call("test", budget, FAST, Flaky(RateLimited("HTTP 429", retry_after_s=0.003)))
    assert paused == [0.003]


def test_a_429_that_outlasts_the_retries_is_fatal() -> None:
    call = Flaky(*(RateLimited("HTTP 429") for _ in range(3)))
    with pytest.raises(FatalProviderError, match="allowance is used up"):
        paced_call("tiingo", RateBudget(per_minute=6000), FAST, call)
    assert call.calls == 3


def test_other_errors_are_not_retried() -> None:
    call = Flaky(HistoryError("HTTP 422"))
    with pytest.raises(HistoryError, match="422"):
        paced_call("test", RateBudget(per_minute=6000), FAST, call)
    assert call.calls == 1


def test_transient_errors_surface_after_the_last_try() -> None:
    call = Flaky(*(TransientProviderError("HTTP 503", 503) for _ in range(3)))
    with pytest.raises(TransientProviderError):
        paced_call("test", RateBudget(per_minute=6000), FAST, call)
    assert call.calls == 3


@pytest.mark.parametrize(("raw", "expected"), [(1, 1.0), ("2.5", 2.5), (None, None), ("n/a", None), (True, None)])
def test_numbers_from_providers(raw: object, expected: float | None) -> None:
    value = number(raw)
    assert math.isnan(value) if expected is None else value == expected
