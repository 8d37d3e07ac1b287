"""`stockpipe load continuous`: the intraday path's bronze loader, a long-running workload.

The consumer announces every stream object it wrote on the `lake-objects` topic (after the object is
durable, before it commits). This loader gathers the announced keys for a moment (`settle_seconds`, so
the files that close at one window boundary load together), then, holding the warehouse writer lock:
1. loads those objects through the same target and load ledger as `stockpipe load bronze` (an object
   the ledger already has with the same size and etag is skipped: a repeated notice, a restart, an
   object Airflow's load took first - the ledger decides, so nothing loads twice);
2. runs `dbt build` of the intraday models only (`dbt_select`), so the rows become queryable in gold;
3. reads what the build made visible: `fetched_at` of the new gold rows gives the fetched-to-gold
   latency (a histogram), the newest one the freshness gauge and the lake's freshness state that
   pipeline_watch reads.
Then it commits the notices' offsets. Killed anywhere, it loses nothing: uncommitted notices come
again, a half-done batch was rolled back, and the first build after a start catches gold up.

Notices are hints: every `catchup_seconds` (and at start) the loader lists the stream datasets' recent
`dt=` directories and loads whatever the ledger lacks, so a lost notice delays an object, never drops
it. Airflow keeps the daily, backfill and full builds; it and this loader never write DuckDB at once
(stockpipe.warehouse.writerlock).
"""

# SQL is built here from identifiers defined in code.
# ruff: noqa: S608

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException
from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field

from stockpipe.lake import layout
from stockpipe.lake.layout import dt_prefix
from stockpipe.lake.notices import ObjectNotice
from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.settings import KafkaSettings
from stockpipe.stream.heartbeat import Heartbeat
from stockpipe.warehouse.datasets import BY_NAME, Dataset, parse_object_key
from stockpipe.warehouse.gold_freshness import GoldFreshness, write_gold_freshness
from stockpipe.warehouse.gold_query import GoldQuery, as_date, gold_reader, observe_buckets, utc
from stockpipe.warehouse.listing import LakeObject
from stockpipe.warehouse.loader import Target, batches, new_load_id
from stockpipe.warehouse.settings import WarehouseSettings
from stockpipe.warehouse.snowpark_session import KeptSession
from stockpipe.warehouse.targets import open_target
from stockpipe.warehouse.writerlock import warehouse_writer

log = logging.getLogger("stockpipe.continuous")

STREAM_DATASETS: tuple[Dataset, ...] = tuple(BY_NAME[name] for name in layout.STREAM_DATASETS)
# The intraday gold models and what they read from (the dashboard's intraday views and freshness).
INTRADAY_MODELS = ["slv_quotes", "slv_trades", "fct_quotes", "fct_trades", "mart_intraday_range", "dim_symbol"]
# Gold tables whose rows carry fetched_at and loaded_at: what "queryable in gold" is measured on.
GOLD_FACTS = ("fct_quotes", "fct_trades")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

NOTICES = Counter("stockpipe_bronze_loader_notices_total", "lake-objects notices read")
OBJECTS = Counter("stockpipe_bronze_loader_objects_loaded_total", "Lake objects loaded", ["dataset", "found_by"])
ROWS = Counter("stockpipe_bronze_loader_rows_loaded_total", "Rows read from loaded objects", ["dataset"])
DROPPED = Counter(
    "stockpipe_bronze_loader_notices_dropped_total", "Notices dropped over max_pending_notices (found by listing)"
)
SKIPPED = Counter("stockpipe_bronze_loader_objects_skipped_total", "Notified objects the ledger already had")
CYCLES = Counter("stockpipe_bronze_loader_cycles_total", "Load cycles", ["outcome"])
BUILDS = Counter("stockpipe_bronze_loader_dbt_builds_total", "Intraday dbt builds", ["outcome"])
CYCLE_SECONDS = Histogram(
    "stockpipe_bronze_loader_cycle_seconds", "A cycle: lock, load, build, measure", buckets=(0.5, 1, 2, 5, 10, 30, 60)
)
LOCK_WAIT = Histogram(
    "stockpipe_bronze_loader_lock_wait_seconds", "Waiting for the warehouse writer", buckets=(0.01, 0.1, 1, 10, 60)
)
FETCHED_TO_GOLD = Histogram(
    "stockpipe_fetched_to_gold_seconds",
    "From a row's fetched_at to the end of the build that made it queryable in gold",
    buckets=(5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 900),
)
GOLD_FRESHNESS = Gauge(
    "stockpipe_gold_freshness_seconds",
    "Age of the newest intraday gold row while the NYSE session is open (NaN when closed)",
)
LAST_BUILD = Gauge("stockpipe_bronze_loader_last_build_timestamp_seconds", "When the last intraday build finished")


