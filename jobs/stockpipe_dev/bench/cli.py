"""`stockpipe bench ...`: the benchmarks behind `make bench` and `make chaos` (results in .bench/*.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

bench_app = typer.Typer(help="Benchmarks and fault scenarios; each writes a JSON file under --out.")
OUT = typer.Option(Path(".bench"), "--out", help="Where the JSON results go")


def _show(result: dict[str, object]) -> None:
    typer.echo(json.dumps(result, indent=2))


@bench_app.command("stream")
def bench_stream(out: Path = OUT, records: int = 1_000_000, backlog: int = 5_000_000) -> None:
    """Consumer and producer rates beside kcat's on the same broker; peak RSS with a backlog."""
    from stockpipe_dev.bench.stream import run_stream_bench

    _show(run_stream_bench(out, records, backlog))


def _failed(scenario: dict[str, Any]) -> bool:
    """A record lost or duplicated in the lake or in bronze, or a scenario's own check failed."""
    counts = ("lost", "duplicated", "bronze_lost", "bronze_duplicated", "crashes")
    return any(scenario.get(key) for key in counts) or str(scenario.get("detail", "")).startswith("FAILED")


@bench_app.command("chaos")
def bench_chaos(
    out: Path = OUT,
    records: int = 1_000_000,
    outage_s: float = typer.Option(
        30.0, help="length of the object store's outage in `objectstore` and of the DLQ's refusal"
    ),
    lake_outage_s: float = typer.Option(
        300.0, help="length of lake_outage_no_restart's outage, run under the chart's stall limit and liveness probe"
    ),
    only: str | None = typer.Option(
        None,
        help="comma-separated, of: kill, broker, objectstore, storm, fuzz, loader, compaction, zombie, spool, "
        "kafkanet, s3net, slowdown, dlq_refused, lake_outage_no_restart, compaction_while_loading, operator;"
        " default all (the others' results are kept)",
    ),
) -> None:
    """Kill the consumer, restart the broker, stop the object store; count every record in the lake."""
    from stockpipe_dev.bench.chaos import run_chaos

    result = run_chaos(out, records, outage_s=outage_s, only=only, lake_outage_s=lake_outage_s)
    _show(result)
    if any(_failed(s) for s in result["scenarios"]):
        raise typer.Exit(1)


@bench_app.command("batch")
def bench_batch(out: Path = OUT) -> None:
    """A 500-symbol year-to-date backfill against the Finnhub stand-in: budget used, 429s."""
    from stockpipe_dev.bench.batch import run_batch_bench

    _show(run_batch_bench(out))


@bench_app.command("warehouse")
def bench_warehouse(out: Path = OUT) -> None:
    """Bronze load rate beside DuckDB's own read_parquet, incremental cost, dbt full vs incremental."""
    from stockpipe_dev.bench.warehouse import run_warehouse_bench

    _show(run_warehouse_bench(out))


@bench_app.command("dashboard")
def bench_dashboard(out: Path = OUT, loads: int = 20) -> None:
    """Server-side time per dashboard page (queries + figures) on 500 symbols x 10 years of bars."""
    from stockpipe_dev.bench.dashboard import run_dashboard_bench

    _show(run_dashboard_bench(out, loads=loads))


@bench_app.command("cluster")
def bench_cluster(out: Path = OUT, edits: int = 20, stream_edits: int = 10) -> None:
    """Control plane start; TickerWatchlist edit -> ConfigMap (operator) and, on the local node, -> the stream."""
    from stockpipe_dev.bench.cluster import run_cluster_bench

    _show(run_cluster_bench(out, edits=edits, stream_edits=stream_edits))


@bench_app.command("freshness")
def bench_freshness(out: Path = OUT, duration_s: float = 330.0, symbols: int = 50) -> None:
    """Real-time run: fetched_at to queryable in gold (p50/p95/max), objects per partition-hour, loader CPU."""
    from stockpipe_dev.bench.freshness import run_freshness_bench

    _show(run_freshness_bench(out, duration_s, symbols))


@bench_app.command("images")
def bench_images(out: Path = OUT, cold: bool = typer.Option(True, help="also time --no-cache builds")) -> None:
    """Each image's size, Python environment size, cold and warm build times (local Docker engine)."""
    from stockpipe_dev.bench.images import run_images_bench

    _show(run_images_bench(out, cold=cold))


@bench_app.command("all")
def bench_all(out: Path = OUT) -> None:
    """Every benchmark: stream, batch, warehouse, dashboard, cluster."""
    bench_stream(out)
    bench_batch(out)
    bench_warehouse(out)
    bench_freshness(out)
    bench_dashboard(out)
    bench_cluster(out)
    bench_images(out)
