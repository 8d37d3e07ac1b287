# size: the batch jobs (incremental, backfill, gap-fill) share one plan/fetch/write cycle defined here.
"""The history jobs: daily incremental load, range backfill (year to date by default), gap backfill.

Each job plans, per symbol, the session ranges to fetch (one provider call per range), then runs
the plan: fetch under the provider's shared budget, check every bar, write the accepted bars into
the job's own deterministic objects (one per chunk of its symbols; objects that already hold the
same bytes are not rewritten), and advance each symbol's watermark once its object is durable.
Dates always come from the caller (Airflow's logical date), never from now().
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from stockpipe.batch import lakeio
from stockpipe.batch.checks import Rejection, check_bars
from stockpipe.batch.progress import reporter
from stockpipe.batch.settings import HistorySettings, build_provider
from stockpipe.lake.layout import DAILY_BARS, BatchObject
from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.marketdata.history import FatalProviderError, HistoryBar, HistoryError, HistoryProvider

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
    objects_written: int = 0
    objects_unchanged: int = 0
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
            "objects_written": self.objects_written,
            "objects_unchanged": self.objects_unchanged,
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


@dataclass
class _Chunk:
    """One object of the job being filled: the accepted bars of its symbols as they arrive."""

    obj: BatchObject
    waiting: int  # symbols of the plan still being fetched
    bars: list[HistoryBar] = field(default_factory=list)
    symbols: dict[str, date] = field(default_factory=dict)  # symbol -> newest accepted session


class HistoryRun:
    """Runs one job's fetch plan against a provider and a lake.

    The provider's budget alone sets the pace: `history_concurrency` fetchers do nothing but paced
    calls and hand each answer to a bounded queue; this thread checks the bars and fills the job's
    objects (chunks of its symbols, in symbol order), and a chunk is encoded and written on a writer
    thread once its last symbol is in. So neither a slow lake nor a busy core holds a call back,
    and a 429 still pauses every fetcher (they share the budget).
    """

    def __init__(
        self,
        job: str,
        settings: HistorySettings,
        provider: HistoryProvider,
        lake: Lake,
        start: date,
        end: date,
        symbols: Sequence[str],
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.lake = lake
        self.start, self.end = start, end
        self.summary = JobSummary(job=job, provider=provider.name, start=start, end=end)
        self.watermarks = lakeio.Watermarks.load(lake)
        self.holdings = lakeio.Holdings()
        # Chunks follow the job's whole (sorted) symbol list, never the plan: the same job always
        # puts a symbol in the same object, whatever an earlier run of it already loaded.
        self.symbols = sorted(set(symbols))
        sessions = max(1, len(calendar.sessions_between(start, end)))
        self.per_chunk = max(1, settings.history_rows_per_object // sessions)
        self._position = {s: i for i, s in enumerate(self.symbols)}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reasons: Counter[str] = Counter()
        self._bug: BaseException | None = None  # a bug in a worker, raised by run()

    def chunk_of(self, symbol: str) -> BatchObject:
        return BatchObject(DAILY_BARS, self.summary.job, self.start, self.end, self._position[symbol] // self.per_chunk)

    def present(self, symbol: str, sessions: Sequence[date]) -> set[date]:
        held = self.holdings.sessions(symbol)
        return {d for d in sessions if d in held}

    def load_listing(self, contents: bool = True) -> None:
        self.holdings = lakeio.list_daily_bars(self.lake, self.start, self.end, contents=contents)

    # -- checking ------------------------------------------------------------------------------
    def _reject(self, rejections: list[Rejection]) -> None:
        for r in rejections:
            log.warning("rejected bar %s", r, extra={"symbol": r.symbol, "day": r.day.isoformat(), "reason": r.reason})
        self.summary.bars_rejected += len(rejections)
        self._reasons.update(r.reason for r in rejections)
        room = MAX_REJECTIONS_KEPT - len(self.summary.rejected_examples)
        self.summary.rejected_examples.extend(str(r) for r in rejections[: max(room, 0)])

    # -- fetching (the budget's pace) -------------------------------------------------------------
    def _fetch_symbol(self, symbol: str, fetches: Sequence[Fetch], out: queue.Queue[_Event]) -> None:
        """Every fetch of one symbol, each answer handed on; always ends with the symbol's `done`."""
        outcome: str | BaseException = "ok"
        try:
            for f in fetches:
                if self._stop.is_set():
                    outcome = "stopped"
                    break
                bars = self.provider.fetch(f.symbol, f.start, f.end)
                out.put(_Event(symbol, f, bars))
        except BaseException as exc:  # judged on the checking thread, which owns the summary
            outcome = exc
            if not isinstance(exc, HistoryError) or isinstance(exc, FatalProviderError):
                self._stop.set()
        out.put(_Event(symbol, None, None, outcome))

    # -- writing (off the fetch path) -----------------------------------------------------------
    def _write_chunk(self, chunk: _Chunk) -> bool:
        """Encode and write one object (merged into what an earlier run of the job wrote); False if unchanged."""
        table = lakeio.bars_table(chunk.bars, self.provider.name)
        info = self.holdings.objects.get(chunk.obj.key)
        if info is not None:
            try:
                table = lakeio.merge(lakeio.decode(self.lake.read(chunk.obj.key)), table)
            except FileNotFoundError:
                info = None
        data = lakeio.encode(table)
        if lakeio.same_content(self.lake, info, data):
            return False
        self.lake.write_atomic(chunk.obj.key, data)
        return True

    def _written(self, chunk: _Chunk, future: Future[bool]) -> None:
        try:
            wrote = future.result()
        except OSError as exc:
            # The lake is down or refuses writes: no other symbol will fare better.
            with self._lock:
                if self.summary.fatal is None:
                    self.summary.fatal = f"lake {self.lake.url}: {exc}"
            self._stop.set()
            return
        except BaseException as exc:
            with self._lock:
                self._bug = self._bug or exc
            self._stop.set()
            return
        with self._lock:
            if wrote:
                self.summary.objects_written += 1
                self.summary.bars_written += len(chunk.bars)
            else:
                self.summary.objects_unchanged += 1
                self.summary.bars_unchanged += len(chunk.bars)
            for symbol, newest in chunk.symbols.items():
                # Only after the symbol's object is durable.
                self.watermarks.advance(symbol, newest)

    # -- the plan ------------------------------------------------------------------------------
    def run(self, plan: dict[str, list[Fetch]], up_to_date: int = 0) -> JobSummary:
        started = time.monotonic()
        self.summary.symbols = len(plan) + up_to_date
        self.summary.symbols_up_to_date = up_to_date
        work = [(s, plan[s]) for s in sorted(plan, key=lambda s: self._position.get(s, -1)) if plan[s]]
        self.summary.symbols_up_to_date += len(plan) - len(work)
        for symbol, _ in work:
            if symbol not in self._position:
                raise HistoryJobError(f"{symbol} is in the plan but not among the job's symbols")
        chunks: dict[BatchObject, _Chunk] = {}
        for symbol, _ in work:
            obj = self.chunk_of(symbol)
            chunks.setdefault(obj, _Chunk(obj, 0)).waiting += 1
        self._bug = None
        # Room for every fetcher to hand over a few answers while this thread is busy.
        events: queue.Queue[_Event] = queue.Queue(maxsize=4 * self.settings.history_concurrency)
        try:
            with (
                reporter(self.summary.job, len(work), self.provider.budget) as progress,
                ThreadPoolExecutor(self.settings.history_write_concurrency, thread_name_prefix="lake-write") as writers,
                ThreadPoolExecutor(self.settings.history_concurrency, thread_name_prefix="history") as fetchers,
            ):
                for symbol, fetches in work:
                    fetchers.submit(self._fetch_symbol, symbol, fetches, events)
                done = 0
                while done < len(work):
                    event = events.get()
                    chunk = chunks[self.chunk_of(event.symbol)]
                    if event.fetch is not None:
                        self._accept(chunk, event)
                        continue
                    done += 1
                    self._finish(chunk, event)
                    progress.advance(event.symbol)
                    chunk.waiting -= 1
                    if chunk.waiting == 0 and chunk.bars:
                        future = writers.submit(self._write_chunk, chunk)
                        future.add_done_callback(functools.partial(self._written, chunk))
        finally:
            # Progress so far is kept even when the job stops early: the next run resumes from it.
            self.watermarks.save()
        if self._bug is not None:
            raise self._bug
        self.summary.rejected_reasons = dict(self._reasons)
        self.summary.duration_s = time.monotonic() - started
        log.info(
            "%s: %s symbols loaded, %s failed, %s bars in %s objects written, %s unchanged, %s rejected, %s calls",
            self.summary.job,
            self.summary.symbols_loaded,
            len(self.summary.symbols_failed),
            self.summary.bars_written,
            self.summary.objects_written,
            self.summary.bars_unchanged,
            self.summary.bars_rejected,
            self.summary.calls,
            extra={"summary": self.summary.to_dict()},
        )
        return self.summary

    def _accept(self, chunk: _Chunk, event: _Event) -> None:
        assert event.fetch is not None
        assert event.bars is not None
        f = event.fetch
        self.summary.calls += 1
        accepted, rejected = check_bars(f.symbol, event.bars, f.start, f.end)
        if rejected:
            self._reject(rejected)
        if accepted:
            chunk.bars.extend(accepted)
            newest = chunk.symbols.get(f.symbol)
            chunk.symbols[f.symbol] = accepted[-1].day if newest is None else max(newest, accepted[-1].day)

    def _finish(self, chunk: _Chunk, event: _Event) -> None:
        """A symbol's fetches ended: count it, or record why it failed."""
        outcome, symbol = event.outcome, event.symbol
        if outcome == "ok":
            self.summary.symbols_loaded += 1
            if symbol not in chunk.symbols:
                self.summary.symbols_without_data.append(symbol)
            return
        # Bars it did get are still written, but its watermark stays: the next run fetches it again.
        chunk.symbols.pop(symbol, None)
        if isinstance(outcome, FatalProviderError):
            if self.summary.fatal is None:
                self.summary.fatal = str(outcome)
        elif isinstance(outcome, HistoryError):
            log.error("%s: %s", symbol, outcome, extra={"symbol": symbol})
            self.summary.symbols_failed[symbol] = str(outcome)
        elif isinstance(outcome, BaseException):
            with self._lock:
                self._bug = self._bug or outcome


@dataclass(frozen=True)
class _Event:
    """A fetcher's answer (fetch and bars) or, with fetch None, the end of a symbol and its outcome."""

    symbol: str
    fetch: Fetch | None
    bars: list[HistoryBar] | None
    outcome: str | BaseException = "ok"


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
    run = HistoryRun("daily", settings, provider, lake, day, day, symbols)
    plan: dict[str, list[Fetch]] = {}
    for symbol in symbols:
        mark = run.watermarks.get(symbol)
        if mark is not None and mark >= day:
            plan[symbol] = []  # already loaded (a re-run): nothing to fetch
            continue
        # Catch up on sessions missed since the watermark, in the same single call.
        first = day if mark is None else min(calendar.sessions_between(mark, day)[1:] or [day])
        plan[symbol] = [Fetch(symbol, first, day)]
    if any(plan.values()):
        run.load_listing(contents=False)  # only the job's own objects, to merge with or leave alone
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
    run = HistoryRun("backfill", settings, provider, lake, start, end, symbols)
    run.load_listing()
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
    run = HistoryRun("gaps", settings, provider, lake, start, end, symbols)
    run.load_listing()
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
