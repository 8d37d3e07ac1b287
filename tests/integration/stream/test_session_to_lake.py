"""A whole synthetic session through producer -> Kafka -> consumer -> lake, and back out."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
from stockpipe.stream.producer import ProducerSettings, build_producer
from tests.integration.stream.lake_checks import assert_no_overlap

SYMBOLS = ["AAPL", "MSFT", "NVDA", "BRK.B"]
Reader = Callable[[Lake, str], tuple[pa.Table, list[StreamObject]]]


def replay(kafka: KafkaSettings, day: date, sources: list[str] | None = None) -> None:
    settings = ProducerSettings(
        kafka=kafka, symbols=SYMBOLS, sources=sources or ["quotes"], replay_date=day, replay_speed=1e9, metrics_port=0
    )
    producer = build_producer(settings, threading.Event())
    stats = producer.run()
    assert stats.published > 0


def consume(kafka: KafkaSettings, lake: LakeSettings, **overrides: object) -> LakeConsumer:
    options: dict[str, object] = {"group_id": f"g-{kafka.topic_quotes}", **overrides}
    settings = ConsumerSettings(kafka=kafka, lake=lake, metrics_port=0, **options)  # type: ignore[arg-type]
    consumer = LakeConsumer(settings)
    consumer.run(max_idle_s=4)
    return consumer


def test_whole_synthetic_session_lands_in_the_lake_exactly_once(
    kafka_topics: KafkaSettings, file_lake: LakeSettings, lake_reader: Reader
) -> None:
    day = date(2025, 11, 28)  # the day after Thanksgiving: closes at 13:00
    replay(kafka_topics, day, sources=["quotes", "trades"])
    consumer = consume(kafka_topics, file_lake, window_seconds=3600)
    lake = Lake(file_lake)
    quotes, objects = lake_reader(lake, "quotes")
    minutes = calendar.session(day).minutes  # type: ignore[union-attr]
    assert quotes.num_rows == minutes * len(SYMBOLS)  # one quote per symbol and minute: t moves each minute
    keys = pc.binary_join_element_wise(quotes["symbol"], pc.cast(quotes["quote_ts"], pa.string()), "|")
    assert pc.count_distinct(keys).as_py() == quotes.num_rows
    assert set(quotes["symbol"].to_pylist()) == set(SYMBOLS)
    # Files never straddle an hour window, names carry their offsets, rows are in offset order.
    for obj in objects:
        assert obj.dt == day
    assert consumer.stats.dead_letters == 0
    trades, _ = lake_reader(lake, "trades")
    # Every minute's trades, the last one's too (sent after the close, before the session's watermark).
    assert trades.num_rows == minutes * 3 * len(SYMBOLS)


def test_resume_from_the_lake_after_a_restart(
    kafka_topics: KafkaSettings, file_lake: LakeSettings, lake_reader: Reader
) -> None:
    day = date(2025, 12, 1)
    replay(kafka_topics, day)
    # First incarnation writes a few files then "crashes" before committing anything.
    first = ConsumerSettings(
        kafka=kafka_topics, lake=file_lake, metrics_port=0, group_id="resume", max_records_per_file=200, batch_size=500
    )
    c1 = LakeConsumer(first)
    c1._commit_pending = lambda: None  # type: ignore[method-assign]  # simulate: died before every commit
    c1.consumer.subscribe([kafka_topics.topic_quotes], on_assign=c1._on_assign)
    written = 0
    while written < 3:
        msgs = c1.consumer.consume(500, 1.0)
        c1._process(msgs)
        written = c1.stats.files
    c1.consumer.close()
    # Second incarnation: same group, nothing committed; it must resume from the lake, not from 0.
    c2 = consume(kafka_topics, file_lake, group_id="resume", max_records_per_file=200, batch_size=500)
    quotes, objects = lake_reader(Lake(file_lake), "quotes")
    assert quotes.num_rows == calendar.session(day).minutes * len(SYMBOLS)  # type: ignore[union-attr]
    assert_no_overlap(objects)
    assert c2.stats.rows + c1.stats.rows == quotes.num_rows
