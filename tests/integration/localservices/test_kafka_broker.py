from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer

from stockpipe.stream.topics import ensure_topic
from stockpipe_dev.localservices.health import check_kafka
from stockpipe_dev.localservices.kafka import KafkaBroker


def test_ten_thousand_records_through_kafka_and_back(kafka_broker: KafkaBroker) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka_broker.bootstrap, topic, partitions=3)
    sent = {f"record-{i}".encode() for i in range(10_000)}
    failures: list[object] = []
    producer = Producer(
        {"bootstrap.servers": kafka_broker.bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
    )
    for i, value in enumerate(sorted(sent)):
        producer.produce(
            topic, value, key=str(i % 17).encode(), on_delivery=lambda err, _msg: failures.append(err) if err else None
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    assert failures == []

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_broker.bootstrap,
            "group.id": topic,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    received: list[bytes] = []
    try:
        for _ in range(200):
            for msg in consumer.consume(num_messages=5000, timeout=1.0):
                assert msg.error() is None
                received.append(msg.value())
            if len(received) >= len(sent):
                break
    finally:
        consumer.close()
    assert len(received) == 10_000
    assert set(received) == sent


def test_health_check_produces_and_consumes(kafka_broker: KafkaBroker) -> None:
    assert "consumed back" in check_kafka(kafka_broker.bootstrap)
