"""A session through producer -> Kafka -> consumer -> lake (with lake-objects notices), and bronze counts."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import Lake
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
from stockpipe.stream.producer import ProducerSettings, build_producer
from stockpipe.stream.topics import isolated_topics
from stockpipe.warehouse.writerlock import file_writer_lock, lock_path
from stockpipe_dev.localservices.kafka import KafkaBroker

SYMBOLS = ["AAPL", "MSFT", "NVDA"]
QUOTE_KEY = ["symbol", "quote_ts"]


@dataclass
class Pipeline:
    kafka: KafkaSettings
    lake_settings: LakeSettings
    warehouse: Path

    @property
    def lake(self) -> Lake:
        return Lake(self.lake_settings)

    def replay(self, day: date, sources: tuple[str, ...] = ("quotes", "trades")) -> None:
        settings = ProducerSettings(
            kafka=self.kafka,
            symbols=SYMBOLS,
            sources=list(sources),
            replay_date=day,
            replay_speed=1e9,
            metrics_port=0,
        )
        assert build_producer(settings, threading.Event()).run().published > 0

    def consumer(self, **overrides: object) -> LakeConsumer:
        options: dict[str, object] = {"group_id": f"c-{self.kafka.topic_quotes}", "session_window_seconds": 1800}
        options.update(overrides)
        return LakeConsumer(ConsumerSettings(kafka=self.kafka, lake=self.lake_settings, metrics_port=0, **options))  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        k = self.kafka
        return {
            "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": k.bootstrap_servers,
            "STOCKPIPE_KAFKA__TOPIC_QUOTES": k.topic_quotes,
            "STOCKPIPE_KAFKA__TOPIC_TRADES": k.topic_trades,
            "STOCKPIPE_KAFKA__TOPIC_DLQ": k.topic_dlq,
            "STOCKPIPE_KAFKA__TOPIC_HEARTBEATS": k.topic_heartbeats,
            "STOCKPIPE_KAFKA__TOPIC_LAKE_OBJECTS": k.topic_lake_objects,
            "STOCKPIPE_LAKE__URL": self.lake_settings.url,
            "STOCKPIPE_WAREHOUSE__DUCKDB_PATH": str(self.warehouse),
        }


def lake_keys(lake: Lake, dataset: str, key: list[str]) -> tuple[int, int]:
    """(rows, distinct natural keys) over the dataset's stream objects."""
    tables = [
        pq.read_table(pa.BufferReader(lake.read(i.key)), columns=key)
        for i in lake.walk(f"raw/{dataset}")
        if StreamObject.parse(i.key)
    ]
    if not tables:
        return 0, 0
    table = pa.concat_tables(tables)
    return table.num_rows, table.group_by(key).aggregate([]).num_rows


def bronze_keys(warehouse: Path, table: str, key: list[str]) -> tuple[int, int]:
    """(rows, distinct natural keys) in a bronze table (0, 0 before it exists)."""
    if not warehouse.exists():
        return 0, 0
    # Between the loader's cycles: it holds the writer lock whenever it has the file open.
    with file_writer_lock(lock_path(warehouse), timeout_s=120):
        return _bronze_keys(warehouse, table, key)


def _bronze_keys(warehouse: Path, table: str, key: list[str]) -> tuple[int, int]:
    conn = duckdb.connect(str(warehouse), read_only=True)
    try:
        row = conn.execute(f"SELECT count(*), count(DISTINCT ({', '.join(key)})) FROM bronze.{table}").fetchone()  # noqa: S608
    except duckdb.CatalogException:
        return 0, 0
    finally:
        conn.close()
    assert row is not None
    return int(row[0]), int(row[1])


@pytest.fixture
def pipeline(kafka_broker: KafkaBroker, tmp_path: Path) -> Pipeline:
    kafka = isolated_topics(kafka_broker.bootstrap, uuid.uuid4().hex[:8])
    return Pipeline(kafka, LakeSettings(url=f"file://{tmp_path / 'lake'}"), tmp_path / "wh" / "stockpipe.duckdb")
