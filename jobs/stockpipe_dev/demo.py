"""`stockpipe demo`: the whole pipeline that exists, end to end on one machine, no credentials.

Local Kafka (started here), the lake in a local directory, the synthetic market. Each stage runs its
real entry point; the demo only strings them together and shows what came out.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import typer
from rich.console import Console
from rich.table import Table

from stockpipe.marketdata import calendar
from stockpipe.paths import cache_dir
from stockpipe.settings import KafkaSettings, LakeSettings

console = Console(stderr=True)
DEMO_SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "BRK.B", "JPM", "V"]


def _last_full_session(now: datetime) -> datetime:
    day = now.astimezone(calendar.NEW_YORK).date()
    s = calendar.session(day)
    if s is None or now < s.close_utc:
        day = calendar.previous_session(day)
    return datetime.combine(day, datetime.min.time(), UTC)


def demo_command(
    port_base: int = typer.Option(29000, help="Ports for the demo's own services (Kafka at base+92)"),
    lake_dir: Path = typer.Option(Path(".lake"), help="The local lake"),  # noqa: B008
    warehouse: Path = typer.Option(Path(".warehouse/stockpipe.duckdb"), help="The DuckDB warehouse"),  # noqa: B008
    speed: float = typer.Option(20_000.0, help="Replay speed: simulated seconds per real second"),
    dashboard_port: int = typer.Option(8501, help="Where the dashboard is served at the end (on a terminal)"),
) -> None:
    """Stream a synthetic session into the lake, load the year to date, build bronze/silver/gold, show marts."""
    from stockpipe.logs import setup_logging
    from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
    from stockpipe.stream.producer import ProducerSettings, build_producer
    from stockpipe.stream.topics import ensure_pipeline_topics
    from stockpipe_dev.localservices import manager

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
            kafka=kafka,
            symbols=DEMO_SYMBOLS,
            sources=["quotes", "trades"],
            replay_date=day,
            replay_speed=speed,
            metrics_port=0,
        )
        producer = build_producer(settings, threading.Event())
        stats = producer.run()
        producer.close()
        console.print(f"published {stats.published:,} quotes ({stats.deduplicated:,} unchanged quotes not re-sent)")

        console.rule("[bold]consumer: Kafka -> lake (Parquet, exactly once)")
        consumer = LakeConsumer(ConsumerSettings(kafka=kafka, lake=lake, metrics_port=0, group_id="demo"))
        cstats = consumer.run(max_idle_s=5)
        console.print(f"{cstats.rows:,} rows in {cstats.files} new objects; {cstats.dead_letters} dead letters")
        _run_batch_dags(day, lake, kafka, warehouse)
        _show_lake(lake_dir)
        _show_marts(warehouse)
        _show_live_freshness(kafka, lake, warehouse, day)
        _serve_dashboard(warehouse, lake, kafka, dashboard_port)
    finally:
        console.rule("[bold]stopping")
        manager.down(echo=console.print)


def _run_batch_dags(day: date, lake: LakeSettings, kafka: KafkaSettings, warehouse: Path) -> None:
    """The batch stages, through their Airflow DAGs in embedded mode (each task a local `stockpipe` process)."""
    from stockpipe.orchestration.embedded import run_dag

    warehouse.parent.mkdir(parents=True, exist_ok=True)
    env = {
        "STOCKPIPE_LAKE__URL": lake.url,
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "STOCKPIPE_HISTORY_SYMBOLS": ",".join(DEMO_SYMBOLS),
        "STOCKPIPE_WAREHOUSE__DUCKDB_PATH": str(warehouse.resolve()),
        "STOCKPIPE_AIRFLOW__MODE": "embedded",
    }
    after_close = datetime.combine(day, time(16, 30), calendar.NEW_YORK)
    steps = [
        # From December: the year-to-date return needs the last close of the year before.
        ("backfill_ytd", {"start": date(day.year - 1, 12, 1).isoformat(), "end": day.isoformat()},
         f"daily bars {day.year - 1}-12-01..{day} from the synthetic provider"),
        ("lake_compaction", {}, "the session's 30 s stream files compacted into one object per partition"),
        ("lake_to_bronze", {}, "lake -> bronze (DuckDB), only new objects"),
        ("dbt_build", {}, "dbt build: silver, gold, marts and their tests"),
    ]  # fmt: skip
    for dag_id, conf, what in steps:
        console.rule(f"[bold]Airflow DAG {dag_id}: {what}")
        outcome = run_dag(dag_id, after_close, conf, env=env)
        console.print(f"{outcome.state}: " + ", ".join(f"{t}={s}" for t, s in outcome.tasks.items()))
        console.print(f"[dim]log: {outcome.log_file}[/]")


def live_session_start(day: date) -> datetime:
    """Where the live segment's session clock starts: five minutes into the session before `day`.

    A past session, because the consumer judges a record's times against the Kafka record's own
    timestamp (the wall clock at produce time): a clock ahead of the wall clock makes every record
    implausible, and brokers refuse CreateTimes more than an hour ahead. The lake cuts files by the
    records' own windows, so a session older than the demo's replayed one streams into files of its own.
    """
    s = calendar.session(calendar.previous_session(day))
    assert s is not None
    return s.open_utc + timedelta(minutes=5)


def _show_live_freshness(kafka: KafkaSettings, lake: LakeSettings, warehouse: Path, day: date) -> None:
    """90 s of an earlier session streamed in real time through the continuous loader: fetched-to-gold latency."""
    from stockpipe_dev.live_segment import measure_live

    start = live_session_start(day)
    console.rule(f"[bold]freshness: {len(DEMO_SYMBOLS)} symbols live for 90 s (session clock {start:%Y-%m-%d %H:%M}Z)")
    result = measure_live(kafka, lake, warehouse, DEMO_SYMBOLS, start, 90.0, warehouse.parent)
    if not result.get("rows_measured"):
        console.print("[red]no row reached gold during the live segment")
        return
    console.print(
        f"a quote's fetched_at to queryable in gold (fct_quotes, fct_trades, mart_intraday_range): "
        f"p50 {result['fetched_to_gold_p50_s']} s, p95 {result['fetched_to_gold_p95_s']} s, "
        f"max {result['fetched_to_gold_max_s']} s over {result['rows_measured']:,} rows"
    )


def _show_marts(warehouse: Path) -> None:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        schema = con.execute(
            "select table_schema from information_schema.tables where table_name = 'mart_symbol_daily'"
        ).fetchone()
        if schema is None:
            console.print(f"[red]no mart_symbol_daily in {warehouse}: dbt_build did not build the marts")
            raise typer.Exit(1)
        rows = con.execute(
            f"""select symbol, session_date, close_price, daily_return, ma_7, ma_30, volatility_30, ytd_return
                from "{schema[0]}".mart_symbol_daily
                qualify row_number() over (partition by symbol order by session_date desc) = 1
                order by symbol"""  # noqa: S608 - the schema name comes from the catalogue
        ).fetchall()
        columns = [d[0] for d in con.description]
    finally:
        con.close()
    table = Table(*columns, title="mart_symbol_daily: the latest session per symbol")
    for row in rows:
        table.add_row(*(f"{v:,.4f}" if isinstance(v, float) else str(v) for v in row))
    Console(width=150).print(table)


def _show_lake(lake_dir: Path) -> None:
    table = Table("dataset", "objects", "rows", "newest object")
    for dataset in ("quotes", "trades", "dlq", "daily_bars"):
        files = sorted((lake_dir / "raw" / dataset).glob("dt=*/*.parquet"))
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        newest = str(files[-1].relative_to(lake_dir)) if files else "-"
        table.add_row(dataset, str(len(files)), f"{rows:,}", newest)
    Console(width=150).print(table)


def _serve_dashboard(warehouse: Path, lake: LakeSettings, kafka: KafkaSettings, port: int) -> None:
    """On a terminal, serve the dashboard on the demo's warehouse until Ctrl-C; elsewhere say how to serve it."""
    import shlex
    import subprocess
    import sys
    import time
    import urllib.request

    from stockpipe.dashboard.cli import streamlit_argv, streamlit_env

    env = {
        "STOCKPIPE_WAREHOUSE__DUCKDB_PATH": str(warehouse.resolve()),
        "STOCKPIPE_LAKE__URL": lake.url,
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "STOCKPIPE_DASHBOARD__CONSUMER_GROUP": "demo",
    }
    console.rule("[bold]dashboard")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        settings = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if "KAFKA" not in k and "CONSUMER" not in k)
        # soft_wrap: one line, so that it can be copied whatever the terminal's width.
        console.print(
            f"serve the dashboard on this warehouse with:\n  {settings} stockpipe dashboard --port {port}",
            soft_wrap=True,
        )
        return
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen(streamlit_argv(port, "127.0.0.1"), env={**streamlit_env(), **env})
    try:
        for _ in range(120):  # until /_stcore/health answers, at most a minute
            try:
                with urllib.request.urlopen(f"{url}_stcore/health", timeout=1):  # noqa: S310 - loopback
                    break
            except OSError:
                if server.poll() is not None:
                    console.print(f"[red]the dashboard stopped (exit {server.returncode})")
                    return
                time.sleep(0.5)
        console.print(f"[bold green]dashboard: {url}[/]  (Ctrl-C stops it and the demo's Kafka)")
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