class ContinuousLoaderSettings(WarehouseSettings):
    kafka: KafkaSettings = KafkaSettings()
    group_id: str = "stockpipe-bronze-loader"
    metrics_port: int = Field(9103, ge=0, le=65535)
    heartbeat_seconds: float = Field(30.0, gt=0)
    settle_seconds: float = Field(
        2.0, ge=0, le=60, description="wait this long after a notice for the files closing with it"
    )
    catchup_seconds: float = Field(300.0, gt=0, description="how often recent dt= directories are listed")
    catchup_days: int = Field(2, ge=1, le=31, description="UTC days of stream directories a catch-up lists")
    dbt_select: list[str] = Field(default_factory=lambda: list(INTRADAY_MODELS), min_length=1)
    dbt_target_path: Path = Field(Path("target/continuous"), description="dbt target dir (relative to the project)")
    build_dbt: bool = Field(True, description="false: bronze only (gold left to Airflow's dbt_build)")
    min_build_interval_seconds: float = Field(
        0.0,
        ge=0,
        description="start intraday builds at most this often (loads land in bronze between them); on Snowflake "
        "a longer interval lets the virtual warehouse auto-suspend",
    )
    lock_timeout_seconds: float = Field(600.0, gt=0)
    retry_seconds: float = Field(10.0, gt=0, description="pause after a failed cycle")
    latency_log: Path | None = Field(None, description="append each build's fetched-to-gold samples here (JSON lines)")
    max_pending_notices: int = Field(
        100_000, ge=1, description="notices held for a cycle; beyond, the oldest are dropped (the listing finds them)"
    )


def recent_objects(lake: Lake, days: int, today: date | None = None) -> list[LakeObject]:
    """The stream objects of the last `days` UTC dates (the catch-up listing: recent directories only)."""
    today = today or datetime.now(UTC).date()
    found: list[LakeObject] = []
    for dataset in STREAM_DATASETS:
        for back in range(days):
            for info in lake.walk(dt_prefix(dataset.name, today - timedelta(days=back))):
                name = parse_object_key(info.key)
                if name is not None:
                    found.append(LakeObject(info, name))
    return found


def pending_objects(target: Target, objects: Sequence[LakeObject]) -> list[LakeObject]:
    """The objects the ledger does not have with the same size and etag."""
    if not objects:
        return []
    dirs = sorted({o.dir for o in objects})
    known = target.ledger(STREAM_DATASETS, dirs)
    return [o for o in objects if known.get(o.key) != (o.info.size, o.info.etag)]


