from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import Lake
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.topics import isolated_topics
from stockpipe_dev.localservices.kafka import KafkaBroker


@pytest.fixture
def kafka_topics(kafka_broker: KafkaBroker) -> KafkaSettings:
    """Fresh topics of the pipeline's shape for each test, on the session's broker."""
    return isolated_topics(kafka_broker.bootstrap, uuid.uuid4().hex[:8])


@pytest.fixture
def file_lake(tmp_path: Path) -> LakeSettings:
    return LakeSettings(url=f"file://{tmp_path / 'lake'}")


def read_dataset(lake: Lake, dataset: str) -> tuple[pa.Table, list[StreamObject]]:
    objects = [o for o in (StreamObject.parse(i.key) for i in lake.walk(f"raw/{dataset}")) if o is not None]
    tables = [pq.read_table(pa.BufferReader(lake.read(o.key))) for o in objects]
    return (pa.concat_tables(tables) if tables else pa.table({})), objects


@pytest.fixture
def lake_reader() -> Callable[[Lake, str], tuple[pa.Table, list[StreamObject]]]:
    return read_dataset
