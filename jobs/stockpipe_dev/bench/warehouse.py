"""Warehouse benchmark: `run_warehouse_bench(out_dir)` writes <out_dir>/warehouse.json.

- bronze_rows_per_s: the loader (list, ledger lookup, read, dedup MERGE, ledger MERGE, commit) over
  a local lake of quote stream objects, beside duckdb_copy_rows_per_s: DuckDB's own
  `CREATE TABLE AS SELECT * FROM read_parquet(...)` over the same objects (target: >= 0.5x).
- incremental_ratio: time to load 10 new objects when 10,000 are already loaded, over the time to load
  10 objects into an empty bronze (target: <= 1.5). Medians of several trials.
- dbt_full_s / dbt_incremental_s: the sum of model execution times in run_results.json for a full
  `dbt run` over 10 years x 500 symbols of daily bars and one session of quotes for 100 symbols, and
  for the run after one more trading day was loaded (target: incremental <= 0.2x full). The history
  is inserted into bronze directly (1.26M single-bar objects would benchmark the file system); the new
  day goes through the lake and the loader like production data.
- s3_bronze_vs_local / s3_daily_bars_vs_local: the bronze load rate of the same objects from a local
  MinIO over the rate from local files, in the same run (quote stream files; a 500-symbol
  year-to-date backfill of daily bars as the history job writes it), when MinIO is built.
"""

# SQL is built here from identifiers defined in code.
# ruff: noqa: S608

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stockpipe.batch import lakeio
from stockpipe.contracts.bars import DAILY_BAR_SCHEMA, daily_bars_table
from stockpipe.contracts.messages import QUOTE_V1
from stockpipe.lake.layout import DAILY_BARS, BatchObject, StreamObject, daily_bar_key
from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.settings import LakeSettings
from stockpipe.warehouse.datasets import DAILY_BARS_DS, QUOTES, Dataset
from stockpipe.warehouse.dbt_runner import changed_branches, run_dbt
from stockpipe.warehouse.duckdb_target import DuckDBTarget
from stockpipe.warehouse.listing import RACY_NS
from stockpipe.warehouse.loader import BronzeLoader
from stockpipe.warehouse.settings import WarehouseSettings, WarehouseTargetSettings

log = logging.getLogger(__name__)

DBT_PROJECT = Path(__file__).resolve().parents[3] / "dbt"


def _quote_table(rng: np.random.Generator, n: int, start: datetime, first_offset: int, partition: int) -> pa.Table:
    """n quotes at consecutive seconds from `start`, for symbols drawn at random: distinct natural keys."""
    symbols = np.array([f"S{i:03d}" for i in range(100)])
    ts = np.datetime64(start.replace(tzinfo=None), "us") + np.arange(n).astype("timedelta64[s]")
    price = np.round(100 + rng.normal(0, 1, n).cumsum() * 0.01, 2)
    return pa.table(
        {
            "symbol": symbols[rng.integers(0, len(symbols), n)],
            "quote_ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "fetched_at": pa.array(ts + np.timedelta64(2, "s"), pa.timestamp("us", tz="UTC")),
            "source": ["synthetic"] * n,
            "price": price,
            "change": np.round(price - 100, 2),
            "change_pct": np.round(price - 100, 4),
            "day_high": price + 1,
            "day_low": price - 1,
            "day_open": np.full(n, 100.0),
            "prev_close": np.full(n, 100.0),
            "kafka_partition": pa.array(np.full(n, partition, dtype=np.int32)),
            "kafka_offset": pa.array(np.arange(first_offset, first_offset + n, dtype=np.int64)),
        },
        schema=QUOTE_V1.lake_schema(),
    )


def write_quote_objects(root: Path, day: date, objects: int, rows: int, seed: int = 1) -> list[str]:
    """`objects` quote stream files of `rows` rows in raw/quotes/dt=<day>/, written straight to disk."""
    rng = np.random.default_rng(seed)
    keys = []
    start = datetime(day.year, day.month, day.day, 14, 30, tzinfo=UTC)
    for i in range(objects):
        partition, first = i % 3, (i // 3) * rows
        obj = StreamObject("quotes", day, "quotes", partition, first, first + rows - 1)
        path = root / obj.key
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_quote_table(rng, rows, start + timedelta(seconds=i * rows), first, partition), path,
                       compression="zstd")  # fmt: skip
        keys.append(obj.key)
    return keys


