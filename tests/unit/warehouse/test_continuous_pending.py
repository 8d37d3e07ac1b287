"""The continuous loader's pending notices are bounded: the oldest go first, counted, and a catch-up follows."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

from stockpipe.lake.layout import StreamObject
from stockpipe.lake.notices import notice_value
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.warehouse.continuous import ContinuousLoader, ContinuousLoaderSettings
from stockpipe.warehouse.settings import WarehouseTargetSettings


class Message:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value


class Notices:
    """Stands in for the Kafka consumer: hands out the queued notices, then nothing."""

    def __init__(self, values: list[bytes]) -> None:
        self.values = values

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        taken, self.values = self.values[:num_messages], self.values[num_messages:]
        return [Message(v) for v in taken]

    def close(self) -> None:
        pass


def test_pending_notices_are_capped_dropping_the_oldest(tmp_path: Path) -> None:
    settings = ContinuousLoaderSettings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),  # never contacted
        lake=LakeSettings(url=f"file://{tmp_path / 'lake'}"),
        warehouse=WarehouseTargetSettings(duckdb_path=tmp_path / "wh.duckdb"),
        metrics_port=0,
        max_pending_notices=100,
    )
    loader = ContinuousLoader(settings)
    loader.consumer.close()
    objects = [StreamObject("quotes", date(2025, 1, 10), "quotes", 0, i, i) for i in range(250)]
    loader.consumer = Notices([notice_value(o, 1) for o in objects])  # type: ignore[assignment]
    loader.last_catchup = 0.0
    for _ in range(3):
        loader._read_notices()
    assert len(loader.pending) == 100
    assert list(loader.pending) == [o.key for o in objects[-100:]]  # the newest kept
    assert loader.dropped_notices == 150
    assert loader.last_catchup == -math.inf  # the next cycle lists what the dropped notices named
    loader.heartbeat.close()
