"""One rate budget for every call to a provider's API, shared by all threads of a process.

Calls are spaced evenly (60 s / budget apart) and a sliding 60 s log guards the budget itself, so
the provider never sees more than `per_minute` calls in any 60 s window, nor more than
`per_second` in any second. A 429 pauses every caller for a back-off period.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


class RateBudget:
    def __init__(
        self,
        per_minute: int,
        per_second: int = 30,
        margin_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self.per_second = per_second
        # The provider counts on its own clock; keep a margin for request latency jitter.
        self.window_s = 60.0 + margin_s
        self.interval_s = self.window_s / per_minute
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._log: deque[float] = deque()
        self._next_slot = 0.0
        self._paused_until = 0.0
        self.calls = 0
        self.waited_s = 0.0

    def _wait_time(self, now: float) -> float:
        while self._log and now - self._log[0] >= self.window_s:
            self._log.popleft()
        waits = [self._next_slot - now, self._paused_until - now]
        if len(self._log) >= self.per_minute:
            waits.append(self._log[0] + self.window_s - now)
        recent = [t for t in self._log if now - t < 1.0]
        if len(recent) >= self.per_second:
            waits.append(recent[0] + 1.0 - now)
        return max(0.0, *waits)

    def acquire(self) -> float:
        """Block until a call may be made; returns how long it waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                wait = self._wait_time(now)
                if wait <= 0:
                    self._log.append(now)
                    # Slots follow the schedule, not the wake-up: a caller woken late (a busy core,
                    # sleep overshoot) does not push every later slot back. Only a gap longer than one
                    # interval (idle, paused) restarts the schedule from now; the 60 s log still
                    # guards the budget.
                    behind = now - self._next_slot
                    base = self._next_slot if behind < self.interval_s else now
                    self._next_slot = base + self.interval_s
                    self.calls += 1
                    self.waited_s += waited
                    return waited
            self._sleep(wait)
            waited += wait

    def penalize(self, seconds: float) -> None:
        """The provider answered 429: every caller pauses."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    @property
    def remaining(self) -> int:
        """Calls still allowed in the current 60 s window."""
        with self._lock:
            now = self._clock()
            while self._log and now - self._log[0] >= self.window_s:
                self._log.popleft()
            return self.per_minute - len(self._log)


def retry_after_seconds(value: str | None, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> float | None:
    """HTTP Retry-After (delay-seconds or an HTTP-date) as seconds from now; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())
