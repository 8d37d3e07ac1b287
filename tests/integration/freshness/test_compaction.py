"""Compaction: atomic and idempotent, the consumer still resumes from the lake, bronze never loads a row twice."""

from __future__ import annotations

import threading
import time
from datetime import date
from pathlib import Path

import duckdb

from stockpipe.lake.compaction import compact_day
from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import Lake
from stockpipe.stream.lakewriter import find_resume_offset
from stockpipe.warehouse.continuous import ContinuousLoader, ContinuousLoaderSettings
from stockpipe.warehouse.duckdb_target import DuckDBTarget
from stockpipe.warehouse.loader import BronzeLoader
from stockpipe.warehouse.settings import WarehouseSettings, WarehouseTargetSettings
from stockpipe.warehouse.targets import compaction_register
from tests.integration.freshness.conftest import QUOTE_KEY, Pipeline, bronze_keys, lake_keys

DAY = date(2025, 11, 28)  # early close: a short session
NEXT = date(2025, 12, 1)
TRADE_KEY = ["symbol", "trade_ts", "price", "size", "seq"]


def snapshot(lake: Lake) -> dict[str, bytes]:
    return {i.key: lake.read(i.key) for i in lake.walk("raw")}


def resume_points(pipeline: Pipeline) -> dict[tuple[str, int], int | None]:
    k = pipeline.kafka
    return {
        (topic, p): find_resume_offset(pipeline.lake, dataset, topic, p)
        for dataset, topic in (("quotes", k.topic_quotes), ("trades", k.topic_trades))
        for p in range(3)
    }


def load(pipeline: Pipeline) -> int:
    with DuckDBTarget(pipeline.warehouse, pipeline.lake) as target:
        return BronzeLoader(pipeline.lake, target).run().loaded_objects


def compact(pipeline: Pipeline, day: date) -> dict[str, object]:
    with DuckDBTarget(pipeline.warehouse, pipeline.lake) as target:
        target.ensure_schema()
        return compact_day(pipeline.lake, day, register=target.record_compaction).as_dict()


def test_compaction_is_idempotent_keeps_resume_and_bronze_loads_nothing_twice(pipeline: Pipeline) -> None:
    pipeline.replay(DAY)
    pipeline.consumer(session_window_seconds=300).run(max_idle_s=3)
    lake = pipeline.lake
    before = snapshot(lake)
    quotes, trades = lake_keys(lake, "quotes", QUOTE_KEY), lake_keys(lake, "trades", TRADE_KEY)
    assert load(pipeline) == len(before)
    resume = resume_points(pipeline)

    report = compact(pipeline, DAY)
    after = snapshot(lake)
    per_partition: dict[tuple[str, str, int], int] = {}
    for key in before:
        obj = StreamObject.parse(key)
        assert obj is not None
        per_partition[(obj.dataset, obj.topic, obj.partition)] = (
            per_partition.get((obj.dataset, obj.topic, obj.partition), 0) + 1
        )
    several = sum(n > 1 for n in per_partition.values())
    assert several >= 2
    assert report["objects_before"] == len(before)
    assert report["partitions"] == report["objects_after"] == len(per_partition) == len(after)
    assert report["written"] == several
    assert report["recorded_in_ledger"] == several  # every small object was loaded: no load reads compacted ones
    assert lake_keys(lake, "quotes", QUOTE_KEY) == quotes
    assert lake_keys(lake, "trades", TRADE_KEY) == trades
    assert resume_points(pipeline) == resume  # the newest object still ends at each partition's last offset

    # Bronze: the next load reads nothing and no row appears twice.
    assert load(pipeline) == 0
    assert bronze_keys(pipeline.warehouse, "quotes", QUOTE_KEY) == (quotes[1], quotes[1])
    assert bronze_keys(pipeline.warehouse, "trades", TRADE_KEY) == (trades[1], trades[1])

    # Idempotent: a second run changes nothing, byte for byte.
    again = compact(pipeline, DAY)
    assert again["written"] == again["deleted"] == 0
    assert snapshot(lake) == after

    # An interrupted run (compacted object written, small ones not yet deleted) is finished by the next.
    for key, data in before.items():
        if "+0+" in key.rsplit("/", 1)[1]:
            lake.write_atomic(key, data)
    finish = compact(pipeline, DAY)
    assert finish["written"] == 0
    assert finish["deleted"] == sum("+0+" in k.rsplit("/", 1)[1] for k in before)
    assert snapshot(lake) == after

    # The consumer resumes after compaction: a new incarnation (no committed offsets) writes only what is new.
    fresh = pipeline.consumer(group_id="after-compaction", session_window_seconds=300)
    assert fresh.run(max_idle_s=3).rows == 0
    pipeline.replay(NEXT, ("quotes",))
    pipeline.consumer(group_id="after-compaction", session_window_seconds=300).run(max_idle_s=3)
    rows, distinct = lake_keys(lake, "quotes", QUOTE_KEY)
    assert rows == distinct > quotes[1]
    assert load(pipeline) > 0
    assert bronze_keys(pipeline.warehouse, "quotes", QUOTE_KEY) == (distinct, distinct)


