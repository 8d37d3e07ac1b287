"""Lake -> bronze on Snowflake: snowflake-connector-python against fakesnow's server.

The loader's real statements run: CREATE STAGE, PUT to the internal stage, COPY INTO ... FILE_FORMAT =
(TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE, MERGE, in explicit transactions.
"""

# Queries name tables and columns defined in the code.
# ruff: noqa: S608

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from stockpipe.batch import lakeio
from stockpipe.lake.layout import DAILY_BARS, BatchObject, daily_bar_key
from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.marketdata.history import HistoryBar
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe.settings import LakeSettings
from stockpipe.warehouse.cli import load_app
from stockpipe.warehouse.datasets import DATASETS
from stockpipe.warehouse.duckdb_target import DuckDBTarget
from stockpipe.warehouse.loader import BronzeLoader, LoadError
from stockpipe.warehouse.settings import SnowflakeSettings
from stockpipe.warehouse.snowflake_target import SnowflakeTarget, open_session
from stockpipe_dev.bench import lakegen

from .conftest import SyntheticLake


def _normal(value: Any) -> Any:
    """Snowflake hands ARRAY back as JSON text and NUMBER as int; DuckDB as lists and ints."""
    if isinstance(value, str) and value.startswith("["):
        return json.loads(value)
    return value


def table_rows(cur: Any, sql: str) -> list[tuple[Any, ...]]:
    return sorted((tuple(_normal(v) for v in row) for row in cur.execute(sql).fetchall()), key=repr)


def test_snowflake_bronze_holds_what_duckdb_bronze_holds(
    local_lake: SyntheticLake, snowflake_settings: SnowflakeSettings, tmp_path: Path
) -> None:
    lake = local_lake.lake
    with SnowflakeTarget(open_session(snowflake_settings), lake, snowflake_settings) as snow:
        report = BronzeLoader(lake, snow).run()
        assert report.loaded_objects == local_lake.objects
        assert report.rows == local_lake.rows
        with DuckDBTarget(tmp_path / "wh.duckdb", lake) as duck:
            BronzeLoader(lake, duck).run()
            cur = snow.session.connection.cursor()
            schema = snow.schema
            for dataset in DATASETS:
                cols = ", ".join([*dataset.columns, "source_file"])
                assert table_rows(cur, f"SELECT {cols} FROM {schema}.{dataset.table}") == table_rows(
                    duck.conn, f"SELECT {cols} FROM bronze.{dataset.table}"
                ), dataset.name
            ledger = "SELECT object_key, object_dir, dataset, size, etag, row_count FROM {}.load_ledger"
            assert table_rows(cur, ledger.format(schema)) == table_rows(duck.conn, ledger.format("bronze"))

        # Loading twice changes nothing, and the internal stage was emptied by COPY's PURGE.
        before = table_rows(cur, f"SELECT * FROM {schema}.trades")
        again = BronzeLoader(lake, snow).run()
        assert (again.pending, again.batches) == (0, 0)
        assert table_rows(cur, f"SELECT * FROM {schema}.trades") == before
        assert cur.execute(f"LIST @{snow.stage}").fetchall() == []


def test_a_failed_snowflake_batch_rolls_back_data_and_ledger(
    tmp_path: Path, snowflake_settings: SnowflakeSettings
) -> None:
    lake = Lake(LakeSettings(url=f"file://{tmp_path / 'lake'}"))
    market = SyntheticMarket()
    offsets = lakegen.Offsets.start()
    day = date(2025, 1, 3)
    lakegen.write_stream(lake, "quotes", "quotes", lakegen.quotes_table(market, ["AAPL"], day, 30), "quote_ts",
                         offsets)  # fmt: skip
    trades = lakegen.trades_table(market, ["AAPL"], day, 1).slice(0, 10)
    bad = trades.set_column(0, pa.field("symbol", pa.string()), pa.array([None] * 10, pa.string()))
    lakegen.write_stream(lake, "trades", "trades", bad, "trade_ts", offsets)

    # fakesnow answers a NOT NULL violation with HTTP 500, which the connector retries for as long as
    # network_timeout allows (Snowflake itself answers with an error): keep that short.
    with SnowflakeTarget(open_session(snowflake_settings, network_timeout=5), lake, snowflake_settings) as snow:
        cur = snow.session.connection.cursor()
        with pytest.raises(LoadError, match="rolled back"):
            BronzeLoader(lake, snow).run()
        for table in ("quotes", "trades", "load_ledger"):
            assert cur.execute(f"SELECT count(*) FROM {snow.schema}.{table}").fetchone() == (0,), table

        lakegen.write_stream(lake, "trades", "trades", trades, "trade_ts", lakegen.Offsets.start())
        report = BronzeLoader(lake, snow).run()
        assert report.rows == {"quotes": 13, "trades": 10}
        assert cur.execute(f"SELECT count(*) FROM {snow.schema}.load_ledger").fetchone() == (report.loaded_objects,)