def bronze_throughput(work: Path, objects: int = 400, rows: int = 2500) -> dict[str, Any]:
    root = work / "throughput-lake"
    keys = write_quote_objects(root, date(2025, 1, 3), objects, rows)
    lake = Lake(LakeSettings(url=f"file://{root}"))
    total = objects * rows

    def loader() -> float:
        path = work / f"throughput-{time.monotonic_ns()}.duckdb"
        with DuckDBTarget(path, lake) as target:
            report = BronzeLoader(lake, target).run()
        assert report.total_rows == total
        path.unlink()
        return report.seconds

    def duckdb_copy() -> float:
        path = work / f"copy-{time.monotonic_ns()}.duckdb"
        paths = [str(root / k) for k in keys]
        with duckdb.connect(str(path)) as conn:
            started = time.perf_counter()
            conn.execute("CREATE TABLE quotes AS SELECT * FROM read_parquet(?)", [paths])
            seconds = time.perf_counter() - started
        path.unlink()
        return seconds

    # Alternating best-of-3: the machine is shared, and the page cache should favour neither.
    copy_times, loader_times = [], []
    for _ in range(3):
        copy_times.append(duckdb_copy())
        loader_times.append(loader())
    loader_s, copy_s = min(loader_times), min(copy_times)
    return {
        "bronze_objects": objects,
        "bronze_rows": total,
        "bronze_rows_per_s": round(total / loader_s),
        "duckdb_copy_rows_per_s": round(total / copy_s),
        "bronze_vs_duckdb_copy": round(copy_s / loader_s, 3),
    }


