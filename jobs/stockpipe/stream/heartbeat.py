"""Heartbeats on the heartbeats topic: pipeline_watch tells a live workload from a dead one by them."""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Producer

from stockpipe.contracts.messages import iso
from stockpipe.settings import KafkaSettings
from stockpipe.stream.publisher import close_producer

HEARTBEAT_V1 = "heartbeat.v1"
log = logging.getLogger("stockpipe.heartbeat")


class Heartbeat:
    def __init__(self, kafka: KafkaSettings, component: str, every_s: float, producer: Producer | None = None) -> None:
        self.topic = kafka.topic_heartbeats
        self.component = component
        self.every_s = every_s
        self._own = producer is None
        self._producer = producer or Producer({**kafka.client_config(), "linger.ms": 0, "message.timeout.ms": 30_000})
        self._last = 0.0
        self.host = socket.gethostname()

    def beat_if_due(self, detail: dict[str, Any]) -> bool:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return False
        self._last = now
        value = {
            "schema": HEARTBEAT_V1,
            "component": self.component,
            "host": self.host,
            "at": iso(datetime.now(UTC)),
            **detail,
        }
        try:
            self._producer.produce(self.topic, orjson.dumps(value), key=self.component.encode())
            self._producer.poll(0)
        except BufferError:
            log.warning("heartbeat not queued: the producer queue is full")
        return True

    def close(self) -> None:
        if self._own:
            close_producer(self._producer, 5)  # a heartbeat not sent by then is stale anyway