class ContinuousLoader:
    def __init__(
        self,
        settings: ContinuousLoaderSettings,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clock = clock  # when builds are due (min_build_interval_seconds)
        # On Snowflake: this workload's one session, kept across cycles (loads and gold reads).
        self.snowflake = (
            KeptSession(settings.warehouse.snowflake, "stockpipe-continuous-loader")
            if settings.warehouse.target == "snowflake"
            else None
        )
        self.last_build_started = -math.inf
        self.unbuilt = False  # rows loaded since the last build began
        self.stop = stop or threading.Event()
        self.lake = Lake(settings.lake)
        self.pending: dict[str, float] = {}  # notified key -> when its notice arrived (monotonic)
        self.consumer = Consumer(
            {
                **settings.kafka.client_config(),
                "group.id": settings.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 45_000,
                "max.poll.interval.ms": int(settings.lock_timeout_seconds * 1000) + 600_000,
            }
        )
        self.heartbeat = Heartbeat(settings.kafka, "bronze-loader", settings.heartbeat_seconds)
        self.last_catchup = -math.inf
        self.last_loop = time.monotonic()
        self.failing_since: float | None = None
        self.built_once = False
        self.gold_high_water: dict[str, Any] = {}  # gold fact -> the newest loaded_at already measured
        self.newest_fetched: datetime | None = None
        self.cycles = 0
        self.loaded_objects = 0
        self.dropped_notices = 0
        self.cycles_failed = 0
        self.cycle_seconds: deque[float] = deque(maxlen=1000)  # the recent cycles' durations (chaos, tests)
        self.lock_waits: deque[float] = deque(maxlen=1000)  # and their waits for the warehouse writer lock
        GOLD_FRESHNESS.set_function(self.gold_age)

    # -- observability ---------------------------------------------------------------------------
    def gold_age(self, now: datetime | None = None) -> float:
        now = now or datetime.now(UTC)
        if self.newest_fetched is None or not calendar.is_open(now):
            return math.nan
        return max(0.0, (now - self.newest_fetched).total_seconds())

    def health(self) -> tuple[bool, dict[str, Any]]:
        loop_age = time.monotonic() - self.last_loop
        failing = 0.0 if self.failing_since is None else time.monotonic() - self.failing_since
        ok = loop_age < 120 and failing < max(300.0, 3 * self.settings.catchup_seconds)
        return ok, {
            "loop_age_s": round(loop_age, 1),
            "failing_for_s": round(failing, 1),
            "cycles": self.cycles,
            "loaded_objects": self.loaded_objects,
            "pending_notices": len(self.pending),
            "newest_gold_fetched_at": self.newest_fetched.isoformat() if self.newest_fetched else None,
        }

    # -- the loop --------------------------------------------------------------------------------
    def run(self, max_cycles: int | None = None) -> None:
        self.consumer.subscribe([self.settings.kafka.topic_lake_objects])
        try:
            while not self.stop.is_set():
                self.last_loop = time.monotonic()
                self._read_notices()
                now = time.monotonic()
                catchup = now - self.last_catchup >= self.settings.catchup_seconds or not self.built_once
                settled = bool(self.pending) and now - min(self.pending.values()) >= self.settings.settle_seconds
                if catchup or settled or (self.unbuilt and self._build_due()):
                    if self._cycle(catchup):
                        self.failing_since = None
                    else:
                        self.failing_since = self.failing_since or now
                        self.stop.wait(self.settings.retry_seconds)
                    if max_cycles is not None and self.cycles >= max_cycles:
                        break
                self.heartbeat.beat_if_due({"cycles": self.cycles, "loaded_objects": self.loaded_objects})
        finally:
            self.heartbeat.close()
            self.consumer.close()
            if self.snowflake is not None:
                self.snowflake.close()

    def _read_notices(self) -> None:
        wait = 0.5 if not self.pending else max(0.0, min(0.5, self.settings.settle_seconds))
        for msg in self.consumer.consume(num_messages=1000, timeout=wait):
            if msg.error() is not None:
                log.warning("lake-objects: %s", msg.error())
                continue
            NOTICES.inc()
            notice = ObjectNotice.parse(msg.value())
            if notice is not None and parse_object_key(notice.key) is not None:
                self.pending.setdefault(notice.key, time.monotonic())
        while len(self.pending) > self.settings.max_pending_notices:
            # Bounded memory while the warehouse is away: the oldest notices go, the next catch-up
            # lists their directories (a dropped notice delays an object, never loses it).
            del self.pending[next(iter(self.pending))]
            DROPPED.inc()
            self.dropped_notices += 1
            self.last_catchup = -math.inf

    def _cycle(self, catchup: bool) -> bool:
        """One load (and build); True when it completed. Failures are logged, never raised."""
        started = time.perf_counter()
        keys = list(self.pending)
        try:
            if self.load(keys, catchup):
                self.unbuilt = True
            if self.settings.build_dbt and (not self.built_once or (self.unbuilt and self._build_due())):
                self.build_and_measure()
        except Exception as exc:  # the warehouse or the lake away, a lock held too long, a failed build
            CYCLES.labels("failed").inc()
            self.cycles_failed += 1
            log.error("cycle failed (%s: %s); retrying in %.0f s", type(exc).__name__, exc, self.settings.retry_seconds)
            return False
        for key in keys:
            self.pending.pop(key, None)
        if catchup:
            self.last_catchup = time.monotonic()
        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as exc:  # nothing consumed yet, or a rebalance: the notices come again, harmlessly
            log.debug("notice offsets not committed: %s", exc)
        self.cycles += 1
        CYCLES.labels("catchup" if catchup else "notified").inc()
        CYCLE_SECONDS.observe(time.perf_counter() - started)
        self.cycle_seconds.append(time.perf_counter() - started)
        return True

    def _build_due(self) -> bool:
        return self.clock() - self.last_build_started >= self.settings.min_build_interval_seconds

    @contextmanager
    def _writer(self) -> Iterator[None]:
        with warehouse_writer(self.settings, self.settings.lock_timeout_seconds) as waited:
            LOCK_WAIT.observe(waited)
            self.lock_waits.append(waited)
            yield

    def load(self, keys: Sequence[str], catchup: bool) -> int:
        """Load the notified objects (and, on a catch-up, the recent ones); returns the objects loaded."""
        objects: dict[str, LakeObject] = {}
        wanted = set(keys)
        # One listing per notified directory, not a HEAD per notice: the listing has sizes and etags.
        for directory in sorted({key.rsplit("/", 1)[0] for key in keys}):
            listed = {}
            for info in self.lake.walk(directory):
                name = parse_object_key(info.key)
                if name is not None:
                    listed[info.key] = LakeObject(info, name)
            gone = any(k.startswith(directory + "/") and k not in listed for k in wanted)
            for key, obj in listed.items():
                # A notified object compacted away since: what replaced it is in its directory.
                if key in wanted or gone:
                    objects[key] = obj
        notified = set(objects)
        if catchup:
            for obj in recent_objects(self.lake, self.settings.catchup_days):
                objects.setdefault(obj.key, obj)
        with self._writer(), open_target(self.settings, self.lake, self.snowflake) as target:
            if not self.built_once:
                target.ensure_schema()
            todo = pending_objects(target, list(objects.values()))
            SKIPPED.inc(len(notified - {o.key for o in todo}))
            load_id = new_load_id()
            wh = self.settings.warehouse
            for batch in batches(load_id, todo, wh.batch_max_objects, wh.batch_max_bytes):
                result = target.load_batch(batch)
                for obj in batch.objects:
                    OBJECTS.labels(obj.name.dataset.name, "notice" if obj.key in notified else "listing").inc()
                for dataset, rows in result.rows.items():
                    ROWS.labels(dataset).inc(rows)
        if todo:
            log.info("loaded %d objects (%d found by listing)", len(todo), sum(o.key not in notified for o in todo))
        self.loaded_objects += len(todo)
        return len(todo)

    def build_and_measure(self) -> None:
        from stockpipe.warehouse.dbt_runner import run_dbt

        select = self.settings.dbt_select
        if not self.built_once:
            select = [f"+{s}" for s in select]  # the first build also makes whatever they read from
        # cautious: only the tests of the selected models, not those of models that merely refer to them
        args = ["build", "--indirect-selection", "cautious"]
        for s in select:
            args += ["--select", s]
        with self._writer():
            if not self.gold_high_water:
                self.gold_high_water = self._gold_loaded_at()  # rows gold held before this process built
            self.last_build_started, unbuilt = self.clock(), self.unbuilt
            self.unbuilt = False  # rows loaded from here on wait for the next build
            try:
                outcome = run_dbt(args, self.settings, target_path=self.settings.dbt_target_path)
            except BaseException:
                self.unbuilt = unbuilt
                raise
            built_at = datetime.now(UTC)
            if not outcome.success:
                self.unbuilt = unbuilt
                BUILDS.labels("failed").inc()
                raise RuntimeError(f"intraday dbt build failed: {outcome.failures() or outcome.exception}")
            BUILDS.labels("ok").inc()
            LAST_BUILD.set(built_at.timestamp())
            self.built_once = True
            self.measure(built_at)

    def _gold_loaded_at(self) -> dict[str, Any]:
        """The newest loaded_at of each gold fact (the epoch for one not built yet)."""
        newest: dict[str, Any] = {}
        with gold_reader(self.settings, self.snowflake) as query:
            for fact in GOLD_FACTS:
                try:
                    row = query(f"SELECT max(loaded_at) FROM {{gold}}.{fact}", [])
                except Exception:  # not built yet: every row of the first build is new
                    row = None
                newest[fact] = row[0][0] if row and row[0][0] is not None else _EPOCH
        return newest

    def measure(self, built_at: datetime) -> None:
        """What the build made visible: latencies of the new gold rows, the newest row for the gauge.

        Aggregated in the warehouse (one row per histogram bucket), never the new rows themselves: a
        cycle after an outage may make millions of rows visible at once.
        """
        bounds = FETCHED_TO_GOLD._upper_bounds  # what observe() compares with; +inf last
        buckets = " ".join(f"WHEN age_s <= {b!r} THEN {i}" for i, b in enumerate(bounds[:-1]))
        newest: tuple[Any, Any, Any] | None = None
        with gold_reader(self.settings, self.snowflake) as query:
            for fact in GOLD_FACTS:
                high = self.gold_high_water.get(fact, _EPOCH)
                new_rows = (
                    f"SELECT greatest({{age_s}}, 0) AS age_s, loaded_at FROM {{gold}}.{fact} "
                    "CROSS JOIN (SELECT {ts_param} AS built_at, {ts_param} AS high) AS p "
                    "WHERE loaded_at > p.high AND fetched_at IS NOT NULL"
                )
                per_bucket = query(
                    f"SELECT CASE {buckets} ELSE {len(bounds) - 1} END AS bucket, count(*), sum(age_s), "
                    f"max(loaded_at) FROM ({new_rows}) AS n GROUP BY 1",
                    [built_at, high],
                )
                if per_bucket:
                    observe_buckets(FETCHED_TO_GOLD, [(int(b), int(n), float(t)) for b, n, t, _ in per_bucket])
                    self.gold_high_water[fact] = max(r[3] for r in per_bucket)
                    if self.settings.latency_log is not None:
                        self._log_latencies(query, fact, built_at, new_rows, high)
            found = query(
                "SELECT session_date, max(fetched_at), max(quote_ts) FROM {gold}.fct_quotes "
                "WHERE session_date = (SELECT max(session_date) FROM {gold}.fct_quotes) GROUP BY session_date",
                [],
            )
            newest = found[0] if found else None
        if newest is not None and newest[1] is not None:
            self.newest_fetched = utc(newest[1])
            state = GoldFreshness(as_date(newest[0]), self.newest_fetched, utc(newest[2]), built_at)
            try:
                write_gold_freshness(self.lake, state)
            except OSError as exc:
                log.warning("gold freshness state not written: %s", exc)

    def _log_latencies(self, query: GoldQuery, fact: str, built_at: datetime, new_rows: str, high: Any) -> None:
        """Every sample into the latency log (a measurement setting), a bounded chunk at a time."""
        assert self.settings.latency_log is not None
        with open(self.settings.latency_log, "ab") as out:
            for chunk in query.chunks(f"SELECT age_s FROM ({new_rows}) AS n", [built_at, high], 100_000):
                values = [float(r[0]) for r in chunk]
                out.write(orjson.dumps({"fact": fact, "visible_at": built_at.timestamp(), "latency_s": values}) + b"\n")


def run_continuous_loader(settings: ContinuousLoaderSettings) -> None:
    from stockpipe.observability import start_observability
    from stockpipe.stream.topics import ensure_pipeline_topics

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ensure_pipeline_topics(settings.kafka)
    loader = ContinuousLoader(settings, stop)
    server = start_observability(settings.metrics_port, loader.health)
    log.info(
        "continuous bronze loader started: lake %s, %s warehouse, building %s",
        settings.lake.url,
        settings.warehouse.target,
        " ".join(settings.dbt_select) if settings.build_dbt else "nothing",
    )
    try:
        loader.run()
    finally:
        if server:
            server.stop()
    log.info("continuous bronze loader stopped after %d cycles, %d objects", loader.cycles, loader.loaded_objects)
