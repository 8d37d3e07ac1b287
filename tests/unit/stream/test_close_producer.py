"""Closing a Kafka producer at exit: bounded, and the client's threads stop (no reconnect loop left behind)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, Producer

from stockpipe.stream.publisher import close_producer
from stockpipe_dev.localservices.process import free_port


def _unreachable_producer() -> Producer:
    # message.timeout.ms 0: queued messages never expire, as in the publisher; Producer.close() alone
    # would wait for them forever.
    return Producer({"bootstrap.servers": f"127.0.0.1:{free_port()}", "message.timeout.ms": 0, "log_level": 0})


@pytest.mark.timeout(60)
def test_a_producer_whose_broker_is_gone_closes_dropping_what_it_holds() -> None:
    producer = _unreachable_producer()
    reports: list[KafkaError | None] = []
    for n in range(3):
        producer.produce("t", str(n).encode(), on_delivery=lambda err, _msg: reports.append(err))
    assert close_producer(producer, 0.2) == 3
    # Every dropped message got its delivery report, as a purge, not a success.
    assert [e.code() if e else None for e in reports] == [KafkaError._PURGE_QUEUE] * 3
    with pytest.raises(RuntimeError, match="closed"):
        producer.produce("t", b"late")


@pytest.mark.timeout(60)
def test_an_idle_producer_closes_with_nothing_dropped() -> None:
    producer = _unreachable_producer()
    assert close_producer(producer, 0.2) == 0
    with pytest.raises(RuntimeError, match="closed"):
        producer.poll(0)
