"""A dead-letter topic that refuses writes: the partition holds at the refused letter, nothing is lost.

The DLQ topic's max.message.bytes is lowered below the size of the dead letters (a refusal the broker
answers with MESSAGE_TOO_LARGE, as it would for a letter over the chart's 2 MiB), then restored.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pyarrow as pa
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
from pydantic import SecretStr

from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import Lake
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
from stockpipe.stream.publisher import Publisher
from stockpipe.stream.topics import DLQ_MAX_MESSAGE_BYTES, isolated_topics
from stockpipe_dev.bench.chaos_sinks import dlq_sources
from stockpipe_dev.localservices.kafka import KafkaBroker
from stockpipe_dev.localservices.slack_standin import SlackWebhookStandin
from tests.integration.stream.support import GOOD_QUOTE, wait_for

Reader = Callable[[Lake, str], tuple[pa.Table, list[StreamObject]]]

GOOD = GOOD_QUOTE


def set_dlq_limit(kafka: KafkaSettings, max_bytes: int) -> None:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    resource = ConfigResource(ResourceType.TOPIC, kafka.topic_dlq, set_config={"max.message.bytes": str(max_bytes)})
    for future in admin.alter_configs([resource]).values():
        future.result(timeout=20)


def committed(kafka: KafkaSettings, group: str) -> int:
    probe = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group})
    tp = probe.committed([TopicPartition(kafka.topic_quotes, 0)], timeout=10)[0]
    probe.close()
    return int(tp.offset)


def test_a_refused_dead_letter_holds_its_partition_and_is_sent_again_when_the_topic_takes_it(
    kafka_broker: KafkaBroker,
    file_lake: LakeSettings,
    lake_reader: Reader,
    slack_standin: SlackWebhookStandin,
) -> None:
    kafka = isolated_topics(kafka_broker.bootstrap, uuid.uuid4().hex[:8], partitions=1)
    set_dlq_limit(kafka, 1024)  # every dead letter below is bigger: refused (watermarks still fit)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    bad_offsets, good = [], 0
    for i in range(40):
        at = f"2025-11-28T15:{i:02d}:00Z"
        if i % 10 == 5:
            bad_offsets.append(i)
            producer.produce(kafka.topic_quotes, b'{"pad": "' + b"x" * 2000 + b'"}', key=b"AAPL")
        else:
            good += 1
            producer.produce(kafka.topic_quotes, orjson.dumps({**GOOD, "quote_ts": at, "fetched_at": at}), key=b"AAPL")
    assert producer.flush(20) == 0
    publisher = Publisher(kafka)
    publisher.watermark(kafka.topic_quotes, datetime(2025, 11, 28, 21, tzinfo=UTC))  # every window closes
    assert publisher.flush() == 0

    settings = ConsumerSettings(
        kafka=kafka,
        lake=file_lake,
        metrics_port=0,
        group_id="dlq-refused",
        window_seconds=60,
        dlq_window_seconds=1,
        heartbeat_seconds=0.5,
        slack_webhook_url=SecretStr(slack_standin.webhook_url()),
        alert_min_interval_s=1.0,
    )
    consumer = LakeConsumer(settings)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    lake = Lake(file_lake)
    try:
        assert wait_for(lambda: len(slack_standin.texts()) == 1, 60), slack_standin.texts()
        assert "refuses dead letters" in slack_standin.texts()[0]
        # Held: no lake object and no commit past the first refused letter, while it is refused.
        assert wait_for(lambda: consumer._refused_since is not None, 30)
        _, objects = lake_reader(lake, "quotes")
        assert all(o.last_offset < bad_offsets[0] for o in objects), objects
        assert committed(kafka, "dlq-refused") <= bad_offsets[0]
        ok, detail = consumer.health()
        assert ok, detail  # a known outage within its budget
        assert detail["dead_letters_outstanding"] >= 1

        set_dlq_limit(kafka, DLQ_MAX_MESSAGE_BYTES)  # the topic takes them again
        assert wait_for(lambda: len(slack_standin.texts()) == 2, 60), slack_standin.texts()
        assert "takes dead letters again" in slack_standin.texts()[1]
        assert wait_for(lambda: lake_reader(lake, "quotes")[0].num_rows == good, 60)
        assert wait_for(lambda: committed(kafka, "dlq-refused") == 41, 30)  # 40 messages and the watermark
    finally:
        consumer.stop_event.set()
        thread.join(60)
    assert not thread.is_alive()
    quotes, _ = lake_reader(lake, "quotes")
    stamps = quotes["quote_ts"].cast(pa.string()).to_pylist()
    assert len(stamps) == len(set(stamps)) == good  # lost 0, duplicated 0
    # Every bad message is in the DLQ, none in the lake.
    assert {offset for _, offset in dlq_sources(kafka)} == set(bad_offsets)
    assert not consumer._letters
