"""`stockpipe demo`: the whole pipeline that exists, end to end on one machine, no credentials.

Local Kafka (started here), the lake in a local directory, the synthetic market. Each stage runs its
real entry point; the demo only strings them together and shows what came out.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import typer
from rich.console import Console
from rich.table import Table

from stockpipe.contracts.watchlist import Watchlist
from stockpipe.paths import cache_dir

console = Console(stderr=True)
DEMO_SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "BRK.B", "JPM", "V"]


def _last_full_session(now: datetime) -> datetime:
    from stockpipe.marketdata import calendar

    day = now.astimezone(calendar.NEW_YORK).date()
    s = calendar.session(day)
    if s is None or now < s.close_utc:
        day = calendar.previous_session(day)
    return datetime.combine(day, datetime.min.time(), UTC)


def demo_command(
    port_base: int = typer.Option(29000, help="Ports for the demo's own services (Kafka at base+92)"),
    lake_dir: Path = typer.Option(Path(".lake"), help="The local lake"),  # noqa: B008
    speed: float = typer.Option(20_000.0, help="Replay speed: simulated seconds per real second"),
) -> None:
    """Stream a synthetic session through Kafka into the lake and show what landed."""
    from stockpipe.localservices import manager
    from stockpipe.logs import setup_logging
    from stockpipe.settings import KafkaSettings, LakeSettings
    from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
    from stockpipe.stream.producer import ProducerSettings, build_producer
    from stockpipe.stream.topics import ensure_pipeline_topics

    setup_logging("WARNING")
    # The demo's services are its own: `stockpipe services up/down` elsewhere never touches them.
    os.environ["STOCKPIPE_STATE_DIR"] = str(cache_dir() / "demo-run")
    ports = manager.Ports.from_base(port_base)
    console.rule("[bold]local services")
    manager.up(ports, echo=console.print, only=("kafka",))
    try:
        kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{ports.kafka}")
        lake = LakeSettings(url=f"file://{lake_dir.resolve()}")
        ensure_pipeline_topics(kafka)
        day = _last_full_session(datetime.now(UTC)).date()

        console.rule(f"[bold]producer: synthetic session {day}, {len(DEMO_SYMBOLS)} symbols, quotes and trades")
        settings = ProducerSettings(
            kafka=kafka, symbols=DEMO_SYMBOLS, replay_date=day, replay_speed=speed, metrics_port=0
        )
        producer = build_producer(settings, threading.Event())
        producer._static = Watchlist(symbols=DEMO_SYMBOLS, sources=["quotes", "trades"], poll_interval_seconds=15)
        stats = producer.run()
        console.print(f"published {stats.published:,} quotes ({stats.deduplicated:,} unchanged quotes not re-sent)")

        console.rule("[bold]consumer: Kafka -> lake (Parquet, exactly once)")
        consumer = LakeConsumer(ConsumerSettings(kafka=kafka, lake=lake, metrics_port=0, group_id="demo"))
        cstats = consumer.run(max_idle_s=5)
        console.print(f"{cstats.rows:,} rows in {cstats.files} new objects; {cstats.dead_letters} dead letters")
        _show_lake(lake_dir)
    finally:
        console.rule("[bold]stopping")
        manager.down(echo=console.print)


def _show_lake(lake_dir: Path) -> None:
    table = Table("dataset", "objects", "rows", "newest object")
    for dataset in ("quotes", "trades", "dlq", "daily_bars"):
        files = sorted((lake_dir / "raw" / dataset).glob("dt=*/*.parquet"))
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        newest = str(files[-1].relative_to(lake_dir)) if files else "-"
        table.add_row(dataset, str(len(files)), f"{rows:,}", newest)
    Console().print(table)
