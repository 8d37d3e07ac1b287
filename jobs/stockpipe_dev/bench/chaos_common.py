"""What every chaos scenario shares: the result record, the counting of records in the lake and
in bronze, a consumer in its own process, and producing the numbered quotes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console

from stockpipe.contracts.messages import QUOTE_V1
from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import Lake
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.publisher import Publisher
from stockpipe.stream.topics import isolated_topics
from stockpipe_dev.bench.stream import SESSION_OPEN
from stockpipe_dev.localservices.kafka import KafkaBroker

console = Console(stderr=True)


@dataclass
class Scenario:
    name: str
    produced: int
    in_lake: int
    lost: int
    duplicated: int
    detail: str = ""
    bronze_rows: int | None = None  # None: not loaded into bronze
    bronze_lost: int | None = None
    bronze_duplicated: int | None = None
    inputs: int | None = None  # fuzz only
    crashes: int | None = None  # fuzz only


def count_bronze(lake: Lake, produced: int, warehouse: Path) -> tuple[int, int, int]:
    """(rows in bronze, lost, duplicated) after loading the whole lake with the product's BronzeLoader."""
    from stockpipe.warehouse.duckdb_target import DuckDBTarget
    from stockpipe.warehouse.loader import BronzeLoader

    with DuckDBTarget(warehouse, lake) as target:
        BronzeLoader(lake, target, listing="full").run()
    rows, distinct = bronze_quote_keys(warehouse)
    return rows, produced - distinct, rows - distinct


def bronze_quote_keys(warehouse: Path) -> tuple[int, int]:
    """(rows, distinct natural keys) of bronze.quotes, read-only."""
    import duckdb

    conn = duckdb.connect(str(warehouse), read_only=True)
    try:
        row = conn.execute("SELECT count(*), count(DISTINCT (symbol, quote_ts)) FROM bronze.quotes").fetchone()
    finally:
        conn.close()
    assert row is not None
    return int(row[0]), int(row[1])


def counted(name: str, produced: int, lake: Lake, work: Path, detail: str) -> Scenario:
    """A stream scenario's result: every produced record counted in the lake and in bronze."""
    rows, lost, dup = count_lake(lake, produced)
    b_rows, b_lost, b_dup = count_bronze(lake, produced, work / f"bronze-{time.monotonic_ns()}.duckdb")
    return Scenario(name, produced, rows, lost, dup, detail, b_rows, b_lost, b_dup)


def count_lake(lake: Lake, produced: int) -> tuple[int, int, int]:
    """(rows in the lake, lost, duplicated) over the natural key; every produced key is distinct."""
    tables = []
    for info in lake.walk("raw/quotes"):
        if StreamObject.parse(info.key):
            tables.append(pq.read_table(pa.BufferReader(lake.read(info.key)), columns=["symbol", "quote_ts"]))
    if not tables:
        return 0, produced, 0
    table = pa.concat_tables(tables)
    keys = pc.binary_join_element_wise(
        table["symbol"], pc.cast(pc.cast(table["quote_ts"], pa.int64()), pa.string()), "|"
    )
    distinct = pc.count_distinct(keys).as_py()
    return table.num_rows, produced - distinct, table.num_rows - distinct


def workload_env(kafka: KafkaSettings, lake: LakeSettings) -> dict[str, str]:
    """The environment a workload process reads its Kafka topics and lake from (its settings' variables)."""
    env = {
        **os.environ,
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "STOCKPIPE_KAFKA__TOPIC_QUOTES": kafka.topic_quotes,
        "STOCKPIPE_KAFKA__TOPIC_TRADES": kafka.topic_trades,
        "STOCKPIPE_KAFKA__TOPIC_DLQ": kafka.topic_dlq,
        "STOCKPIPE_KAFKA__TOPIC_HEARTBEATS": kafka.topic_heartbeats,
        "STOCKPIPE_KAFKA__TOPIC_LAKE_OBJECTS": kafka.topic_lake_objects,
        "STOCKPIPE_LAKE__URL": lake.url,
    }
    if lake.s3_endpoint_url:
        env["STOCKPIPE_LAKE__S3_ENDPOINT_URL"] = lake.s3_endpoint_url
    if lake.access_key and lake.secret_key:
        env["STOCKPIPE_LAKE__ACCESS_KEY"] = lake.access_key.get_secret_value()
        env["STOCKPIPE_LAKE__SECRET_KEY"] = lake.secret_key.get_secret_value()
    return env


class ConsumerProcess:
    """`stockpipe consumer` as its own process, as it runs in a pod."""

    def __init__(self, kafka: KafkaSettings, lake: LakeSettings, log: Path) -> None:
        self.env = {
            **workload_env(kafka, lake),
            "STOCKPIPE_GROUP_ID": f"chaos-{kafka.topic_quotes}",
            "STOCKPIPE_METRICS_PORT": "0",
            "STOCKPIPE_MAX_RECORDS_PER_FILE": "20000",
            "STOCKPIPE_WINDOW_SECONDS": "3600",
        }
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stockpipe.cli", "consumer"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def wait_for_rows(lake: Lake, target: int, timeout_s: float, produced: int) -> int:
    deadline = time.monotonic() + timeout_s
    rows = 0
    while time.monotonic() < deadline:
        rows = count_lake(lake, produced)[0]
        if rows >= target:
            break
        time.sleep(1.0)
    return rows


def produce(
    kafka: KafkaSettings,
    messages: list[dict[str, Any]],
    during: Callable[[int], None] | None = None,
    chunk: int = 10_000,
) -> int:
    """Publish with our producer; `during(i)` runs between batches (to inject a fault). Returns acknowledged."""
    publisher = Publisher(kafka, max_queue_messages=200_000, full_timeout_s=120)
    for i in range(0, len(messages), chunk):
        publisher.publish(kafka.topic_quotes, QUOTE_V1, messages[i : i + chunk])
        if during:
            during(i)
    if publisher.flush(180):
        raise RuntimeError("messages still unacknowledged after 180 s")
    acknowledged = publisher.delivered
    publisher.watermark(kafka.topic_quotes, SESSION_OPEN + timedelta(days=1))
    publisher.flush(60)
    return acknowledged


def topics(broker: KafkaBroker, name: str) -> KafkaSettings:
    return isolated_topics(broker.bootstrap, name)
