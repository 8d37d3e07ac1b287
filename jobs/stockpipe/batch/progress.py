"""Progress of a history job: a rich bar on a terminal, periodic structured log lines elsewhere."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from stockpipe.marketdata.ratelimit import RateBudget

log = logging.getLogger(__name__)


class Reporter(Protocol):
    def __enter__(self) -> Reporter: ...

    def __exit__(self, *exc: object) -> None: ...

    def advance(self, symbol: str) -> None: ...


class LogReporter:
    """For pods and CI: a log line every `every_s` seconds and at the end, never one per symbol."""

    def __init__(self, job: str, total: int, budget: RateBudget, every_s: float = 15.0) -> None:
        self.job, self.total, self.budget, self.every_s = job, total, budget, every_s
        self.done = 0
        self._lock = threading.Lock()
        self._started = self._last = time.monotonic()

    def __enter__(self) -> LogReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._emit()

    def _emit(self) -> None:
        elapsed = time.monotonic() - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else None
        log.info(
            "%s: %s/%s symbols",
            self.job,
            self.done,
            self.total,
            extra={
                "job": self.job,
                "symbols_done": self.done,
                "symbols_total": self.total,
                "eta_s": round(eta, 1) if eta is not None else None,
                "budget_calls_left": self.budget.remaining,
            },
        )

    def advance(self, symbol: str) -> None:
        with self._lock:
            self.done += 1
            now = time.monotonic()
            due = now - self._last >= self.every_s
            if due:
                self._last = now
        if due:
            self._emit()


class RichReporter:
    """For a terminal: symbols done, ETA and the calls left in the budget's current minute."""

    def __init__(self, job: str, total: int, budget: RateBudget) -> None:
        self.budget = budget
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("symbols"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[calls_left]} calls left this minute"),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task(job, total=total, calls_left=budget.remaining)
        self._moved: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    def __enter__(self) -> RichReporter:
        self.progress.start()
        # Log lines go through rich's redirected stderr, above the bar instead of through it.
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.__stderr__:
                handler.setStream(sys.stderr)
                self._moved.append((handler, sys.__stderr__))
        return self

    def __exit__(self, *exc: object) -> None:
        for handler, stream in self._moved:
            handler.setStream(stream)
        self.progress.stop()

    def advance(self, symbol: str) -> None:
        self.progress.update(self.task, advance=1, calls_left=self.budget.remaining)


def reporter(job: str, total: int, budget: RateBudget) -> Reporter:
    return RichReporter(job, total, budget) if sys.stderr.isatty() else LogReporter(job, total, budget)