def compact_like_the_job(pipeline: Pipeline, day: date) -> None:
    """As `lake compact` does: the writer lock and the file taken for each group's ledger swap only."""
    settings = WarehouseSettings(
        lake=pipeline.lake_settings, warehouse=WarehouseTargetSettings(duckdb_path=pipeline.warehouse)
    )
    compact_day(pipeline.lake, day, register=compaction_register(settings, pipeline.lake))


def test_compaction_while_the_consumer_writes_and_the_loader_loads(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.replay(DAY)
    loader = ContinuousLoader(
        ContinuousLoaderSettings(
            kafka=pipeline.kafka,
            lake=pipeline.lake_settings,
            warehouse=WarehouseTargetSettings(duckdb_path=pipeline.warehouse, batch_max_objects=5),
            group_id=f"loader-{pipeline.kafka.topic_quotes}",
            metrics_port=0,
            settle_seconds=0.2,
            build_dbt=False,
        )
    )
    consumer = pipeline.consumer(session_window_seconds=60, batch_size=200, max_records_per_file=50)
    threads = [threading.Thread(target=loader.run), threading.Thread(target=consumer.run, kwargs={"max_idle_s": 5})]
    for t in threads:
        t.start()
    rounds = 0
    try:
        while threads[1].is_alive():
            compact_like_the_job(pipeline, DAY)
            rounds += 1
            time.sleep(0.3)
        compact_like_the_job(pipeline, DAY)
        deadline = time.monotonic() + 120
        while loader.pending and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        loader.stop.set()
        threads[0].join(60)
    assert rounds >= 2
    lake = pipeline.lake
    assert all(StreamObject.parse(i.key) for i in lake.walk("raw/quotes"))
    quotes = lake_keys(lake, "quotes", QUOTE_KEY)
    trades = lake_keys(lake, "trades", TRADE_KEY)
    assert quotes[0] == quotes[1]
    assert trades[0] == trades[1]
    load(pipeline)  # Airflow's after-close load settles anything a notice could not name
    assert bronze_keys(pipeline.warehouse, "quotes", QUOTE_KEY) == (quotes[1], quotes[1])
    assert bronze_keys(pipeline.warehouse, "trades", TRADE_KEY) == (trades[1], trades[1])
    conn = duckdb.connect(str(pipeline.warehouse), read_only=True)
    try:
        in_ledger = conn.execute("SELECT count(*) FROM bronze.load_ledger").fetchone()
    finally:
        conn.close()
    assert in_ledger is not None
    # The loader took part: it loaded objects while compaction replaced them under it (how many depends on
    # who wins each race; exactly-once in bronze is what must not).
    assert loader.loaded_objects > 0
    assert in_ledger[0] >= loader.loaded_objects
