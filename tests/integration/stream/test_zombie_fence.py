"""A consumer whose partition another writer got ahead on: its write is fenced, it gives the batch up,
commits nothing it did not write, and (still the owner) re-reads from the lake: every record once."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from confluent_kafka import Consumer, TopicPartition

from stockpipe.contracts.messages import QUOTE_V1
from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import Lake
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
from stockpipe.stream.publisher import Publisher
from stockpipe_dev.bench.stream import SESSION_OPEN, quote_messages
from tests.integration.stream.lake_checks import assert_no_overlap

Reader = Callable[[Lake, str], tuple[pa.Table, list[StreamObject]]]
RECORDS = 900


def _settings(kafka: KafkaSettings, lake: LakeSettings, group: str, max_records: int) -> ConsumerSettings:
    return ConsumerSettings(
        kafka=kafka,
        lake=lake,
        metrics_port=0,
        group_id=group,
        batch_size=100,
        max_records_per_file=max_records,
        window_seconds=3600,
    )


def test_a_write_behind_another_writer_is_fenced_and_the_partition_rereads_from_the_lake(
    kafka_topics: KafkaSettings,
    file_lake: LakeSettings,
    tmp_path: Path,
    lake_reader: Reader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher = Publisher(kafka_topics)
    publisher.publish(kafka_topics.topic_quotes, QUOTE_V1, quote_messages(RECORDS))
    publisher.watermark(kafka_topics.topic_quotes, SESSION_OPEN + timedelta(days=1))
    assert publisher.flush() == 0

    # The rival: another writer (smaller files, as after a configuration change) into a lake of its own.
    rival_lake = Lake(LakeSettings(url=f"file://{tmp_path / 'rival'}"))
    LakeConsumer(_settings(kafka_topics, rival_lake.settings, f"rival-{uuid.uuid4().hex[:6]}", 50)).run(max_idle_s=3)
    rival = {o.key: o for o in (StreamObject.parse(i.key) for i in rival_lake.walk("raw/quotes")) if o}

    lake = Lake(file_lake)
    owner = LakeConsumer(_settings(kafka_topics, file_lake, "owner", 200))
    real_write = owner._write_fenced
    raced: set[int] = set()

    def rival_gets_there_first(obj: StreamObject, data: bytes) -> None:
        # Between this consumer's assignment and its first write, the rival lands its first object.
        if obj.dataset == "quotes" and obj.partition not in raced:
            raced.add(obj.partition)
            first = next(k for k, o in rival.items() if o.partition == obj.partition and o.first_offset == 0)
            Path(lake.path(first)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(rival_lake.path(first), lake.path(first))
        real_write(obj, data)

    owner._write_fenced = rival_gets_there_first  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="stockpipe.consumer"):
        stats = owner.run(max_idle_s=5)

    fenced = [r.getMessage() for r in caplog.records if "fenced" in r.getMessage()]
    assert len(fenced) == len(raced) == 3, fenced
    assert all("rows given up, nothing committed" in m and "re-reads from the lake" in m for m in fenced)
    quotes, objects = lake_reader(lake, "quotes")
    keys = pc.binary_join_element_wise(quotes["symbol"], pc.cast(quotes["quote_ts"], pa.string()), "|")
    assert quotes.num_rows == pc.count_distinct(keys).as_py() == RECORDS
    assert_no_overlap(objects)
    assert stats.rows == RECORDS - 3 * 50  # the rival's three objects were not written again

    # Offsets were committed only for what is in the lake: all of it, now.
    probe = Consumer({"bootstrap.servers": kafka_topics.bootstrap_servers, "group.id": "owner"})
    try:
        tps = [TopicPartition(kafka_topics.topic_quotes, p) for p in range(3)]
        committed = {tp.partition: tp.offset for tp in probe.committed(tps, timeout=10)}
        ends = {
            p: probe.get_watermark_offsets(TopicPartition(kafka_topics.topic_quotes, p), timeout=10)[1]
            for p in range(3)
        }
    finally:
        probe.close()
    assert committed == ends
