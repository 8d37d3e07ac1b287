"""Lake -> bronze on DuckDB with the lake on the real local MinIO (S3 through s3fs, no httpfs)."""

# Queries name tables and columns defined in the code.
# ruff: noqa: S608

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from stockpipe.contracts.bars import daily_bars_table
from stockpipe.lake.layout import daily_bar_key
from stockpipe.lake.store import Lake
from stockpipe.settings import LakeSettings
from stockpipe.warehouse.datasets import Dataset
from stockpipe.warehouse.duckdb_target import ArrowReader, DuckDBTarget
from stockpipe.warehouse.listing import LakeObject
from stockpipe.warehouse.loader import BronzeLoader

from .conftest import SyntheticLake


class CountingArrowReader(ArrowReader):
    """The S3 reader of production, remembering the objects it was asked for."""

    def __init__(self, lake: Lake) -> None:
        super().__init__(lake)
        self.read_keys: list[str] = []

    def open(
        self, conn: duckdb.DuckDBPyConnection, dataset: Dataset, objects: Sequence[LakeObject], name: str
    ) -> dict[str, int]:
        self.read_keys += [o.key for o in objects]
        return super().open(conn, dataset, objects, name)


def bronze_counts(target: DuckDBTarget) -> dict[str, int]:
    counts = {}
    for table in ("quotes", "trades", "daily_bars", "dlq"):
        row = target.conn.execute(f"SELECT count(*) FROM bronze.{table}").fetchone()
        assert row is not None
        counts[table] = int(row[0])
    return counts


def test_minio_lake_loads_into_duckdb_and_a_second_load_changes_nothing(
    minio_lake: SyntheticLake, tmp_path: Path
) -> None:
    lake = minio_lake.lake
    assert not lake.is_local
    with DuckDBTarget(tmp_path / "wh.duckdb", lake) as target:
        assert isinstance(target.reader, ArrowReader)
        report = BronzeLoader(lake, target).run()
        assert report.loaded_objects == minio_lake.objects
        assert bronze_counts(target) == minio_lake.rows
        ledger = target.conn.execute("SELECT count(*), sum(row_count) FROM bronze.load_ledger").fetchone()
        assert ledger == (minio_lake.objects, sum(report.rows.values()))
        # S3 ETags (content MD5s) are what the ledger remembers.
        etags = dict(target.conn.execute("SELECT object_key, etag FROM bronze.load_ledger").fetchall())
        assert etags == {o.key: o.etag for o in lake.walk("raw")}

        before = target.conn.execute("SELECT * FROM bronze.trades ORDER BY ALL").fetchall()
        again = BronzeLoader(lake, target).run()
        assert (again.listed, again.pending, again.batches) == (minio_lake.objects, 0, 0)
        assert target.conn.execute("SELECT * FROM bronze.trades ORDER BY ALL").fetchall() == before


def _bar_bytes(symbol: str, day: date, close: float) -> bytes:
    table = daily_bars_table(
        {"symbol": [symbol], "date": [day], "open": [close], "high": [close], "low": [close], "close": [close],
         "volume": [100], "source": ["synthetic"], "fetched_at": [datetime(2025, 1, 1, tzinfo=UTC)]}
    )  # fmt: skip
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_a_thousand_objects_loaded_then_ten_more_reads_only_the_ten(s3_lake: LakeSettings, tmp_path: Path) -> None:
    lake = Lake(s3_lake)
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(101)]
    symbols = [f"S{i:02d}" for i in range(10)]
    for day in days[:100]:
        for symbol in symbols:
            lake.write_atomic(daily_bar_key(day, symbol), _bar_bytes(symbol, day, 10.0))

    fetched: list[str] = []
    original_cat = lake.fs.cat

    def counting_cat(paths: Any, *args: Any, **kwargs: Any) -> Any:
        fetched.extend(paths if isinstance(paths, list) else [paths])
        return original_cat(paths, *args, **kwargs)

    lake.fs.cat = counting_cat
    with DuckDBTarget(tmp_path / "wh.duckdb", lake) as target:
        reader = CountingArrowReader(lake)
        target.reader = reader
        first = BronzeLoader(lake, target).run()
        assert (first.loaded_objects, first.rows) == (1000, {"daily_bars": 1000})
        assert len(reader.read_keys) == len(fetched) == 1000

        reader.read_keys.clear()
        fetched.clear()
        new_keys = [daily_bar_key(days[100], s) for s in symbols]
        for symbol in symbols:
            lake.write_atomic(daily_bar_key(days[100], symbol), _bar_bytes(symbol, days[100], 11.0))
        second = BronzeLoader(lake, target).run()
        assert (second.listed, second.pending, second.loaded_objects) == (1010, 10, 10)
        assert sorted(reader.read_keys) == sorted(new_keys)
        assert sorted(fetched) == sorted(lake.path(k) for k in new_keys)  # the GETs, not just the plan
        row = target.conn.execute("SELECT count(*), count(DISTINCT load_id) FROM bronze.daily_bars").fetchone()
        assert row == (1010, 2)
