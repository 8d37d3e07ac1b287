"""The raw datasets that bronze mirrors: their lake columns (from the contracts), natural keys and tables.

A bronze table has the lake columns of its dataset plus three load columns:
  source_file  the lake object key the row came from
  load_id      the load that wrote the row (one per `stockpipe load bronze` run)
  loaded_at    when that load's transaction committed the row (UTC)
Rows are unique on the natural key: a load merges on it, and the latest load wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from stockpipe.contracts.bars import DAILY_BAR_SCHEMA
from stockpipe.contracts.messages import DLQ_V1, QUOTE_V1, TRADE_V1
from stockpipe.lake.layout import DAILY_BARS, RAW, STREAM_DATASETS, BatchObject, StreamObject, parse_dt_dir

LOAD_COLUMNS: tuple[str, ...] = ("source_file", "load_id", "loaded_at")


@dataclass(frozen=True)
class Dataset:
    name: str  # the lake dataset: raw/<name>/...
    table: str  # the bronze table
    schema: pa.Schema  # the lake columns
    natural_key: tuple[str, ...]
    # Among rows with the same key in one load, the first in this order wins (newest fetch, then offset).
    latest_first: tuple[str, ...]

    @property
    def stream(self) -> bool:
        """Stream files (<topic>+<partition>+<first>+<last>) rather than batch job files."""
        return self.name in STREAM_DATASETS

    @property
    def prefix(self) -> str:
        return f"{RAW}/{self.name}"

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.schema.names)

    @property
    def value_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.natural_key)


QUOTES = Dataset(
    name=QUOTE_V1.dataset,
    table="quotes",
    schema=QUOTE_V1.lake_schema(),
    natural_key=("symbol", "quote_ts"),
    latest_first=("fetched_at", "kafka_offset"),
)
TRADES = Dataset(
    name=TRADE_V1.dataset,
    table="trades",
    schema=TRADE_V1.lake_schema(),
    natural_key=("symbol", "trade_ts", "price", "size", "seq"),
    latest_first=("fetched_at", "kafka_offset"),
)
DLQ = Dataset(
    name=DLQ_V1.dataset,
    table="dlq",
    schema=DLQ_V1.lake_schema(),
    # One dead letter per original message: the consumer may dead-letter it again after a restart.
    natural_key=("source_topic", "source_partition", "source_offset"),
    latest_first=("kafka_offset",),
)
DAILY_BARS_DS = Dataset(
    name=DAILY_BARS,
    table="daily_bars",
    schema=DAILY_BAR_SCHEMA,
    natural_key=("symbol", "date"),
    latest_first=("fetched_at",),
)

DATASETS: tuple[Dataset, ...] = (DAILY_BARS_DS, DLQ, QUOTES, TRADES)
BY_NAME: dict[str, Dataset] = {d.name: d for d in DATASETS}


@dataclass(frozen=True)
class ObjectName:
    """What a lake object's key says about its rows (used to attribute rows to objects in Snowflake)."""

    dataset: Dataset
    dt: date
    topic: str | None = None  # stream files
    partition: int | None = None
    first_offset: int | None = None
    last_offset: int | None = None
    symbol: str | None = None  # batch files of the older layout: one symbol's bar of the day `dt`
    job: BatchObject | None = None  # batch job files: many symbols and days, known only from the rows


def parse_object_key(key: str) -> ObjectName | None:
    """The dataset and identity of a lake object, or None for keys that are no dataset's objects."""
    parts = key.strip("/").split("/")
    if len(parts) != 4 or parts[0] != RAW or parts[1] not in BY_NAME:
        return None
    dataset = BY_NAME[parts[1]]
    if dataset.stream:
        obj = StreamObject.parse(key)
        if obj is None:
            return None
        return ObjectName(dataset, obj.dt, obj.topic, obj.partition, obj.first_offset, obj.last_offset)
    job = BatchObject.parse(key)
    if job is not None:
        return ObjectName(dataset, job.end, job=job)
    day = parse_dt_dir(parts[2])
    if day is None or not parts[3].endswith(".parquet"):
        return None
    return ObjectName(dataset, day, symbol=parts[3].removesuffix(".parquet"))
