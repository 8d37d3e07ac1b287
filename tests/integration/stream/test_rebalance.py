"""A second consumer joins the group mid-stream: partitions move, and the lake still holds every record once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc

from stockpipe.contracts.messages import QUOTE_V1
from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import Lake
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
from stockpipe.stream.publisher import Publisher
from stockpipe_dev.bench.stream import SESSION_OPEN, quote_messages
from tests.integration.stream.lake_checks import assert_no_overlap

Reader = Callable[[Lake, str], tuple[pa.Table, list[StreamObject]]]
RECORDS = 60_000


def test_partitions_move_to_a_joining_consumer_without_loss_or_duplicates(
    kafka_topics: KafkaSettings, file_lake: LakeSettings, lake_reader: Reader
) -> None:
    publisher = Publisher(kafka_topics)
    publisher.publish(kafka_topics.topic_quotes, QUOTE_V1, quote_messages(RECORDS))
    publisher.watermark(kafka_topics.topic_quotes, SESSION_OPEN + timedelta(days=1))
    assert publisher.flush() == 0

    def settings() -> ConsumerSettings:
        # Small polls and files, so that the first consumer is mid-stream (batches in flight on its
        # checker threads, files open) when the group rebalances.
        return ConsumerSettings(
            kafka=kafka_topics,
            lake=file_lake,
            metrics_port=0,
            group_id="rebalance",
            batch_size=500,
            max_records_per_file=2_000,
            window_seconds=3600,
        )

    first = LakeConsumer(settings())
    slow_write = first._write_object

    def write_slowly(*args: object) -> None:  # keeps the first consumer busy until the second joins
        slow_write(*args)  # type: ignore[arg-type]
        time.sleep(0.3)

    first._write_object = write_slowly  # type: ignore[method-assign,assignment]
    runner = threading.Thread(target=first.run, kwargs={"max_idle_s": 8})
    runner.start()
    deadline = time.monotonic() + 60
    while first.stats.files < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert 0 < first.stats.rows < RECORDS  # mid-stream
    second = LakeConsumer(settings())
    second.run(max_idle_s=8)
    runner.join(120)
    assert not runner.is_alive()

    quotes, objects = lake_reader(Lake(file_lake), "quotes")
    assert quotes.num_rows == RECORDS
    assert first.stats.rows + second.stats.rows == RECORDS
    assert second.stats.rows > 0  # partitions did move
    keys = pc.binary_join_element_wise(quotes["symbol"], pc.cast(quotes["quote_ts"], pa.string()), "|")
    assert pc.count_distinct(keys).as_py() == RECORDS
    assert_no_overlap(objects)
