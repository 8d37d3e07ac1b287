"""Publisher: bulk queueing keeps order and drops only what the contract rejects; a full queue pushes back."""

from __future__ import annotations

import time

import orjson
import pytest
from confluent_kafka import Consumer

from stockpipe.contracts.messages import QUOTE_V1
from stockpipe.settings import KafkaSettings
from stockpipe.stream.publisher import ProducerQueueFull, Publisher
from stockpipe_dev.bench.stream import quote_messages
from stockpipe_dev.localservices.process import free_port


def read_back(kafka: KafkaSettings, topic: str, expected: int) -> list[tuple[int, bytes, bytes]]:
    consumer = Consumer(
        {"bootstrap.servers": kafka.bootstrap_servers, "group.id": f"read-{topic}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    got: list[tuple[int, bytes, bytes]] = []
    deadline = time.monotonic() + 60
    while len(got) < expected and time.monotonic() < deadline:
        for m in consumer.consume(1000, 1.0):
            if m.error() is None:
                got.append((m.partition(), m.key() or b"", m.value() or b""))
    consumer.close()
    return got


def test_a_large_batch_keeps_per_key_order_and_loses_only_the_rejects(kafka_topics: KafkaSettings) -> None:
    messages = quote_messages(Publisher.CHUNK * 3 + 77)  # several chunks and a short last one
    bad_at = [0, Publisher.CHUNK - 1, Publisher.CHUNK, 2 * Publisher.CHUNK + 5, len(messages) - 1]
    for i in bad_at:  # straddling chunk boundaries: an all-zero price and a negative one
        messages[i] = {**messages[i], "price": 0.0 if i % 2 else -1.0}
    publisher = Publisher(kafka_topics)
    result = publisher.publish(kafka_topics.topic_quotes, QUOTE_V1, messages)
    assert publisher.flush() == 0
    assert result.queued == len(messages) - len(bad_at)
    assert sum(result.rejected.values()) == len(bad_at)
    assert set(result.rejected) <= {"non_positive:price", "negative:price"}

    got = read_back(kafka_topics, kafka_topics.topic_quotes, result.queued)
    expected = [m for i, m in enumerate(messages) if i not in set(bad_at)]
    assert len(got) == len(expected)
    # Per key (one partition each), messages arrive exactly once and in the order they were given.
    for symbol in {m["symbol"] for m in expected}:
        sent = [orjson.dumps(m) for m in expected if m["symbol"] == symbol]
        received = [v for _, k, v in got if k == symbol.encode()]
        assert received == sent
        assert len({p for p, k, _ in got if k == symbol.encode()}) == 1


def test_a_full_queue_pushes_back_then_fails_clearly_and_hands_back_the_rest() -> None:
    # Nothing listens on this loopback port: the broker is away and nothing is acknowledged.
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    publisher = Publisher(kafka, max_queue_messages=500, full_timeout_s=1.0)
    messages = quote_messages(Publisher.CHUNK + 300)
    messages[10] = {**messages[10], "price": 0.0}  # rejected before the queue fills
    started = time.monotonic()
    with pytest.raises(ProducerQueueFull, match=r"local queue of 500 messages has been full for 1s") as caught:
        publisher.publish("quotes", QUOTE_V1, messages)
    assert time.monotonic() - started >= 1.0  # it waited (back-pressure) before giving up
    exc = caught.value
    assert exc.result.queued == 500 == len(publisher.producer)
    assert exc.result.rejected == {"non_positive:price": 1}
    # The rest comes back in order, so a retry publishes each message once.
    assert exc.remaining == [m for i, m in enumerate(messages) if i != 10][500:]
    publisher.producer.purge()
