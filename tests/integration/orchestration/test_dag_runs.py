"""dag.test() runs of daily_history, lake_to_bronze and dbt_build in embedded mode against the real
local Kafka, MinIO and DuckDB: the expected warehouse rows, and a second run that changes nothing."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from stockpipe.lake.store import Lake
from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
from stockpipe.stream.producer import ProducerSettings, build_producer
from tests.integration.orchestration.conftest import SYMBOLS, Pipeline

SESSION = date(2025, 12, 1)  # a Monday
AFTER_CLOSE = datetime(2025, 12, 1, 23, 30, tzinfo=UTC)  # 18:30 in New York, daily_history's slot
SATURDAY = datetime(2025, 12, 6, 23, 30, tzinfo=UTC)
# Depends on the wall clock (data freshness "as of now"): not part of the idempotence comparison.
AS_OF_NOW = {"gold.mart_data_freshness"}


def stream_session(pipeline: Pipeline) -> None:
    """A synthetic session through the real producer, Kafka and consumer into the MinIO lake."""
    producer = build_producer(
        ProducerSettings(
            kafka=pipeline.kafka,
            symbols=SYMBOLS,
            sources=["quotes", "trades"],
            replay_date=SESSION,
            replay_speed=1e9,
            metrics_port=0,
        ),
        threading.Event(),
    )
    assert producer.run().published > 0
    consumer = LakeConsumer(
        ConsumerSettings(
            kafka=pipeline.kafka,
            lake=pipeline.lake,
            metrics_port=0,
            group_id="dag-test",
            window_seconds=3600,
            session_window_seconds=None,  # hour files: the DAGs are under test here, not freshness
        )
    )
    consumer.run(max_idle_s=4)


def distinct_keys(lake: Lake, dataset: str, key: list[str]) -> int:
    tables = [pq.read_table(pa.BufferReader(lake.read(o.key))) for o in lake.walk(f"raw/{dataset}")]
    table = pa.concat_tables(tables)
    return table.group_by(key).aggregate([]).num_rows if table.num_rows else 0


def snapshot(pipeline: Pipeline) -> dict[str, list[str]]:
    tables = pipeline.query(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema in ('bronze', 'silver', 'gold', 'seeds') order by 1, 2"
    )
    contents: dict[str, list[str]] = {}
    for schema, name in tables:
        if f"{schema}.{name}" not in AS_OF_NOW:
            rows = pipeline.query(f'select * from {schema}."{name}"')  # noqa: S608  # names from the catalog
            contents[f"{schema}.{name}"] = sorted(repr(row) for row in rows)
    return contents


def count(pipeline: Pipeline, table: str) -> int:
    sql = f"select count(*) from {table}"  # noqa: S608  # the test's own table names
    rows: list[tuple[Any, ...]] = pipeline.query(sql)
    return int(rows[0][0])


def test_history_load_and_dbt_build_produce_the_warehouse_and_rerun_changes_nothing(pipeline: Pipeline) -> None:
    stream_session(pipeline)
    lake = Lake(pipeline.lake)

    history = pipeline.run("daily_history", AFTER_CLOSE)
    assert history.tasks == {"session_gate": "success", "history_daily": "success"}
    bars = sorted(o.key for o in lake.walk("raw/daily_bars"))
    day = SESSION.isoformat()
    assert bars == [f"raw/daily_bars/dt={day}/daily+{day}+{day}+00000.parquet"]  # one object for the job

    load = pipeline.run("lake_to_bronze", AFTER_CLOSE)
    assert load.tasks == {
        "session_gate": "success",
        "load_bronze": "success",
        **{f"announce_{t}": "success" for t in ("daily_bars", "quotes", "trades")},
        "announce_dlq": "skipped",  # no dead letters: nothing for dbt to build there
    }
    assert count(pipeline, "bronze.daily_bars") == len(SYMBOLS)
    assert count(pipeline, "bronze.quotes") == distinct_keys(lake, "quotes", ["symbol", "quote_ts"])
    trade_key = ["symbol", "trade_ts", "price", "size", "seq"]
    assert count(pipeline, "bronze.trades") == distinct_keys(lake, "trades", trade_key)

    build = pipeline.run("dbt_build", AFTER_CLOSE)
    assert build.tasks == {"dbt_build": "success"}
    assert count(pipeline, "gold.fct_daily_bars") == len(SYMBOLS)
    assert count(pipeline, "gold.fct_quotes") == count(pipeline, "bronze.quotes")
    assert count(pipeline, "gold.fct_trades") == count(pipeline, "bronze.trades")
    session_rows = pipeline.query("select distinct symbol from gold.fct_daily_bars order by 1")
    assert [r[0] for r in session_rows] == sorted(SYMBOLS)

    before = snapshot(pipeline)
    assert before["bronze.quotes"], "the snapshot covers the loaded tables"
    for dag_id in ("daily_history", "lake_to_bronze", "dbt_build"):
        assert pipeline.run(dag_id, AFTER_CLOSE).ok
    assert snapshot(pipeline) == before


def test_a_closed_day_skips_cleanly_with_the_reason_in_the_log(pipeline: Pipeline) -> None:
    run = pipeline.run("daily_history", SATURDAY)
    assert run.state == "success"
    assert run.tasks == {"session_gate": "skipped", "history_daily": "skipped"}
    assert run.log_file is not None
    with open(run.log_file, encoding="utf-8") as log:
        assert "2025-12-06 (Saturday) is not an NYSE session" in log.read()
    assert not list(Lake(pipeline.lake).walk("raw/daily_bars"))
