"""The history jobs: daily incremental load, range backfill (year to date by default), gap backfill.

Each job plans, per symbol, the session ranges to fetch (one provider call per range), then runs
the plan: fetch under the provider's shared budget, check every bar, write each accepted bar as
its own deterministic object (skipping objects that already hold the same bytes), and advance the
symbol's watermark. Dates always come from the caller (Airflow's logical date), never from now().
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from stockpipe.batch import lakeio
from stockpipe.batch.checks import Rejection, check_bars
from stockpipe.batch.progress import Reporter, reporter
from stockpipe.batch.settings import HistorySettings, build_provider
from stockpipe.lake.store import Lake, ObjectInfo
from stockpipe.marketdata import calendar
from stockpipe.marketdata.history import FatalProviderError, HistoryError, HistoryProvider

log = logging.getLogger(__name__)

MAX_REJECTIONS_KEPT = 50  # examples kept in the summary; every one is logged and counted


class HistoryJobError(Exception):
    """The job failed; the message is the one line the user sees."""


@dataclass(frozen=True)
class Fetch:
    symbol: str
    start: date
    end: date


@dataclass
class JobSummary:
    job: str
    provider: str
    start: date | None
    end: date | None
    symbols: int = 0
    symbols_loaded: int = 0
    symbols_up_to_date: int = 0
    symbols_failed: dict[str, str] = field(default_factory=dict)
    symbols_without_data: list[str] = field(default_factory=list)
    calls: int = 0
    bars_written: int = 0
    bars_unchanged: int = 0
    bars_rejected: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    rejected_examples: list[str] = field(default_factory=list)
    fatal: str | None = None
    skipped: str | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.fatal is None and not self.symbols_failed

    def to_dict(self) -> dict[str, object]:
        return {
            "job": self.job,
            "provider": self.provider,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "ok": self.ok,
            "skipped": self.skipped,
            "fatal": self.fatal,
            "symbols": self.symbols,
            "symbols_loaded": self.symbols_loaded,
            "symbols_up_to_date": self.symbols_up_to_date,
            "symbols_failed": dict(sorted(self.symbols_failed.items())),
            "symbols_without_data": sorted(self.symbols_without_data),
            "calls": self.calls,
            "bars_written": self.bars_written,
            "bars_unchanged": self.bars_unchanged,
            "bars_rejected": self.bars_rejected,
            "rejected_reasons": dict(sorted(self.rejected_reasons.items())),
            "rejected_examples": self.rejected_examples,
            "duration_s": round(self.duration_s, 3),
        }


def last_closed_session(now: datetime | None = None) -> date:
    """The newest session whose close has passed: the default end of backfills run by hand."""
    now = now or datetime.now(UTC)
    day = now.astimezone(calendar.NEW_YORK).date()
    s = calendar.session(day)
    return day if s is not None and s.close_utc <= now else calendar.previous_session(day)


def missing_runs(sessions: Sequence[date], present: set[date]) -> list[tuple[date, date]]:
    """Consecutive runs of sessions absent from `present`, as (first, last) pairs."""
    runs: list[tuple[date, date]] = []
    first: date | None = None
    previous: date | None = None
    for day in sessions:
        if day in present:
            if first is not None and previous is not None:
                runs.append((first, previous))
            first = None
        elif first is None:
            first = day
        previous = day
    if first is not None and previous is not None:
        runs.append((first, previous))
    return runs


class HistoryRun:
    """Runs one job's fetch plan against a provider and a lake."""

    def __init__(
        self,
        job: str,
        settings: HistorySettings,
        provider: HistoryProvider,
        lake: Lake,
        start: date | None,
        end: date | None,
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.lake = lake
        self.summary = JobSummary(job=job, provider=provider.name, start=start, end=end)
        self.watermarks = lakeio.Watermarks.load(lake)
        self.existing: dict[date, dict[str, ObjectInfo]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reasons: Counter[str] = Counter()
        self._writers = ThreadPoolExecutor(settings.history_write_concurrency, thread_name_prefix="lake-write")

    def present(self, symbol: str, sessions: Sequence[date]) -> set[date]:
        return {d for d in sessions if symbol in self.existing.get(d, {})}

    def load_listing(self, sessions: Sequence[date]) -> None:
        self.existing = lakeio.list_daily_bars(self.lake, sessions)

    # -- one symbol ----------------------------------------------------------------------------
    def _reject(self, rejections: list[Rejection]) -> None:
        for r in rejections:
            log.warning("rejected bar %s", r, extra={"symbol": r.symbol, "day": r.day.isoformat(), "reason": r.reason})
        with self._lock:
            self.summary.bars_rejected += len(rejections)
            self._reasons.update(r.reason for r in rejections)
            room = MAX_REJECTIONS_KEPT - len(self.summary.rejected_examples)
            self.summary.rejected_examples.extend(str(r) for r in rejections[: max(room, 0)])

    def _write(self, key: str, data: bytes, info: ObjectInfo | None) -> bool:
        if lakeio.same_content(self.lake, info, data):
            return False
        self.lake.write_atomic(key, data)
        return True

    def _load_symbol(self, symbol: str, fetches: Sequence[Fetch]) -> None:
        written = unchanged = 0
        newest: date | None = None
        for f in fetches:
            if self._stop.is_set():
                return
            bars = self.provider.fetch(f.symbol, f.start, f.end)
            with self._lock:
                self.summary.calls += 1
            accepted, rejected = check_bars(symbol, bars, f.start, f.end)
            if rejected:
                self._reject(rejected)
            if not accepted:
                continue
            encoded = lakeio.encode_bars(accepted, self.provider.name)
            futures = [
                self._writers.submit(self._write, key, data, self.existing.get(bar.day, {}).get(symbol))
                for bar, (key, data) in zip(accepted, encoded, strict=True)
            ]
            for future in futures:
                if future.result():
                    written += 1
                else:
                    unchanged += 1
            newest = accepted[-1].day if newest is None else max(newest, accepted[-1].day)
        with self._lock:
            self.summary.bars_written += written
            self.summary.bars_unchanged += unchanged
            self.summary.symbols_loaded += 1
            if newest is None:
                self.summary.symbols_without_data.append(symbol)
            else:
                # Only after every object of the symbol is durable.
                self.watermarks.advance(symbol, newest)
        log.debug("%s: %s written, %s unchanged", symbol, written, unchanged, extra={"symbol": symbol})

    def _guarded(self, symbol: str, fetches: Sequence[Fetch], progress: Reporter) -> None:
        try:
            self._load_symbol(symbol, fetches)
        except FatalProviderError as exc:
            with self._lock:
                if self.summary.fatal is None:
                    self.summary.fatal = str(exc)
            self._stop.set()
        except HistoryError as exc:
            log.error("%s: %s", symbol, exc, extra={"symbol": symbol})
            with self._lock:
                self.summary.symbols_failed[symbol] = str(exc)
        except OSError as exc:
            # The lake is down or refuses writes: no other symbol will fare better.
            with self._lock:
                if self.summary.fatal is None:
                    self.summary.fatal = f"lake {self.lake.url}: {exc}"
            self._stop.set()
        except Exception:
            self._stop.set()  # a bug: stop the other workers, the error surfaces in run()
            raise
        finally:
            progress.advance(symbol)

    # -- the plan ------------------------------------------------------------------------------
    def run(self, plan: dict[str, list[Fetch]], up_to_date: int = 0) -> JobSummary:
        started = time.monotonic()
        self.summary.symbols = len(plan) + up_to_date
        self.summary.symbols_up_to_date = up_to_date
        work = {s: f for s, f in plan.items() if f}
        self.summary.symbols_up_to_date += len(plan) - len(work)
        try:
            with (
                reporter(self.summary.job, len(work), self.provider.budget) as progress,
                ThreadPoolExecutor(self.settings.history_concurrency, thread_name_prefix="history") as pool,
            ):
                futures: list[Future[None]] = [pool.submit(self._guarded, s, f, progress) for s, f in work.items()]
                for future in futures:
                    future.result()  # a bug in a worker surfaces here, not silently
        finally:
            self._writers.shutdown(wait=True)
            # Progress so far is kept even when the job stops early: the next run resumes from it.
            self.watermarks.save()
        self.summary.rejected_reasons = dict(self._reasons)
        self.summary.duration_s = time.monotonic() - started
        log.info(
            "%s: %s symbols loaded, %s failed, %s bars written, %s unchanged, %s rejected, %s calls",
            self.summary.job,
            self.summary.symbols_loaded,
            len(self.summary.symbols_failed),
            self.summary.bars_written,
            self.summary.bars_unchanged,
            self.summary.bars_rejected,
            self.summary.calls,
            extra={"summary": self.summary.to_dict()},
        )
        return self.summary


def _sessions(start: date, end: date) -> list[date]:
    if end < start:
        raise HistoryJobError(f"the range is empty: start {start} is after end {end}")
    try:
        return calendar.sessions_between(start, end)
    except calendar.CalendarRangeError as exc:
        raise HistoryJobError(str(exc)) from None


def _context(
    settings: HistorySettings, provider: HistoryProvider | None, lake: Lake | None
) -> tuple[HistoryProvider, Lake]:
    return provider or build_provider(settings), lake or Lake(settings.lake)


def daily(
    settings: HistorySettings,
    day: date,
    *,
    provider: HistoryProvider | None = None,
    lake: Lake | None = None,
    now: datetime | None = None,
) -> JobSummary:
    """Load the session `day` (the run's logical date) for every symbol, catching up from its watermark."""
    try:
        session = calendar.session(day)
    except calendar.CalendarRangeError as exc:
        raise HistoryJobError(str(exc)) from None
    name = provider.name if provider else settings.history_provider
    if session is None:
        summary = JobSummary(job="daily", provider=name, start=day, end=day)
        summary.skipped = f"{day} ({day:%A}) is not an NYSE session: nothing to load"
        return summary
    if session.close_utc > (now or datetime.now(UTC)):
        # A guard only: the bar of a session still trading is not final.
        raise HistoryJobError(f"the session of {day} has not closed yet ({session.close_utc:%Y-%m-%d %H:%M} UTC)")
    symbols = settings.symbols()
    provider, lake = _context(settings, provider, lake)
    run = HistoryRun("daily", settings, provider, lake, day, day)
    plan: dict[str, list[Fetch]] = {}
    for symbol in symbols:
        mark = run.watermarks.get(symbol)
        if mark is not None and mark >= day:
            plan[symbol] = []  # already loaded (a re-run): nothing to fetch
            continue
        # Catch up on sessions missed since the watermark, in the same single call.
        first = day if mark is None else min(calendar.sessions_between(mark, day)[1:] or [day])
        plan[symbol] = [Fetch(symbol, first, day)]
    run.load_listing(sorted({d for fs in plan.values() for f in fs for d in _sessions(f.start, f.end)}))
    return run.run(plan)


def backfill(
    settings: HistorySettings,
    start: date,
    end: date,
    *,
    refetch: bool = False,
    provider: HistoryProvider | None = None,
    lake: Lake | None = None,
) -> JobSummary:
    """Load every session from start to end: one call per symbol that misses any (every symbol with refetch)."""
    sessions = _sessions(start, end)
    symbols = settings.symbols()
    provider, lake = _context(settings, provider, lake)
    run = HistoryRun("backfill", settings, provider, lake, start, end)
    run.load_listing(sessions)
    plan = {
        s: [Fetch(s, start, end)] if refetch or len(run.present(s, sessions)) < len(sessions) else [] for s in symbols
    }
    return run.run(plan)


def gaps(
    settings: HistorySettings,
    start: date,
    end: date,
    *,
    provider: HistoryProvider | None = None,
    lake: Lake | None = None,
) -> JobSummary:
    """Compare the NYSE sessions with the lake per symbol and fetch only the missing runs of sessions."""
    sessions = _sessions(start, end)
    symbols = settings.symbols()
    provider, lake = _context(settings, provider, lake)
    run = HistoryRun("gaps", settings, provider, lake, start, end)
    run.load_listing(sessions)
    plan = {s: [Fetch(s, a, b) for a, b in missing_runs(sessions, run.present(s, sessions))] for s in symbols}
    missing = {s: sum(len(_sessions(f.start, f.end)) for f in fs) for s, fs in plan.items() if fs}
    if missing:
        log.info(
            "gaps: %s sessions missing over %s symbols",
            sum(missing.values()),
            len(missing),
            extra={"missing": dict(sorted(missing.items()))},
        )
    return run.run(plan)
