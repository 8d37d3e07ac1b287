"""Dashboard benchmark: `run_dashboard_bench(out_dir)` writes <out_dir>/dashboard.json.

Server-side time of each page, `loads` times: what the page's script does on a cache miss (the query
layer on the warehouse snapshot, then the Plotly figures built and serialised as Streamlit sends
them), on a warehouse of 500 symbols x 10 years of daily bars and one session of quotes for 100 of
them. The warehouse is the warehouse bench's: the same generated history inserted into bronze, then a
full `dbt run`. Not timed: the snapshot copy (once per warehouse change, not per page), the stream
probe and the lake listing of history gaps (outside the warehouse; cached separately by the app).
Target: p95 <= 1.5 s for every page.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from stockpipe.dashboard import queries, views
from stockpipe.dashboard.settings import DashboardOptions
from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.settings import LakeSettings
from stockpipe.warehouse.dbt_runner import run_dbt
from stockpipe.warehouse.duckdb_target import DuckDBTarget
from stockpipe.warehouse.settings import WarehouseSettings, WarehouseTargetSettings
from stockpipe_dev.bench.warehouse import DBT_PROJECT, _bars_history, _session_quotes

log = logging.getLogger(__name__)
TARGET_P95_S = 1.5


def build_warehouse(work: Path, n_symbols: int = 500, quote_symbols: int = 100) -> tuple[Path, dict[str, Any]]:
    """Ten years of bars for n_symbols and a session of quotes in bronze, then silver and gold by dbt."""
    started = time.perf_counter()
    symbols = [f"S{i:03d}" for i in range(n_symbols)]
    days = calendar.sessions_between(date(2016, 1, 1), date(2025, 12, 31))
    lake = Lake(LakeSettings(url=f"file://{work / 'lake'}"))
    db = work / "warehouse" / "stockpipe.duckdb"
    bars = _bars_history(symbols, days)
    quotes = _session_quotes(symbols[:quote_symbols], days[-1], seed=1)
    with DuckDBTarget(db, lake) as target:
        target.ensure_schema()
        for table, data, key in (("daily_bars", bars, "raw/daily_bars/bench"), ("quotes", quotes, "raw/quotes/bench")):
            target.conn.register("history", data)
            target.conn.execute(
                f"INSERT INTO bronze.{table} SELECT *, '{key}' AS source_file, 'bench-history' AS load_id, "  # noqa: S608
                "get_current_timestamp() AS loaded_at FROM history"
            )
            target.conn.unregister("history")
        # The ledger the health page reads: one load of the objects the history would have been.
        target.conn.execute(
            "INSERT INTO bronze.load_ledger SELECT 'raw/daily_bars/dt=' || d || '/bench.parquet', "
            "'raw/daily_bars/dt=' || d, 'daily_bars', 1000, 'etag', ?, 'bench-history', get_current_timestamp() "
            "FROM unnest(?::DATE[]) AS t(d)",
            [n_symbols, days[-250:]],
        )
    settings = WarehouseSettings(
        lake=lake.settings, warehouse=WarehouseTargetSettings(duckdb_path=db, dbt_project_dir=DBT_PROJECT)
    )
    extra = {"DBT_LOG_PATH": str(work / "dbt-logs")}
    for args in (["seed"], ["run"]):
        outcome = run_dbt(args, settings, target_path=work / "dbt-target", extra_env=extra)
        if not outcome.success:
            raise RuntimeError(f"dbt {args[0]} failed: {outcome.failures() or outcome.exception}")
    return db, {
        "symbols": n_symbols,
        "sessions": len(days),
        "bars": bars.num_rows,
        "quotes": quotes.num_rows,
        "build_s": round(time.perf_counter() - started, 1),
    }


def _serialise(*figures: Any) -> None:
    for figure in figures:
        figure.to_json()  # what st.plotly_chart sends to the browser


def page_runs(reader: queries.Reader, options: DashboardOptions) -> dict[str, Callable[[int], None]]:
    """Each page's work on a cache miss, as the app does it; `i` varies the symbol like users do."""
    symbols = queries.symbols(reader)["symbol"].tolist()
    with_quotes = queries.symbols(reader).query("has_quotes")["symbol"].tolist()

    def market(i: int) -> None:
        views.AsOf.load(reader)
        view = views.market_view(reader, options.heatmap_sessions, options.heatmap_symbols, options.movers)
        _serialise(view.heatmap, view.movers)

    def symbol(i: int) -> None:
        as_of = views.AsOf.load(reader)
        queries.symbols(reader)
        end = as_of.last_session or date.today()
        view = views.symbol_view(reader, symbols[i * 7 % len(symbols)], end - timedelta(days=365), end)
        _serialise(view.figure)

    def intraday(i: int) -> None:
        views.AsOf.load(reader)
        queries.symbols(reader)
        view = views.intraday_view(reader, with_quotes[i * 3 % len(with_quotes)], None)
        _serialise(view.figure)

    def health(i: int) -> None:
        as_of = views.AsOf.load(reader)
        view = views.health_view(reader, (as_of.last_session or date.today()) - timedelta(days=30))
        _serialise(view.dead_letters_by_reason, view.loads_figure)

    return {"market": market, "symbol": symbol, "intraday": intraday, "health": health}


def time_pages(reader: queries.Reader, loads: int = 20) -> dict[str, dict[str, float]]:
    runs = page_runs(reader, DashboardOptions())
    result: dict[str, dict[str, float]] = {}
    for name, run in runs.items():
        run(0)  # warm-up: the first query of a fresh snapshot pays DuckDB's catalogue load
        times = []
        for i in range(loads):
            started = time.perf_counter()
            run(i)
            times.append(time.perf_counter() - started)
        result[name] = {
            "p50_s": round(float(np.percentile(times, 50)), 4),
            "p95_s": round(float(np.percentile(times, 95)), 4),
            "max_s": round(max(times), 4),
        }
        log.info("dashboard bench: %s %s", name, result[name])
    return result


def run_dashboard_bench(out_dir: Path, loads: int = 20) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="stockpipe-dashboard-bench-"))
    results: dict[str, Any] = {"cpus": os.cpu_count(), "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        db, warehouse = build_warehouse(work)
        reader = queries.DuckDBSnapshotReader(db, work / "snapshots")
        try:
            started = time.perf_counter()
            reader.refresh()
            results["snapshot_s"] = round(time.perf_counter() - started, 3)
            results["warehouse_mb"] = round(db.stat().st_size / 1e6, 1)
            results["pages"] = time_pages(reader, loads)
        finally:
            reader.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["warehouse"] = warehouse
    results["loads"] = loads
    results["target"] = {"p95_s": f"<= {TARGET_P95_S}"}
    results["meets_target"] = all(p["p95_s"] <= TARGET_P95_S for p in results["pages"].values())
    (out_dir / "dashboard.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results
