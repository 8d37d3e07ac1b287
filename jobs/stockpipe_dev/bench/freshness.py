"""`stockpipe bench freshness`: a quote's fetched_at to the moment it is queryable in gold, wall clock.

A real-time run: 50 symbols polled by the producer at its default interval on a session clock that runs
at real speed (a session instant plus the wall time elapsed, so quotes are "live" during an open
session whatever the day the bench runs), through a local broker, `stockpipe consumer` and
`stockpipe load continuous` (each its own process, at default settings), into a DuckDB warehouse.
The loader logs, for every intraday build, the fetched_at of each gold row that build made visible and
the instant it finished; the session clock's offset turns those into wall-clock latencies. CPU is the
loader process's (its loads and its in-process dbt builds), from /proc, over the run.
Writes `.bench/freshness.json`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.producer import ProducerSettings, QuoteProducer
from stockpipe.stream.sources import SyntheticQuoteSource
from stockpipe.stream.topics import isolated_topics
from stockpipe_dev.bench.chaos_common import workload_env
from stockpipe_dev.live_segment import SessionClock, latencies
from stockpipe_dev.localservices.kafka import KafkaBroker
from stockpipe_dev.localservices.process import free_port

console = Console(stderr=True)
SESSION = datetime(2025, 12, 2, 15, 0, tzinfo=UTC)  # 10:00 New York, an ordinary session
SYMBOLS_50 = [
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "BRK.B", "JPM", "V",
    "UNH", "XOM", "JNJ", "WMT", "MA", "PG", "AVGO", "HD", "CVX", "MRK",
    "ABBV", "COST", "PEP", "KO", "ADBE", "CRM", "NFLX", "TMO", "BAC", "ORCL",
    "ACN", "MCD", "CSCO", "ABT", "LIN", "DHR", "AMD", "WFC", "DIS", "TXN",
    "PM", "INTC", "VZ", "NEE", "CMCSA", "QCOM", "HON", "UPS", "IBM", "BF-B",
]  # fmt: skip


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its waited-for children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _env(kafka: KafkaSettings, lake: LakeSettings, warehouse: Path) -> dict[str, str]:
    return {
        **workload_env(kafka, lake),
        "STOCKPIPE_WAREHOUSE__DUCKDB_PATH": str(warehouse),
        "STOCKPIPE_LOG_LEVEL": "INFO",
    }


def _health(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except OSError:
        return {}


def _percentile(values: np.ndarray, q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if len(values) else float("nan")


def run_freshness_bench(out_dir: Path, duration_s: float = 330.0, symbols: int = 50) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="stockpipe-freshness-"))
    broker = KafkaBroker(work / "kafka", free_port(), free_port())
    record = broker.start()
    procs: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    try:
        kafka = isolated_topics(broker.bootstrap, "freshness")
        lake_settings = LakeSettings(url=f"file://{work / 'lake'}")
        warehouse = work / "warehouse" / "stockpipe.duckdb"
        latency_log = work / "latency.jsonl"
        env = _env(kafka, lake_settings, warehouse)
        loader_port = free_port()
        log = open(work / "services.log", "ab")  # noqa: SIM115 - closed in finally
        loader = subprocess.Popen(
            [sys.executable, "-m", "stockpipe.cli", "load", "continuous"],
            env={**env, "STOCKPIPE_METRICS_PORT": str(loader_port), "STOCKPIPE_LATENCY_LOG": str(latency_log),
                 "STOCKPIPE_GROUP_ID": "bench-loader"},
            stdout=log, stderr=log,
        )  # fmt: skip
        procs.append(loader)
        consumer = subprocess.Popen(
            [sys.executable, "-m", "stockpipe.cli", "consumer"],
            env={**env, "STOCKPIPE_METRICS_PORT": "0", "STOCKPIPE_GROUP_ID": "bench-consumer"},
            stdout=log, stderr=log,
        )  # fmt: skip
        procs.append(consumer)
        console.print("waiting for the loader's first build (gold created)")
        deadline = time.monotonic() + 300
        while int(_health(loader_port).get("cycles", 0)) < 1:
            if time.monotonic() > deadline or loader.poll() is not None:
                raise RuntimeError(f"the continuous loader did not start; see {work / 'services.log'}")
            time.sleep(1)

        clock = SessionClock(SESSION, stop)
        settings = ProducerSettings(
            kafka=kafka, symbols=SYMBOLS_50[:symbols], sources=["quotes", "trades"], metrics_port=0
        )
        producer = QuoteProducer(settings, SyntheticQuoteSource(), clock, stop)
        cpu_start, wall_start = _cpu_seconds(loader.pid), time.monotonic()
        thread = threading.Thread(target=producer.run, name="producer", daemon=True)
        thread.start()
        console.print(f"streaming {symbols} symbols in real time for {duration_s:.0f} s (session clock {SESSION})")
        time.sleep(duration_s)
        stop.set()
        thread.join(60)
        # The last window closes when the next record (or the session close) arrives: a watermark stands in.
        producer.publisher.watermark(kafka.topic_quotes, clock.now() + timedelta(minutes=1))
        producer.publisher.watermark(kafka.topic_trades, clock.now() + timedelta(minutes=2))
        producer.close()
        time.sleep(45)  # drain: the last files load and build
        cpu = _cpu_seconds(loader.pid) - cpu_start
        wall = time.monotonic() - wall_start
        health = _health(loader_port)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(120)
        log.close()

        values = latencies(latency_log, clock.offset_s)
        lake = Lake(lake_settings)
        objects = [o for o in (StreamObject.parse(i.key) for i in lake.walk("raw")) if o is not None]
        partitions = {(o.topic, o.partition) for o in objects if o.dataset in ("quotes", "trades")}
        stream_objects = [o for o in objects if o.dataset in ("quotes", "trades")]
        hours = duration_s / 3600
        result = {
            "duration_s": duration_s,
            "symbols": symbols,
            "session_clock_start": SESSION.isoformat(),
            "session_open": calendar.is_open(SESSION),
            "rows_measured": len(values),
            "fetched_to_gold_p50_s": _percentile(values, 50),
            "fetched_to_gold_p95_s": _percentile(values, 95),
            "fetched_to_gold_max_s": round(float(values.max()), 2) if len(values) else float("nan"),
            "objects_per_partition_per_hour": round(len(stream_objects) / max(len(partitions), 1) / hours, 1),
            "loader_cpu_cores": round(cpu / wall, 3),
            "loader_cpu_seconds": round(cpu, 1),
            "loader_cycles": health.get("cycles"),
            "stream_partitions": len(partitions),
            "targets": {"fetched_to_gold_p95_s": 60, "fetched_to_gold_max_s": 120, "loader_cpu_cores": 0.25},
            "method": "consumer and `load continuous` as processes at default settings (30 s session windows, "
            "intraday dbt build per load); latency = end of the build that made a gold row visible minus its "
            "fetched_at on the wall clock; CPU = the loader process's utime+stime over the run",
        }
    finally:
        stop.set()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        KafkaBroker.stop(record)
        shutil.rmtree(work, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "freshness.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
