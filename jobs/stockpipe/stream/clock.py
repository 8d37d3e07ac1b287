"""Wall-clock time for live runs, and an exact accelerated clock for replaying a session."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> bool:
        """Sleep; returns False when woken because the run is stopping."""


class WallClock:
    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> bool:
        return not self.stop.wait(max(0.0, seconds))


class ReplayClock:
    """Simulated time that moves only by sleep(), exactly, paced at `speed` x real time.

    A replay of the same session therefore polls at the same simulated instants every time.
    """

    def __init__(self, start: datetime, speed: float, stop: threading.Event) -> None:
        self._now = start
        self.speed = speed
        self.stop = stop

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> bool:
        seconds = max(0.0, seconds)
        if self.stop.wait(seconds / self.speed if self.speed > 0 else 0):
            return False
        self._now += timedelta(seconds=seconds)
        return True
