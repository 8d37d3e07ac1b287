"""Notifications of written lake objects (the `lake-objects` topic): consumer -> continuous bronze loader.

The consumer publishes one message per stream object once the object is durable and before it commits
the offsets the object covers. A notification is a hint, never the record of truth: a lost one is found
by the loader's periodic listing, and a repeated one is a no-op because the load ledger decides what
loads. Value (JSON): schema, key, dataset, topic, partition, first_offset, last_offset, rows, written_at.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Producer

from stockpipe.contracts.messages import iso
from stockpipe.lake.layout import StreamObject

LAKE_OBJECT_V1 = "lake_object.v1"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectNotice:
    key: str
    dataset: str
    rows: int
    written_at: datetime | None

    @classmethod
    def parse(cls, value: bytes | None) -> ObjectNotice | None:
        """The notice in a message value, or None for anything else (logged, never raised)."""
        try:
            data: Any = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict) or data.get("schema") != LAKE_OBJECT_V1:
            log.warning("ignored a message on the lake-objects topic that is no %s notice", LAKE_OBJECT_V1)
            return None
        key, dataset = data.get("key"), data.get("dataset")
        if not isinstance(key, str) or not isinstance(dataset, str) or StreamObject.parse(key) is None:
            log.warning("ignored a %s notice without a stream object key: %r", LAKE_OBJECT_V1, key)
            return None
        written = data.get("written_at")
        try:
            at = datetime.fromisoformat(written.replace("Z", "+00:00")) if isinstance(written, str) else None
        except ValueError:
            at = None
        rows = data.get("rows")
        return cls(key, dataset, rows if isinstance(rows, int) else 0, at)


def notice_value(obj: StreamObject, rows: int, written_at: datetime | None = None) -> bytes:
    return orjson.dumps(
        {
            "schema": LAKE_OBJECT_V1,
            "key": obj.key,
            "dataset": obj.dataset,
            "topic": obj.topic,
            "partition": obj.partition,
            "first_offset": obj.first_offset,
            "last_offset": obj.last_offset,
            "rows": rows,
            "written_at": iso(written_at or datetime.now(UTC)),
        }
    )


class ObjectNotifier:
    """Publishes notices through a producer the caller owns (the consumer's dead-letter producer).

    Never blocks the consumer for long and never fails it: a notice that cannot be queued is dropped
    with a warning (the loader's listing catches the object up).
    """

    def __init__(self, producer: Producer, topic: str | None) -> None:
        self.producer = producer
        self.topic = topic

    def written(self, obj: StreamObject, rows: int) -> None:
        if not self.topic:
            return
        value = notice_value(obj, rows)
        for _ in range(3):
            try:
                self.producer.produce(self.topic, value, key=f"{obj.topic}+{obj.partition}".encode())
                self.producer.poll(0)
                return
            except BufferError:
                self.producer.poll(0.2)
        log.warning("notice of %s dropped: the producer queue is full (the loader's listing will find it)", obj.key)
