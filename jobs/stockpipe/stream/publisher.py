"""Publishing to Kafka: idempotent producer, key = symbol, delivery reports checked, bounded local queue.

When the broker is away, librdkafka's local queue (bounded) holds what is produced; when it is full,
publish() waits (back-pressure on the source). If it stays full past the timeout it raises
ProducerQueueFull with what is wrong; the caller keeps the messages and retries. Nothing is dropped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import Counter

from stockpipe.contracts.messages import WATERMARK_V1, MessageSchema, iso
from stockpipe.settings import KafkaSettings
from stockpipe.stream.validation import BatchValidator

log = logging.getLogger("stockpipe.publisher")

PUBLISHED = Counter("stockpipe_producer_published_total", "Messages acknowledged by Kafka", ["topic"])
# (acknowledgements are counted in bulk, so the topic label is "all")
REJECTED = Counter("stockpipe_producer_rejected_total", "Messages refused before publishing", ["reason"])
DELIVERY_FAILED = Counter("stockpipe_producer_delivery_failed_total", "Messages Kafka did not acknowledge", ["topic"])


class ProducerQueueFull(RuntimeError):
    """The bounded local queue stayed full: the broker is not acknowledging."""


@dataclass
class PublishResult:
    queued: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


class Publisher:
    def __init__(self, kafka: KafkaSettings, max_queue_messages: int = 100_000, full_timeout_s: float = 30.0) -> None:
        self.kafka = kafka
        self.full_timeout_s = full_timeout_s
        self.max_queue_messages = max_queue_messages
        self.producer = Producer(
            {
                **kafka.client_config(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 20,
                "compression.type": "lz4",
                "queue.buffering.max.messages": max_queue_messages,
                "queue.buffering.max.kbytes": 262_144,
                # Never expire messages in the queue: a broker outage back-pressures instead of dropping.
                "message.timeout.ms": 0,
                # Callbacks only for failures: a Python call per acknowledged message would halve throughput.
                "delivery.report.only.error": True,
            }
        )
        self._validators: dict[str, BatchValidator] = {}
        self.queued = 0
        self.delivered = 0
        self.failed = 0
        self.last_error: str | None = None

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            self.last_error = err.str()
            DELIVERY_FAILED.labels(msg.topic() or "").inc()
            log.error("delivery failed for %s key %r: %s", msg.topic(), msg.key(), err.str())

    def _account(self) -> None:
        """Acknowledged = queued - still in the queue - failed (success reports are not delivered one by one)."""
        acknowledged = self.queued - len(self.producer) - self.failed
        if acknowledged > self.delivered:
            PUBLISHED.labels("all").inc(acknowledged - self.delivered)
            self.delivered = acknowledged

    def _try_produce(self, topic: str, value: bytes, key: bytes | None, partition: int | None) -> bool:
        """Queue one message; False when the local queue is full."""
        try:
            if partition is None:
                self.producer.produce(topic, value, key, on_delivery=self._on_delivery)
            else:
                self.producer.produce(topic, value, key, partition, on_delivery=self._on_delivery)
        except BufferError:
            return False
        self.queued += 1
        return True

    def _produce(self, topic: str, value: bytes, key: bytes | None, partition: int | None = None) -> None:
        if self._try_produce(topic, value, key, partition):
            return
        deadline = time.monotonic() + self.full_timeout_s
        while True:
            self.producer.poll(0.1)
            if self._try_produce(topic, value, key, partition):
                return
            if time.monotonic() > deadline:
                raise ProducerQueueFull(
                    f"the local queue of {self.max_queue_messages} messages has been full for "
                    f"{self.full_timeout_s:.0f}s: Kafka at {self.kafka.bootstrap_servers} is not acknowledging"
                    f" (last error: {self.last_error})"
                )

    def publish(self, topic: str, schema: MessageSchema, messages: list[dict[str, Any]]) -> PublishResult:
        """Check a batch against the contract, then queue the valid ones (key = symbol)."""
        result = PublishResult()
        if not messages:
            return result
        values = [orjson.dumps(m) for m in messages]
        keys = [str(m.get("symbol", "")).encode() for m in messages]
        validator = self._validators.setdefault(schema.name, BatchValidator(schema))
        n = len(values)
        checked = validator.check(
            values,
            keys,
            np.zeros(n, np.int64),
            np.arange(n, dtype=np.int64),
            np.full(n, int(time.time() * 1000), np.int64),
        )
        bad = {r.offset for r in checked.rejects}
        for r in checked.rejects:
            result.rejected[r.reason] = result.rejected.get(r.reason, 0) + 1
            REJECTED.labels(r.reason.split(":", 1)[0]).inc()
            log.warning("not published: %s %s", r.reason, (r.value or b"")[:200].decode("utf-8", "replace"))
        produce = self._produce
        for i, (value, key) in enumerate(zip(values, keys, strict=True)):
            if i not in bad:
                produce(topic, value, key)
        result.queued = n - len(bad)
        self.producer.poll(0)
        return result

    def watermark(self, topic: str, ts: datetime) -> int:
        """A watermark in every partition: record time has reached ts (closes the consumer's open files)."""
        partitions = self.producer.list_topics(topic, timeout=10).topics[topic].partitions
        value = orjson.dumps({"schema": WATERMARK_V1, "watermark_ts": iso(ts)})
        for p in partitions:
            self._produce(topic, value, None, partition=p)
        self.producer.poll(0)
        return len(partitions)

    def poll(self) -> None:
        self.producer.poll(0)
        self._account()

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for delivery reports; returns how many are still in the queue."""
        remaining = int(self.producer.flush(timeout_s))
        self._account()
        return remaining
