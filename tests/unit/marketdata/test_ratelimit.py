from __future__ import annotations

import threading

from stockpipe.marketdata.ratelimit import RateBudget


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def max_in_window(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_budget_never_exceeded_in_any_window_and_nearly_used() -> None:
    clock = FakeClock()
    budget = RateBudget(per_minute=60, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(600):
        budget.acquire()
        times.append(clock.now)
    assert max_in_window(times, 60.0) <= 60
    assert max_in_window(times, 1.0) <= 30
    per_minute = 600 / ((times[-1] - times[0]) / 60)
    assert per_minute >= 0.95 * 60


def test_per_second_cap_with_a_large_budget() -> None:
    clock = FakeClock()
    budget = RateBudget(per_minute=6000, per_second=30, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(300):
        budget.acquire()
        times.append(clock.now)
    assert max_in_window(times, 1.0) <= 30


def test_penalty_pauses_every_caller() -> None:
    clock = FakeClock()
    budget = RateBudget(per_minute=60, clock=clock, sleep=clock.sleep)
    budget.acquire()
    budget.penalize(10.0)
    start = clock.now
    budget.acquire()
    assert clock.now - start >= 10.0
    assert budget.remaining == 58