def incremental_ratio(
    work: Path, history: int = 10_000, new: int = 10, rows: int = 50, trials: int = 5
) -> dict[str, Any]:
    per_day = 80
    first_day = date(2024, 1, 1)
    root = work / "incremental-lake"
    for d in range(history // per_day):
        write_quote_objects(root, first_day + timedelta(days=d), per_day, rows, seed=d)
    lake = Lake(LakeSettings(url=f"file://{root}"))
    time.sleep(RACY_NS / 1e9 + 0.1)  # the history's directories are settled, as they are in production
    next_day = first_day + timedelta(days=history // per_day)

    def timed_load(target: DuckDBTarget, lake: Lake) -> float:
        report = BronzeLoader(lake, target).run()
        assert report.loaded_objects == new, report.as_dict()
        return report.seconds

    with DuckDBTarget(work / "incremental.duckdb", lake) as target:
        setup = BronzeLoader(lake, target).run()
        assert setup.loaded_objects == history
        with_history = []
        for t in range(trials):
            write_quote_objects(root, next_day + timedelta(days=t), new, rows, seed=10_000 + t)
            with_history.append(timed_load(target, lake))

    empty = []
    for t in range(trials):
        small_root = work / f"small-lake-{t}"
        write_quote_objects(small_root, next_day, new, rows, seed=20_000 + t)
        small = Lake(LakeSettings(url=f"file://{small_root}"))
        with DuckDBTarget(work / f"small-{t}.duckdb", small) as target:
            target.ensure_schema()  # the tables exist in both cases: only the load is timed
            empty.append(timed_load(target, small))
    t_history, t_empty = statistics.median(with_history), statistics.median(empty)
    return {
        "incremental_history_objects": history,
        "incremental_new_objects": new,
        "incremental_load_s_with_history": round(t_history, 4),
        "incremental_load_s_empty": round(t_empty, 4),
        "incremental_ratio": round(t_history / t_empty, 3),
    }


def _bars_history(symbols: list[str], days: list[date], seed: int = 3) -> pa.Table:
    """Daily bars for every (day, symbol): a geometric random walk per symbol, OHLC consistent."""
    rng = np.random.default_rng(seed)
    n_days, n_sym = len(days), len(symbols)
    base = rng.uniform(20, 500, n_sym)
    closes = base * np.exp(np.cumsum(rng.normal(0, 0.015, (n_days, n_sym)), axis=0))
    opens = np.vstack([base, closes[:-1]]) * np.exp(rng.normal(0, 0.004, (n_days, n_sym)))
    highs = np.maximum(opens, closes) * (1 + np.abs(rng.normal(0, 0.008, (n_days, n_sym))))
    lows = np.minimum(opens, closes) * (1 - np.abs(rng.normal(0, 0.008, (n_days, n_sym))))
    day_col = np.repeat(np.array(days, dtype="datetime64[D]"), n_sym)
    fetched = np.repeat(np.array([datetime(d.year, d.month, d.day, 23) for d in days], dtype="datetime64[us]"), n_sym)
    return daily_bars_table(
        {
            "symbol": np.tile(np.array(symbols), n_days),
            "date": pa.array(day_col, pa.date32()),
            "open": np.round(opens, 2).ravel(),
            "high": np.round(highs, 2).ravel(),
            "low": np.round(lows, 2).ravel(),
            "close": np.round(closes, 2).ravel(),
            "volume": rng.integers(100_000, 50_000_000, n_days * n_sym),
            "source": ["synthetic"] * (n_days * n_sym),
            "fetched_at": pa.array(fetched, pa.timestamp("us", tz="UTC")),
        }
    )


def _session_quotes(symbols: list[str], day: date, seed: int) -> pa.Table:
    """One quote a minute for each symbol through the session (what polling /quote gives)."""
    session = calendar.session(day)
    assert session is not None
    rng = np.random.default_rng(seed)
    minutes = session.minutes
    n = minutes * len(symbols)
    ts = np.datetime64(session.open_utc.replace(tzinfo=None), "us") + np.tile(np.arange(minutes), len(symbols)).astype(
        "timedelta64[m]"
    )
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, (len(symbols), minutes)), axis=1)).ravel()
    return pa.table(
        {
            "symbol": np.repeat(np.array(symbols), minutes),
            "quote_ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "fetched_at": pa.array(ts + np.timedelta64(3, "s"), pa.timestamp("us", tz="UTC")),
            "source": ["synthetic"] * n,
            "price": np.round(prices, 2),
            "change": np.round(prices - 100, 2),
            "change_pct": np.round(prices - 100, 4),
            "day_high": np.round(prices * 1.01, 2),
            "day_low": np.round(prices * 0.99, 2),
            "day_open": np.full(n, 100.0),
            "prev_close": np.full(n, 100.0),
            "kafka_partition": pa.array(np.zeros(n, dtype=np.int32)),
            "kafka_offset": pa.array(np.arange(n, dtype=np.int64) + seed * 10_000_000),
        },
        schema=QUOTE_V1.lake_schema(),
    )