def test_a_restated_object_replaces_its_rows_on_snowflake(
    tmp_path: Path, snowflake_settings: SnowflakeSettings
) -> None:
    lake = Lake(LakeSettings(url=f"file://{tmp_path / 'lake'}"))
    day = date(2025, 1, 3)
    lakegen.write_daily_bars(lake, SyntheticMarket(seed=1), ["AAPL", "MSFT"], [day])
    with SnowflakeTarget(open_session(snowflake_settings), lake, snowflake_settings) as snow:
        first = BronzeLoader(lake, snow).run()
        lakegen.write_daily_bars(lake, SyntheticMarket(seed=2), ["AAPL"], [day])  # other numbers, same key
        second = BronzeLoader(lake, snow).run()
        assert (second.pending, second.rows) == (1, {"daily_bars": 1})
        rows = (
            snow.session.connection.cursor()
            .execute(f"SELECT symbol, close, load_id, source_file FROM {snow.schema}.daily_bars ORDER BY symbol")
            .fetchall()
        )
        aapl = lakegen.daily_bar_table(SyntheticMarket(seed=2), "AAPL", day)["close"][0].as_py()
        msft = lakegen.daily_bar_table(SyntheticMarket(seed=1), "MSFT", day)["close"][0].as_py()
        assert rows == [
            ("AAPL", aapl, second.load_id, daily_bar_key(day, "AAPL")),
            ("MSFT", msft, first.load_id, daily_bar_key(day, "MSFT")),
        ]


def test_the_cli_loads_into_snowflake_from_settings(
    local_lake: SyntheticLake, snowflake_settings: SnowflakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "STOCKPIPE_LAKE__URL": local_lake.settings.url,
        "STOCKPIPE_WAREHOUSE__TARGET": "snowflake",
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__ACCOUNT": str(snowflake_settings.account),
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__USER": str(snowflake_settings.user),
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__PASSWORD": "snow",
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__HOST": str(snowflake_settings.host),
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__PORT": str(snowflake_settings.port),
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__PROTOCOL": "http",
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__DATABASE": snowflake_settings.database,
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__STAGE_MODE": "internal",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(load_app, ["bronze"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["target"], report["loaded_objects"], report["rows"]) == (
        "snowflake",
        local_lake.objects,
        local_lake.rows,
    )
    plan = CliRunner().invoke(load_app, ["bronze", "--plan"])
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.stdout)["pending"] == []


