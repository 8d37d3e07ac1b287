from __future__ import annotations

import itertools
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


def test_late_wake_ups_do_not_push_later_slots_back() -> None:
    """Every sleep overshoots by 30% of the spacing (a busy core): the budget is still nearly used
    and never exceeded, because slots keep to their schedule instead of restarting at each wake-up."""
    clock = FakeClock()
    budget = RateBudget(per_minute=60, clock=clock, sleep=lambda s: clock.sleep(s + 0.3 * budget.interval_s))
    times = []
    for _ in range(600):
        budget.acquire()
        times.append(clock.now)
    assert max_in_window(times, 60.0) <= 60
    per_minute = 600 / ((times[-1] - times[0]) / 60)
    assert per_minute >= 0.95 * 60


def test_an_idle_gap_restarts_the_schedule_without_a_burst() -> None:
    clock = FakeClock()
    budget = RateBudget(per_minute=60, clock=clock, sleep=clock.sleep)
    budget.acquire()
    clock.sleep(30.0)  # idle: no caller for 30 s
    times = []
    for _ in range(5):
        budget.acquire()
        times.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= budget.interval_s - 1e-9


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
