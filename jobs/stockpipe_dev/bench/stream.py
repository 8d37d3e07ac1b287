"""`make bench` for the real-time path: our producer and consumer beside kcat on the same local broker.

Writes `.bench/stream.json`. Rates are ratios against kcat measured in the same run on the same
machine, never absolute promises.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from stockpipe.contracts.messages import QUOTE_V1, iso
from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import Lake
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
from stockpipe.stream.publisher import Publisher
from stockpipe.stream.topics import ensure_topic
from stockpipe_dev.localservices.kafka import KafkaBroker
from stockpipe_dev.localservices.process import free_port

console = Console(stderr=True)
SYMBOLS = [f"S{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(100)]
SESSION_OPEN = datetime(2025, 12, 2, 14, 30, tzinfo=UTC)


def quote_messages(n: int) -> list[dict[str, Any]]:
    """n distinct quotes: 100 symbols, one quote per symbol every 0.1 s of record time."""
    out = []
    for i in range(n):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        ts = SESSION_OPEN + timedelta(milliseconds=100 * (i // len(SYMBOLS)))
        price = 100.0 + (i % 997) / 100
        out.append(
            {
                "schema": QUOTE_V1.name,
                "symbol": symbol,
                "quote_ts": iso(ts),
                "fetched_at": iso(ts + timedelta(seconds=1)),
                "source": "bench",
                "price": price,
                "change": 0.5,
                "change_pct": 0.5,
                "day_high": price + 1,
                "day_low": price - 1,
                "day_open": price,
                "prev_close": price - 0.5,
            }
        )
    return out


def kcat_produce(bootstrap: str, topic: str, lines: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            "kcat",
            "-P",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-K",
            "\t",
            "-l",
            "-X",
            "enable.idempotence=true",
            "-X",
            "acks=all",
            "-X",
            "linger.ms=20",
            "-X",
            "compression.type=lz4",
            str(lines),
        ],
        check=True,
    )
    return time.perf_counter() - start


def produce_with_publisher(bootstrap: str, topic: str, messages: list[dict[str, Any]]) -> float:
    """Seconds for our Publisher to queue and have acknowledged all messages, in batches of 10,000."""
    publisher = Publisher(KafkaSettings(bootstrap_servers=bootstrap), max_queue_messages=500_000)
    start = time.perf_counter()
    for i in range(0, len(messages), 10_000):
        publisher.publish(topic, QUOTE_V1, messages[i : i + 10_000])
    if publisher.flush(120):
        raise RuntimeError("our producer left messages unacknowledged")
    return time.perf_counter() - start


def kcat_read(bootstrap: str, topic: str, expected: int) -> float:
    start = time.perf_counter()
    out = subprocess.run(
        ["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o\n"],
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - start
    got = out.stdout.count(b"\n")
    if got != expected:
        raise RuntimeError(f"kcat read {got} records, expected {expected}")
    return elapsed


def lake_rows(lake: Lake, dataset: str) -> int:
    import pyarrow.parquet as pq

    total = 0
    for info in lake.walk(f"raw/{dataset}"):
        if StreamObject.parse(info.key):
            total += pq.ParquetFile(lake.path(info.key)).metadata.num_rows
    return total


def run_stream_bench(out_dir: Path, records: int = 1_000_000, backlog: int = 5_000_000) -> dict[str, Any]:
    if not shutil.which("kcat"):
        raise RuntimeError("kcat is not installed: `make prereqs` installs it (Debian: apt-get install kcat)")
    work = Path(tempfile.mkdtemp(prefix="stockpipe-bench-"))
    broker = KafkaBroker(work / "kafka", free_port(), free_port(), heap="1g")
    record = broker.start()
    try:
        bootstrap = broker.bootstrap
        for topic in ("warmup", "ours", "ours-2", "theirs", "theirs-2", "backlog"):
            ensure_topic(bootstrap, topic, partitions=3)
        console.print(f"generating {records:,} quote messages")
        messages = quote_messages(records)
        lines = work / "quotes.tsv"
        with open(lines, "wb") as f:
            for m in messages:
                f.write(m["symbol"].encode() + b"\t" + orjson.dumps(m) + b"\n")

        # A fresh broker is slower (JIT, new segments) for whoever goes first: warm it up, then run
        # ours and kcat in turn, twice, and keep each one's best run.
        console.print("warm-up: kcat")
        kcat_produce(bootstrap, "warmup", lines)
        producer_runs: list[float] = []
        kcat_produce_runs: list[float] = []
        for ours, theirs in (("ours", "theirs"), ("ours-2", "theirs-2")):
            console.print(f"producer: ours -> {ours}")
            producer_runs.append(produce_with_publisher(bootstrap, ours, messages))
            console.print(f"producer: kcat -> {theirs}")
            kcat_produce_runs.append(kcat_produce(bootstrap, theirs, lines))
        producer_s, kcat_produce_s = min(producer_runs), min(kcat_produce_runs)
        publisher = Publisher(KafkaSettings(bootstrap_servers=bootstrap))
        publisher.watermark("ours", SESSION_OPEN + timedelta(days=1))  # as at a session close: last files close
        publisher.flush(30)
        del messages

        console.print("read: kcat")
        kcat_read_runs = [kcat_read(bootstrap, "ours", records + 3) for _ in range(2)]  # and the 3 watermarks
        kcat_read_s = min(kcat_read_runs)
        console.print("consumer: ours")
        lake_settings = LakeSettings(url=f"file://{work / 'lake'}")
        settings = ConsumerSettings(
            kafka=KafkaSettings(
                bootstrap_servers=bootstrap, topic_quotes="ours", topic_trades="unused-t", topic_dlq="unused-d"
            ),
            lake=lake_settings,
            metrics_port=0,
            group_id="bench",
            window_seconds=3600,
        )
        ensure_topic(bootstrap, "unused-t")
        ensure_topic(bootstrap, "unused-d")
        consumer = LakeConsumer(settings)
        consumer.run(max_idle_s=3)
        # From the first record polled to the last object durable: the group join before it and the
        # idle wait that ends the run are not throughput (kcat reads without a group).
        consumer_s = consumer.stats.last_flush - consumer.stats.first_message
        in_lake = lake_rows(Lake(lake_settings), "quotes")
        if in_lake != records:
            raise RuntimeError(f"the lake holds {in_lake} rows, expected {records}")

        console.print(f"backlog: {backlog:,} messages, consumer in its own process")
        rss = backlog_peak_rss(bootstrap, lines, records, backlog, work)
        result = {
            "records": records,
            "consumer_records_per_s": round(records / consumer_s),
            "consumer_timed": "from the first record polled to the last object durable",
            "kcat_read_records_per_s": round(records / kcat_read_s),
            "consumer_vs_kcat_read": round(kcat_read_s / consumer_s, 3),
            "producer_records_per_s": round(records / producer_s),
            "kcat_produce_records_per_s": round(records / kcat_produce_s),
            "producer_vs_kcat_produce": round(kcat_produce_s / producer_s, 3),
            "runs_records_per_s": {
                "producer": [round(records / t) for t in producer_runs],
                "kcat_produce": [round(records / t) for t in kcat_produce_runs],
                "kcat_read": [round(records / t) for t in kcat_read_runs],
                "method": "broker warmed up by one kcat produce; runs alternate; the best run of each is reported",
            },
            "backlog_records": backlog,
            "consumer_peak_rss_mib": rss,
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        }
    finally:
        KafkaBroker.stop(record)
        shutil.rmtree(work, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "stream.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def backlog_peak_rss(bootstrap: str, lines: Path, per_file: int, backlog: int, work: Path) -> float:
    """Peak resident memory of a consumer process draining a backlog of `backlog` messages."""
    for _ in range(backlog // per_file):
        kcat_produce(bootstrap, "backlog", lines)
    publisher = Publisher(KafkaSettings(bootstrap_servers=bootstrap))
    publisher.watermark("backlog", SESSION_OPEN + timedelta(days=1))
    publisher.flush(30)
    env = {
        **os.environ,
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "STOCKPIPE_KAFKA__TOPIC_QUOTES": "backlog",
        "STOCKPIPE_KAFKA__TOPIC_TRADES": "unused-t",
        "STOCKPIPE_KAFKA__TOPIC_DLQ": "unused-d",
        "STOCKPIPE_LAKE__URL": f"file://{work / 'backlog-lake'}",
        "STOCKPIPE_GROUP_ID": "bench-backlog",
        "STOCKPIPE_METRICS_PORT": "0",
        "STOCKPIPE_WINDOW_SECONDS": "3600",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "stockpipe.cli", "consumer"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    lake = Lake(LakeSettings(url=f"file://{work / 'backlog-lake'}"))
    peak_kib = 0
    deadline = time.monotonic() + 900
    # The same messages repeat in the backlog; every copy is a distinct record with its own offset.
    try:
        while time.monotonic() < deadline:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak_kib = max(
                    peak_kib, int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
                )
            except (FileNotFoundError, StopIteration):
                break
            if lake_rows(lake, "quotes") >= backlog:
                break
            time.sleep(1.0)
    finally:
        proc.terminate()
        proc.wait(60)
    return round(peak_kib / 1024, 1)