# Its own budget: dbt-snowflake's seed load through the fakesnow server alone took 135 s on a loaded
# 2-core machine, and the build itself several minutes more (the default 600 s ran out there).
@pytest.mark.timeout(1500)
def test_dbt_builds_silver_and_gold_on_snowflake(
    local_lake: SyntheticLake,
    snowflake_settings: SnowflakeSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dbt-snowflake (the dispatched macros' Snowflake side) against the same fake server.

    Left out, for fakesnow's gaps rather than Snowflake's: the trades branch (fakesnow cannot run
    ARRAY_TO_STRING on an ARRAY column) and unit tests (dbt-snowflake's unit-test tables are
    qualified temporary tables, which fakesnow refuses).
    """
    env = {
        "STOCKPIPE_LAKE__URL": local_lake.settings.url,
        "STOCKPIPE_WAREHOUSE__TARGET": "snowflake",
        "STOCKPIPE_WAREHOUSE__DBT_PROJECT_DIR": str(Path(__file__).resolve().parents[3] / "dbt"),
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__ACCOUNT": str(snowflake_settings.account),
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__USER": str(snowflake_settings.user),
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__PASSWORD": "snow",
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__HOST": str(snowflake_settings.host),
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__PORT": str(snowflake_settings.port),
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__PROTOCOL": "http",
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__DATABASE": snowflake_settings.database,
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__STAGE_MODE": "internal",
        "DBT_TARGET_PATH": str(tmp_path / "dbt-target"),
        "DBT_LOG_PATH": str(tmp_path / "dbt-logs"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert CliRunner().invoke(load_app, ["bronze"]).exit_code == 0
    build = CliRunner().invoke(
        load_app,
        ["dbt-build", "--exclude", "slv_trades+", "--exclude", "test_type:unit",
         "--vars", "{freshness_as_of: '2025-01-14 12:00:00+00:00'}"],
    )  # fmt: skip
    assert build.exit_code == 0, build.output
    results = json.loads((tmp_path / "dbt-target" / "run_results.json").read_text())["results"]
    assert {r["status"] for r in results} == {"success", "pass"}
    assert sum(r["unique_id"].startswith("model.") for r in results) == 10  # fct_corporate_actions included
    with SnowflakeTarget(open_session(snowflake_settings), local_lake.lake, snowflake_settings) as snow:
        cur = snow.session.connection.cursor()
        db = snowflake_settings.database
        assert cur.execute(f"SELECT count(*) FROM {db}.GOLD.FCT_DAILY_BARS").fetchone() == (
            local_lake.rows["daily_bars"],
        )
        assert cur.execute(f"SELECT count(*) FROM {db}.GOLD.FCT_QUOTES").fetchone() == (local_lake.rows["quotes"],)
        assert (
            cur.execute(f"SELECT count(*) FROM {db}.GOLD.MART_SYMBOL_DAILY WHERE ma_90 IS NOT NULL").fetchone()[0] > 0
        )


def test_job_objects_beside_per_symbol_objects_load_into_snowflake_once_per_key(
    tmp_path: Path, snowflake_settings: SnowflakeSettings
) -> None:
    lake = Lake(LakeSettings(url=f"file://{tmp_path / 'lake'}"))
    days = calendar.sessions_between(date(2025, 1, 2), date(2025, 1, 10))
    lakegen.write_daily_bars(lake, SyntheticMarket(seed=1), ["AAPL", "MSFT"], days[:3])  # the older layout
    # Two job objects: many symbols and days each, overlapping the older objects and each other.
    market = SyntheticMarket(seed=1)
    for kind, symbols, span in (("backfill", ["AAPL", "MSFT", "NVDA"], days), ("gaps", ["NVDA"], days[-2:])):
        daily = [(s, d, market.daily_bar(s, d)) for s in symbols for d in span]
        bars = [HistoryBar(s, d, b.open, b.high, b.low, b.close, b.volume) for s, d, b in daily]
        job = BatchObject(DAILY_BARS, kind, span[0], span[-1], 0)
        lake.write_atomic(job.key, lakeio.encode(lakeio.bars_table(bars, "synthetic")))
    with SnowflakeTarget(open_session(snowflake_settings), lake, snowflake_settings) as snow:
        copies = snow.copy_statements(next(iter(loader_batches(lake))))
        assert sum("COPY INTO" in c for c in copies) == 3  # the per-symbol objects together, each job object alone
        report = BronzeLoader(lake, snow).run()
        assert report.loaded_objects == 2 * 3 + 2
        cur = snow.session.connection.cursor()
        keys = cur.execute(f"SELECT symbol, date FROM {snow.schema}.daily_bars").fetchall()
        assert len(keys) == len(set(keys)) == 3 * len(days)
        ledger = dict(cur.execute(f"SELECT object_key, row_count FROM {snow.schema}.load_ledger").fetchall())
        assert ledger[BatchObject(DAILY_BARS, "backfill", days[0], days[-1], 0).key] == 3 * len(days)
        assert ledger[BatchObject(DAILY_BARS, "gaps", days[-2], days[-1], 0).key] == 2


def loader_batches(lake: Lake) -> Any:
    from stockpipe.warehouse.listing import list_lake
    from stockpipe.warehouse.loader import batches

    return batches("test", list_lake(lake, DATASETS, {}).objects, 1000, 1 << 30)