def dbt_timings(work: Path, n_symbols: int = 500, quote_symbols: int = 100) -> dict[str, Any]:
    symbols = [f"S{i:03d}" for i in range(n_symbols)]
    days = calendar.sessions_between(date(2016, 1, 1), date(2025, 12, 31))
    root = work / "dbt-lake"
    lake = Lake(LakeSettings(url=f"file://{root}"))
    db = work / "dbt" / "stockpipe.duckdb"

    bars = _bars_history(symbols, days)
    quotes = _session_quotes(symbols[:quote_symbols], days[-1], seed=1)
    with DuckDBTarget(db, lake) as target:
        target.ensure_schema()
        conn = target.conn
        for table, data, key in (("daily_bars", bars, "raw/daily_bars/bench"), ("quotes", quotes, "raw/quotes/bench")):
            conn.register("history", data)
            conn.execute(
                f"INSERT INTO bronze.{table} SELECT *, '{key}' AS source_file, 'bench-history' AS load_id, "
                "get_current_timestamp() AS loaded_at FROM history"
            )
            conn.unregister("history")

    settings = WarehouseSettings(
        lake=lake.settings, warehouse=WarehouseTargetSettings(duckdb_path=db, dbt_project_dir=DBT_PROJECT)
    )
    target_path = work / "dbt-target"
    # One thread: each model's time is its own, not inflated by another model competing for the GIL.
    as_of = ["--vars", "{freshness_as_of: '2026-01-03 00:00:00+00:00'}", "--threads", "1"]
    model_times: dict[str, dict[str, float]] = {}

    def dbt(*args: str) -> float:
        outcome = run_dbt(
            [*args, *as_of], settings, target_path=target_path, extra_env={"DBT_LOG_PATH": str(work / "dbt-logs")}
        )
        if not outcome.success:
            raise RuntimeError(f"dbt {args[0]} failed: {outcome.failures() or outcome.exception}")
        model_times[args[0] + str(len(model_times))] = {
            r["unique_id"].rsplit(".", 1)[1]: round(float(r["execution_time"]), 3)
            for r in outcome.run_results().get("results", [])
        }
        return outcome.model_seconds()

    dbt("seed")
    full = dbt("run")

    def new_day(day: date, with_quotes: bool, seed: int) -> float:
        """One more trading day through the lake and the loader: a bar object per symbol, quote stream files."""
        for symbol, row in zip(symbols, _bars_history(symbols, [day], seed=seed).to_pylist(), strict=True):
            path = root / daily_bar_key(day, symbol)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist([row], schema=DAILY_BAR_SCHEMA), path)
        if with_quotes:
            day_quotes = _session_quotes(symbols[:quote_symbols], day, seed=seed)
            for first in range(0, day_quotes.num_rows, 100_000):
                piece = day_quotes.slice(first, 100_000)
                offsets = piece["kafka_offset"]
                obj = StreamObject("quotes", day, "quotes", 0, offsets[0].as_py(), offsets[-1].as_py())
                (root / obj.key).parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(piece, root / obj.key)
        with DuckDBTarget(db, lake) as target:
            return BronzeLoader(lake, target).run().seconds

    def changed_only_run() -> float:
        branches = changed_branches(settings)
        assert branches, "the new day must have reached bronze"
        selection = ["--select", *(f"source:bronze.{t}+" for t in branches), "--exclude", "config.materialized:view"]
        return dbt("run", *selection)

    days_after = calendar.sessions_between(date(2026, 1, 1), date(2026, 1, 10))
    load_s = new_day(days_after[0], with_quotes=True, seed=10)
    incremental = dbt("run")  # every model, as a plain `dbt build` would
    new_day(days_after[1], with_quotes=True, seed=11)
    changed_only = changed_only_run()  # `stockpipe load dbt-build --changed-only`
    new_day(days_after[2], with_quotes=False, seed=12)
    bars_only = changed_only_run()  # the daily history batch alone, after the close
    return {
        "dbt_bars": bars.num_rows,
        "dbt_quotes": quotes.num_rows,
        "dbt_full_s": round(full, 3),
        "dbt_incremental_s": round(incremental, 3),
        "dbt_incremental_vs_full": round(incremental / full, 3),
        "dbt_incremental_changed_only_s": round(changed_only, 3),
        "dbt_incremental_changed_only_vs_full": round(changed_only / full, 3),
        "dbt_incremental_bars_only_s": round(bars_only, 3),
        "dbt_incremental_bars_only_vs_full": round(bars_only / full, 3),
        "new_day_load_s": round(load_s, 3),
        "dbt_model_seconds": {name: model_times.get(name, {}) for name in ("run1", "run2", "run3", "run4")},
    }


