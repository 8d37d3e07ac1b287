"""A short live segment of the intraday path, measured: producer -> Kafka -> consumer -> continuous loader -> gold.

`make demo` replays its session at thousands of times real speed, where wall-clock freshness means
nothing; so after the batch stages it streams a minute or two in real time (a session clock: a session
instant plus the wall time elapsed, not accelerated), with the consumer and the continuous loader at
their default settings, and reports fetched-to-gold latencies from the loader's own measurements.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from stockpipe.settings import KafkaSettings, LakeSettings


class SessionClock:
    """Real time, shifted into a session: now() = start + wall time elapsed (not accelerated)."""

    def __init__(self, start: datetime, stop: threading.Event) -> None:
        self.start = start
        self.wall_start = time.time()
        self.stop = stop

    @property
    def offset_s(self) -> float:
        """Wall time minus session time (constant)."""
        return self.wall_start - self.start.timestamp()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.time() - self.wall_start)

    def sleep(self, seconds: float) -> bool:
        return not self.stop.wait(max(0.0, seconds))


def latencies(latency_log: Path, offset_s: float) -> np.ndarray:
    """Wall-clock fetched-to-gold seconds from the loader's log (its latencies are against session time)."""
    values: list[float] = []
    if latency_log.exists():
        for line in latency_log.read_bytes().splitlines():
            values.extend(v - offset_s for v in orjson.loads(line)["latency_s"])
    return np.asarray(values, dtype=float)


def summary(values: np.ndarray) -> dict[str, Any]:
    if not len(values):
        return {"rows_measured": 0}
    return {
        "rows_measured": len(values),
        "fetched_to_gold_p50_s": round(float(np.percentile(values, 50)), 1),
        "fetched_to_gold_p95_s": round(float(np.percentile(values, 95)), 1),
        "fetched_to_gold_max_s": round(float(values.max()), 1),
    }


def measure_live(
    kafka: KafkaSettings,
    lake: LakeSettings,
    warehouse: Path,
    symbols: list[str],
    start: datetime,
    seconds: float,
    work: Path,
) -> dict[str, Any]:
    """Stream `symbols` live for `seconds` from session instant `start`; the fetched-to-gold latencies."""
    from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
    from stockpipe.stream.producer import ProducerSettings, QuoteProducer
    from stockpipe.stream.sources import SyntheticQuoteSource
    from stockpipe.warehouse.continuous import ContinuousLoader, ContinuousLoaderSettings
    from stockpipe.warehouse.settings import WarehouseTargetSettings

    log = work / "live-latency.jsonl"
    log.unlink(missing_ok=True)
    loader = ContinuousLoader(
        ContinuousLoaderSettings(
            kafka=kafka,
            lake=lake,
            warehouse=WarehouseTargetSettings(duckdb_path=warehouse),
            group_id="live-loader",
            metrics_port=0,
            latency_log=log,
        )
    )
    consumer = LakeConsumer(ConsumerSettings(kafka=kafka, lake=lake, metrics_port=0, group_id="live-consumer"))
    threads = [threading.Thread(target=loader.run, daemon=True), threading.Thread(target=consumer.run, daemon=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 300
    while not loader.built_once and time.monotonic() < deadline:
        time.sleep(0.5)  # the loader's first build (whatever the intraday models read from)
    stop = threading.Event()
    clock = SessionClock(start, stop)
    producer = QuoteProducer(
        ProducerSettings(kafka=kafka, symbols=symbols, sources=["quotes", "trades"], metrics_port=0),
        SyntheticQuoteSource(),
        clock,
        stop,
    )
    streaming = threading.Thread(target=producer.run, daemon=True)
    streaming.start()
    time.sleep(seconds)
    stop.set()
    streaming.join(60)
    for topic in (kafka.topic_quotes, kafka.topic_trades):
        producer.publisher.watermark(topic, clock.now() + timedelta(minutes=2))  # the last files close
    producer.close()
    time.sleep(20)
    consumer.stop_event.set()
    loader.stop.set()
    for t in threads:
        t.join(120)
    return {**summary(latencies(log, clock.offset_s)), "seconds": seconds, "symbols": len(symbols)}
