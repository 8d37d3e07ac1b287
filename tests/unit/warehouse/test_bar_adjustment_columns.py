"""Bronze daily bars gain the adjustment columns: a version-1 warehouse is migrated, then loads them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from stockpipe.contracts.bars import ADJUSTMENT_COLUMNS
from stockpipe.lake.store import Lake
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe.settings import LakeSettings
from stockpipe.warehouse import ddl
from stockpipe.warehouse.duckdb_target import DuckDBTarget
from stockpipe.warehouse.loader import BronzeLoader
from stockpipe_dev.bench import lakegen

# Seed 11's NSR: a 10:1 split goes ex on 2024-10-14, a dividend on 2024-11-11.
DAYS = [date(2024, 10, 11), date(2024, 10, 14), date(2024, 11, 11)]


def test_a_version_1_warehouse_gets_the_columns_and_loads_splits_and_dividends(tmp_path: Path) -> None:
    lake = Lake(LakeSettings(url=f"file://{tmp_path / 'lake'}"))
    path = tmp_path / "wh.duckdb"
    with DuckDBTarget(path, lake) as target:
        # What version 1 created: daily bars without the adjustment columns.
        for statement in ddl.schema_version_ddl("bronze", "duckdb"):
            target.conn.execute(statement)
        target.conn.execute(
            "CREATE TABLE bronze.daily_bars (symbol VARCHAR NOT NULL, date DATE NOT NULL, open DOUBLE NOT NULL, "
            "high DOUBLE NOT NULL, low DOUBLE NOT NULL, close DOUBLE NOT NULL, volume BIGINT NOT NULL, "
            "source VARCHAR NOT NULL, fetched_at TIMESTAMPTZ NOT NULL, source_file VARCHAR NOT NULL, "
            "load_id VARCHAR NOT NULL, loaded_at TIMESTAMPTZ NOT NULL)"
        )
        for statement in ddl.MIGRATIONS[0].statements("bronze", "duckdb"):
            target.conn.execute(statement)
        target.conn.execute("INSERT INTO bronze.schema_version VALUES (1, 'v1', get_current_timestamp())")

    lakegen.write_daily_bars(lake, SyntheticMarket(seed=11), ["NSR"], DAYS)
    with DuckDBTarget(path, lake) as target:
        BronzeLoader(lake, target).run()
        columns = [r[0] for r in target.conn.execute("DESCRIBE bronze.daily_bars").fetchall()]
        assert set(ADJUSTMENT_COLUMNS) <= set(columns)
        rows = target.conn.execute(
            "SELECT date, split_factor, dividend_cash, adj_close = close FROM bronze.daily_bars ORDER BY date"
        ).fetchall()
    assert rows[0] == (DAYS[0], 1.0, 0.0, True)
    assert rows[1] == (DAYS[1], 10.0, 0.0, True)  # the synthetic provider adjusts as of the fetched day
    assert rows[2][:3] == (DAYS[2], 1.0, 8.38)