def _job_bar_objects(root: Path, symbols: list[str], days: list[date], rows_per_object: int = 25_000) -> list[str]:
    """A year-to-date backfill as the history job writes it: chunks of symbols, one object each."""
    history = _bars_history(symbols, days)
    per_chunk = max(1, rows_per_object // len(days))
    keys = []
    for chunk, first in enumerate(range(0, len(symbols), per_chunk)):
        group = pa.array(symbols[first : first + per_chunk])
        table = history.filter(pc.is_in(history["symbol"], value_set=group))
        obj = BatchObject(DAILY_BARS, "backfill", days[0], days[-1], chunk)
        path = root / obj.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(
            lakeio.encode(table.take(pc.sort_indices(table, [("symbol", "ascending"), ("date", "ascending")])))
        )
        keys.append(obj.key)
    return keys


def s3_vs_local(work: Path, objects: int = 200, rows: int = 2500) -> dict[str, Any]:
    """Bronze load rates of the same objects from the local MinIO and from local files, same run.

    Stream files (quotes) and a 500-symbol year-to-date backfill of daily bars in job objects; each
    load into a fresh bronze, alternating local and S3, best of two each. Empty when MinIO is not built.
    """
    from stockpipe.paths import bin_dir
    from stockpipe_dev.localservices.minio import MinioServer
    from stockpipe_dev.localservices.process import free_port
    from stockpipe_dev.localservices.versions import MINIO_VERSION

    if not (bin_dir() / MINIO_VERSION / "minio").exists():
        return {"s3_vs_local": "skipped: MinIO is not built (make setup)"}
    server = MinioServer(work / "minio", free_port(), free_port())
    record = server.start()
    try:
        settings = LakeSettings(
            url=f"s3://{server.bucket}/bench",
            s3_endpoint_url=server.endpoint,
            access_key=server.access_key,
            secret_key=server.secret_key,
        )
        s3 = Lake(settings)
        local_root = work / "s3-vs-local"
        local = Lake(LakeSettings(url=f"file://{local_root}"))
        stream_keys = write_quote_objects(local_root, date(2025, 1, 3), objects, rows)
        end = date(2025, 11, 28)
        bar_keys = _job_bar_objects(
            local_root, [f"S{i:03d}" for i in range(500)], calendar.sessions_between(date(2025, 1, 1), end)
        )
        s3.fs.pipe({s3.path(k): (local_root / k).read_bytes() for k in [*stream_keys, *bar_keys]})

        def rate(lake: Lake, dataset: Dataset) -> float:
            path = work / f"s3-vs-local-{time.monotonic_ns()}.duckdb"
            with DuckDBTarget(path, lake) as target:
                target.ensure_schema()
                report = BronzeLoader(lake, target, datasets=[dataset]).run()
            path.unlink()
            return report.total_rows / report.seconds

        result: dict[str, Any] = {}
        for name, dataset, count in (
            ("s3_bronze", QUOTES, len(stream_keys)),
            ("s3_daily_bars", DAILY_BARS_DS, len(bar_keys)),
        ):
            local_rates, s3_rates = [], []
            for _ in range(2):
                local_rates.append(rate(local, dataset))
                s3_rates.append(rate(s3, dataset))
            result[f"{name}_objects"] = count
            result[f"{name}_local_rows_per_s"] = round(max(local_rates))
            result[f"{name}_s3_rows_per_s"] = round(max(s3_rates))
            result[f"{name}_vs_local"] = round(max(s3_rates) / max(local_rates), 3)
        return result
    finally:
        MinioServer.stop(record)


def run_warehouse_bench(out_dir: Path) -> dict[str, Any]:
    """Run every warehouse measurement on local data and write out_dir/warehouse.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="stockpipe-warehouse-bench-"))
    started = time.perf_counter()
    results: dict[str, Any] = {"cpus": os.cpu_count(), "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        for step in (bronze_throughput, incremental_ratio, dbt_timings, s3_vs_local):
            log.info("warehouse bench: %s", step.__name__)
            results.update(step(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["targets"] = {
        "bronze_vs_duckdb_copy": ">= 0.5",
        "incremental_ratio": "<= 1.5",
        "dbt_incremental_vs_full": "<= 0.2",
        "s3_bronze_vs_local": ">= 0.5",
        "s3_daily_bars_vs_local": ">= 0.5",
    }
    results["bench_s"] = round(time.perf_counter() - started, 1)
    (out_dir / "warehouse.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results
