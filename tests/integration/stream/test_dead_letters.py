"""Malformed messages go to the dead-letter topic (and from there to the lake) with their reasons."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pyarrow as pa
from confluent_kafka import Producer

from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import Lake
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
from stockpipe.stream.publisher import Publisher
from tests.integration.stream.support import GOOD_QUOTE

Reader = Callable[[Lake, str], tuple[pa.Table, list[StreamObject]]]

GOOD = {**GOOD_QUOTE, "change": 1.0, "change_pct": 0.5}


def quote(**changes: object) -> bytes:
    body = {**GOOD, **changes}
    # json, not orjson: it writes integers beyond 64 bits, as a hostile producer could.
    return json.dumps({k: v for k, v in body.items() if v != "<drop>"}, separators=(",", ":")).encode()


# (value, key, expected reason): every kind of malformed message, each named for what is wrong with it.
MALFORMED: list[tuple[bytes | None, bytes | None, str]] = [
    # First: a year-2099 quote would open a record-time window that holds every later quote back.
    (quote(quote_ts="2099-01-01T00:00:00Z", fetched_at="2099-01-01T00:00:00Z"), b"AAPL", "ts_in_future:fetched_at"),
    (quote(quote_ts="2099-01-01T00:00:00Z"), b"AAPL", "ts_in_future:quote_ts"),
    (quote(fetched_at="1980-01-01T00:00:00Z"), b"AAPL", "ts_too_old:fetched_at"),
    (b"null", b"AAPL", "not_object:null"),
    (b" \t null", b"AAPL", "not_object:null"),
    (b"true", b"AAPL", "not_object:boolean"),
    (b"12", b"AAPL", "not_object:number"),
    (b"this is not json", b"AAPL", "not_json"),
    (b"\xff\xfe\x00garbage", b"AAPL", "not_utf8"),
    (quote(source="cafe").replace(b"cafe", b"caf\xe9"), b"AAPL", "not_utf8"),  # valid but for one Latin-1 byte
    (b"\xef\xbb\xbf" + quote(), b"AAPL", "utf8_bom"),
    (b"  \n ", b"AAPL", "empty_message"),
    (quote() + b" " + quote(), b"AAPL", "not_one_object"),
    (quote() + b"\nnull", b"AAPL", "not_one_object"),
    (b"[1, 2, 3]", b"AAPL", "not_object:array"),
    (quote(quote_ts="2025-11-28T15:00:00"), b"AAPL", "naive_timestamp:quote_ts"),
    (quote(quote_ts="2025-11-28"), b"AAPL", "date_only:quote_ts"),
    (quote(fetched_at="2025-11-28T15:00:01"), b"AAPL", "naive_timestamp:fetched_at"),
    (quote(), None, "missing_key"),
    (quote(price=2**70), b"AAPL", "out_of_range:price"),
    (quote(change_pct=2**70), b"AAPL", "out_of_range:change_pct"),
    (quote(price="190.0"), b"AAPL", "wrong_type:price"),
    (quote(price=True), b"AAPL", "wrong_type:price"),
    (quote(price=-3.5), b"AAPL", "non_positive:price"),
    (quote(price=0), b"AAPL", "non_positive:price"),
    (quote(price="<drop>"), b"AAPL", "missing_field:price"),
    (quote(symbol="aapl!"), b"aapl!", "bad_symbol"),
    (quote(symbol="MSFT"), b"AAPL", "key_mismatch"),
    (quote(quote_ts="2031-01-01T00:00:00Z"), b"AAPL", "ts_in_future:quote_ts"),
    (quote(quote_ts="1987-10-19T14:30:00Z"), b"AAPL", "ts_too_old:quote_ts"),
    (quote(quote_ts="last tuesday"), b"AAPL", "bad_timestamp:quote_ts"),
    (quote(schema="quote.v2"), b"AAPL", "unknown_schema:quote.v2"),
    (quote(schema="trade.v1"), b"AAPL", "wrong_topic:trade.v1"),
    (quote(day_low=200.0), b"AAPL", "inconsistent_range:day_low>day_high"),
    (None, b"AAPL", "empty_message"),
    (quote(source="x" * 20_000), b"AAPL", "oversized"),
    (
        b'{"schema":"quote.v1","symbol":"AAPL","quote_ts":"2025-11-28T15:00:00Z","fetched_at":"2025-11-28T15:00:01Z",'
        b'"source":"s","price":NaN,"day_high":1,"day_low":1,"day_open":1,"prev_close":1}',
        b"AAPL",
        "not_finite:price",
    ),
]


def test_malformed_messages_go_to_the_dlq_with_reasons_and_the_rest_flows(
    kafka_topics: KafkaSettings, file_lake: LakeSettings, lake_reader: Reader
) -> None:
    producer = Producer({"bootstrap.servers": kafka_topics.bootstrap_servers})
    # Interleave: every bad message sits between good ones of the same partition (key AAPL), the
    # 2099 quote first of all.
    for i, (value, key, _reason) in enumerate(MALFORMED):
        producer.produce(kafka_topics.topic_quotes, value, key=key)
        producer.produce(kafka_topics.topic_quotes, quote(quote_ts=f"2025-11-28T15:{i:02d}:00Z"), key=b"AAPL")
    trade = {
        "schema": "trade.v1",
        "symbol": "AAPL",
        "trade_ts": "2025-11-28T15:00:00.123Z",
        "fetched_at": "2025-11-28T15:00:01Z",
        "source": "synthetic",
        "price": 190.1,
        "size": -5,
        "seq": 0,
        "conditions": [],
    }
    producer.produce(kafka_topics.topic_trades, orjson.dumps(trade), key=b"AAPL")
    assert producer.flush(20) == 0
    # As the producer does at the session close: record time moves past the last window.
    publisher = Publisher(kafka_topics)
    publisher.watermark(kafka_topics.topic_quotes, datetime(2025, 11, 28, 21, 0, tzinfo=UTC))
    assert publisher.flush() == 0

    # Dead letters close their files within a second (heartbeat watermarks in the DLQ topic).
    settings = ConsumerSettings(
        kafka=kafka_topics,
        lake=file_lake,
        metrics_port=0,
        group_id="dlq-test",
        window_seconds=60,
        dlq_window_seconds=1,
        heartbeat_seconds=0.5,
    )
    consumer = LakeConsumer(settings)
    consumer.run(max_idle_s=5)
    # The consumer keeps going: every good quote is in the lake, none of the bad ones.
    lake = Lake(file_lake)
    quotes, _ = lake_reader(lake, "quotes")
    assert consumer.stats.dead_letters == len(MALFORMED) + 1
    assert sorted(quotes["quote_ts"].cast(pa.string()).to_pylist()) == sorted(
        f"2025-11-28 15:{i:02d}:00.000000Z" for i in range(len(MALFORMED))
    )
    # The dead letters: reason, original bytes and where they were.
    letters, _ = lake_reader(lake, "dlq")
    got = sorted(zip(letters["reason"].to_pylist(), letters["original_b64"].to_pylist(), strict=True))
    expected = sorted(
        [(r, base64.b64encode(v or b"").decode()) for v, _k, r in MALFORMED]
        + [("negative:size", base64.b64encode(orjson.dumps(trade)).decode())]
    )
    assert got == expected
    assert set(letters["source_topic"].to_pylist()) == {kafka_topics.topic_quotes, kafka_topics.topic_trades}
    assert all(o >= 0 for o in letters["source_offset"].to_pylist())
