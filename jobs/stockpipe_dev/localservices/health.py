"""Health checks that do real work: a record through Kafka, an object through the object store."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from stockpipe.stream.topics import ensure_topic

HEALTH_TOPIC = "_stockpipe_health"


def check_kafka(bootstrap: str, timeout_s: float = 20.0) -> str:
    """Produce one record and consume it back; returns what was seen or raises."""
    ensure_topic(bootstrap, HEALTH_TOPIC)
    marker = uuid.uuid4().hex.encode()
    delivered: list[Any] = []
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    producer.produce(HEALTH_TOPIC, marker, on_delivery=lambda err, msg: delivered.append((err, msg)))
    producer.flush(timeout_s)
    if not delivered or delivered[0][0] is not None:
        raise RuntimeError(f"Kafka: produce failed: {delivered[0][0] if delivered else 'no delivery report'}")
    msg = delivered[0][1]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "stockpipe-health", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(HEALTH_TOPIC, msg.partition(), msg.offset())])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = consumer.poll(1.0)
            if got is not None and got.error() is None and got.value() == marker:
                return f"record produced and consumed back at {HEALTH_TOPIC}[{got.partition()}]@{got.offset()}"
        raise RuntimeError("Kafka: produced record was not consumed back in time")
    finally:
        consumer.close()


def check_object_store(fs: Any, bucket: str) -> str:
    """Put an object, read it back, delete it."""
    path = f"{bucket}/_health/{uuid.uuid4().hex}"
    payload = uuid.uuid4().bytes
    fs.pipe(path, payload)
    back = fs.cat(path)
    fs.rm(path)
    if back != payload:
        raise RuntimeError("object store: object read back differs from what was written")
    return f"object put and read back at s3://{path}"
