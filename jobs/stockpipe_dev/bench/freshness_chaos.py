"""`make chaos` scenarios of the intraday path, counted in bronze (not only the lake).

- the continuous bronze loader SIGKILLed at random points while it loads and builds;
- compaction run again and again while the consumer writes and the continuous loader loads.
Each ends with bronze compared to the lake: `lost` (natural keys in the lake but not in bronze) and
`duplicated` (bronze rows beyond one per natural key).
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import Lake
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
from stockpipe.stream.producer import ProducerSettings, build_producer
from stockpipe.stream.topics import isolated_topics
from stockpipe_dev.bench.chaos_common import Scenario, bronze_quote_keys, workload_env
from stockpipe_dev.localservices.kafka import KafkaBroker

SESSION = date(2025, 11, 28)  # an early close: a short session
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "BRK.B"]
QUOTE_KEY = ["symbol", "quote_ts"]


def _replay(kafka: KafkaSettings) -> int:
    settings = ProducerSettings(
        kafka=kafka, symbols=SYMBOLS, sources=["quotes", "trades"], replay_date=SESSION, replay_speed=1e9,
        metrics_port=0,
    )  # fmt: skip
    producer = build_producer(settings, threading.Event())
    published = producer.run().published
    producer.close()
    return published


def _consumer(kafka: KafkaSettings, lake: LakeSettings, **overrides: Any) -> LakeConsumer:
    return LakeConsumer(
        ConsumerSettings(kafka=kafka, lake=lake, metrics_port=0, group_id=f"chaos-{kafka.topic_quotes}", **overrides)
    )


def _lake_quotes(lake: Lake) -> int:
    tables = [
        pq.read_table(pa.BufferReader(lake.read(i.key)), columns=QUOTE_KEY)
        for i in lake.walk("raw/quotes")
        if StreamObject.parse(i.key)
    ]
    return pa.concat_tables(tables).group_by(QUOTE_KEY).aggregate([]).num_rows if tables else 0


def _scenario(name: str, lake: Lake, warehouse: Path, detail: str) -> Scenario:
    in_lake = _lake_quotes(lake)
    rows, distinct = bronze_quote_keys(warehouse)
    # lost and duplicated are counted in bronze: the lake's quotes against bronze.quotes' natural keys.
    detail = f"{detail}; bronze.quotes holds {rows:,} rows, {distinct:,} distinct keys"
    lost, duplicated = in_lake - distinct, rows - distinct
    return Scenario(
        name, in_lake, in_lake, lost, duplicated, detail,
        bronze_rows=rows, bronze_lost=lost, bronze_duplicated=duplicated,
    )  # fmt: skip


def _env(kafka: KafkaSettings, lake: LakeSettings, warehouse: Path) -> dict[str, str]:
    return {
        **workload_env(kafka, lake),
        "STOCKPIPE_WAREHOUSE__DUCKDB_PATH": str(warehouse),
        "STOCKPIPE_GROUP_ID": f"chaos-loader-{kafka.topic_quotes}",
        "STOCKPIPE_METRICS_PORT": "0",
        "STOCKPIPE_SETTLE_SECONDS": "0.2",
        "STOCKPIPE_WAREHOUSE__BATCH_MAX_OBJECTS": "5",  # many transactions: kills land inside loads
    }


def continuous_loader_killed(broker: KafkaBroker, work: Path, rng: random.Random, kills: int = 6) -> Scenario:
    """The loader SIGKILLed at random points (start-up, mid-batch, mid-build, before its commit), restarted."""
    kafka = isolated_topics(broker.bootstrap, "loaderkill")
    lake_settings = LakeSettings(url=f"file://{work / 'lake-loaderkill'}")
    warehouse = work / "wh-loaderkill" / "stockpipe.duckdb"
    _replay(kafka)
    _consumer(kafka, lake_settings, session_window_seconds=60).run(max_idle_s=5)
    env = _env(kafka, lake_settings, warehouse)
    argv = [sys.executable, "-m", "stockpipe.cli", "load", "continuous"]
    points = []
    with open(work / "loader-kill.log", "ab") as log:
        for _ in range(kills):
            proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
            points.append(round(rng.uniform(1.0, 10.0), 1))
            time.sleep(points[-1])
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
        lake = Lake(lake_settings)
        expected = _lake_quotes(lake)
        deadline = time.monotonic() + 600
        try:
            while time.monotonic() < deadline:
                time.sleep(5)
                try:
                    if bronze_quote_keys(warehouse)[1] >= expected:
                        break
                except duckdb.Error:
                    continue  # the loader holds the file right now
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
    return _scenario(
        f"continuous loader SIGKILLed at {kills} random points",
        lake,
        warehouse,
        f"killed after {', '.join(f'{p} s' for p in points)} of each incarnation; counted in bronze",
    )


@dataclass
class _CompactionRun:
    """What compaction beside the running pipeline left: its runs, the two workloads, the after-close load."""

    lake: Lake
    warehouse: Path
    runs: list[float]
    rewritten: int
    files_written: int
    loader_cycles: list[float]
    lock_waits: list[float]
    cycles_failed: int
    settled: int


def _compaction_beside_the_pipeline(
    broker: KafkaBroker, work: Path, name: str, *, records_per_file: int, batch_max_objects: int, pause_s: float
) -> _CompactionRun:
    """`lake compact` as the job runs it (the writer lock per group's ledger swap only), again and again while
    the consumer writes small files and the continuous loader loads them; then Airflow's after-close load."""
    from stockpipe.lake.compaction import compact_day
    from stockpipe.warehouse.continuous import ContinuousLoader, ContinuousLoaderSettings
    from stockpipe.warehouse.duckdb_target import DuckDBTarget
    from stockpipe.warehouse.loader import BronzeLoader
    from stockpipe.warehouse.settings import WarehouseSettings, WarehouseTargetSettings
    from stockpipe.warehouse.targets import compaction_register
    from stockpipe.warehouse.writerlock import file_writer_lock, lock_path

    kafka = isolated_topics(broker.bootstrap, name)
    lake_settings = LakeSettings(url=f"file://{work / f'lake-{name}'}")
    warehouse = work / f"wh-{name}" / "stockpipe.duckdb"
    lake = Lake(lake_settings)
    _replay(kafka)
    target = WarehouseTargetSettings(duckdb_path=warehouse, batch_max_objects=batch_max_objects)
    loader = ContinuousLoader(
        ContinuousLoaderSettings(
            kafka=kafka, lake=lake_settings, warehouse=target, group_id=f"chaos-loader-{kafka.topic_quotes}",
            metrics_port=0, settle_seconds=0.2, build_dbt=False,
        )
    )  # fmt: skip
    consumer = _consumer(
        kafka, lake_settings, session_window_seconds=30, batch_size=200, max_records_per_file=records_per_file
    )
    threads = [threading.Thread(target=loader.run), threading.Thread(target=consumer.run, kwargs={"max_idle_s": 5})]
    for t in threads:
        t.start()
    register = compaction_register(WarehouseSettings(lake=lake_settings, warehouse=target), lake)
    runs: list[float] = []
    rewritten = 0

    def compact() -> None:
        nonlocal rewritten
        started = time.monotonic()
        rewritten += compact_day(lake, SESSION, register=register).rows_rewritten
        runs.append(time.monotonic() - started)

    try:
        while threads[1].is_alive():
            compact()
            time.sleep(pause_s)
        compact()
        deadline = time.monotonic() + 300
        while loader.pending and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        loader.stop.set()
        threads[0].join(120)
    with file_writer_lock(lock_path(warehouse)), DuckDBTarget(warehouse, lake) as wh:
        settled = BronzeLoader(lake, wh).run().loaded_objects  # Airflow's after-close load
    return _CompactionRun(
        lake, warehouse, runs, rewritten, consumer.stats.files, sorted(loader.cycle_seconds), list(loader.lock_waits),
        loader.cycles_failed, settled,
    )  # fmt: skip


def compaction_during_writes_and_loads(broker: KafkaBroker, work: Path) -> Scenario:
    """Compaction again and again while the consumer writes small files and the continuous loader loads them."""
    run = _compaction_beside_the_pipeline(
        broker, work, "compaction", records_per_file=100, batch_max_objects=5, pause_s=0.5
    )
    objects = sum(1 for _ in run.lake.walk("raw/quotes"))
    return _scenario(
        "compaction during consumer writes and continuous loads",
        run.lake,
        run.warehouse,
        f"{len(run.runs)} compactions while {run.files_written} small objects were written; {objects} quote"
        f" objects left; the after-close load read {run.settled} objects",
    )


def compaction_while_loading(broker: KafkaBroker, work: Path) -> Scenario:
    """The same with many more, smaller files (a long rewrite of the day, the case where a whole-run lock
    stalled the loader), the loader's cycle times and its waits for the writer lock measured."""
    run = _compaction_beside_the_pipeline(
        broker, work, "compactload", records_per_file=20, batch_max_objects=20, pause_s=0.2
    )
    cycles = run.loader_cycles
    longest_run = max(run.runs, default=0.0)
    longest_cycle = cycles[-1] if cycles else 0.0
    p95 = cycles[int(0.95 * (len(cycles) - 1))] if cycles else 0.0
    longest_wait = max(run.lock_waits, default=0.0)
    return _scenario(
        "compaction while loading",
        run.lake,
        run.warehouse,
        f"{len(run.runs)} compactions ({run.rewritten:,} rows rewritten, longest run {longest_run:.2f} s) while "
        f"{run.files_written} small objects were written; {len(cycles)} loader cycles, p95 {p95:.2f} s, "
        f"longest {longest_cycle:.2f} s; longest wait for the writer lock {longest_wait:.3f} s "
        f"({'shorter' if longest_wait < longest_run else 'NOT shorter'} than the longest compaction run); "
        f"{run.cycles_failed} failed cycles; the after-close load read {run.settled} objects",
    )
