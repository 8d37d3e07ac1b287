"""Bronze DDL and the SQL both warehouses run: types, quoting, migrations, the external-stage COPY."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from stockpipe.lake.store import Lake, ObjectInfo
from stockpipe.settings import LakeSettings
from stockpipe.warehouse import ddl, sqlgen
from stockpipe.warehouse.datasets import DAILY_BARS_DS, QUOTES, TRADES, parse_object_key
from stockpipe.warehouse.listing import LakeObject
from stockpipe.warehouse.loader import Batch, batches
from stockpipe.warehouse.settings import SnowflakeSettings
from stockpipe.warehouse.snowflake_target import SnowflakeTarget


@pytest.mark.parametrize(
    ("arrow", "duck", "snow"),
    [
        (pa.string(), "VARCHAR", "VARCHAR"),
        (pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ", "TIMESTAMP_TZ"),
        (pa.float64(), "DOUBLE", "FLOAT"),
        (pa.int32(), "INTEGER", "NUMBER(10,0)"),
        (pa.int64(), "BIGINT", "NUMBER(19,0)"),
        (pa.date32(), "DATE", "DATE"),
        (pa.list_(pa.string()), "VARCHAR[]", "ARRAY"),
    ],
)
def test_column_types_mean_the_same_in_both_warehouses(arrow: pa.DataType, duck: str, snow: str) -> None:
    assert ddl.sql_type(arrow, "duckdb") == duck
    assert ddl.sql_type(arrow, "snowflake") == snow


def test_bronze_tables_keep_the_contract_nullability_and_add_load_columns() -> None:
    columns = ddl.bronze_columns(QUOTES, "duckdb")
    assert "symbol VARCHAR NOT NULL" in columns
    assert "change DOUBLE" in columns  # optional in quote.v1
    assert columns[-3:] == [
        "source_file VARCHAR NOT NULL",
        "load_id VARCHAR NOT NULL",
        "loaded_at TIMESTAMPTZ NOT NULL",
    ]
    assert all("NOT NULL" not in c for c in ddl.staging_columns(TRADES, "snowflake"))


def test_migrations_run_in_order_and_a_newer_warehouse_is_refused() -> None:
    assert [m.version for m in ddl.pending(None)] == list(range(1, ddl.CODE_VERSION + 1))
    assert ddl.pending(ddl.CODE_VERSION) == []
    with pytest.raises(ddl.SchemaVersionError):
        ddl.pending(ddl.CODE_VERSION + 1)


def test_literals_are_quoted_for_each_dialect() -> None:
    assert sqlgen.string_literal("it's", "duckdb") == "'it''s'"
    assert sqlgen.string_literal("a\\b'", "snowflake") == "'a\\\\b'''"
    assert sqlgen.string_literal("a\\b", "duckdb") == "'a\\b'"
    with pytest.raises(ValueError, match="bad load id"):
        sqlgen.check_load_id("x'; drop table bronze.quotes; --")


def test_merge_dedups_on_the_natural_key_newest_first() -> None:
    sql = sqlgen.merge_dataset(
        "bronze",
        TRADES,
        sqlgen.dedup_source(TRADES, "stage", "source_file", "L1", datetime(2025, 1, 3, tzinfo=UTC), "duckdb"),
    )
    assert "PARTITION BY symbol, trade_ts, price, size, seq ORDER BY fetched_at DESC NULLS LAST" in sql
    assert "ON t.symbol = s.symbol AND t.trade_ts = s.trade_ts AND t.price = s.price" in sql
    assert "WHEN MATCHED THEN UPDATE SET fetched_at = s.fetched_at" in sql
    assert "CAST('2025-01-03 00:00:00.000000+00:00' AS TIMESTAMPTZ) AS loaded_at" in sql


def test_object_keys_say_which_rows_they_hold() -> None:
    stream = parse_object_key("raw/quotes/dt=2025-01-03/quotes+2+00000000000000000010+00000000000000000019.parquet")
    assert stream is not None
    assert (stream.dataset, stream.partition, stream.first_offset, stream.last_offset) == (QUOTES, 2, 10, 19)
    bar = parse_object_key("raw/daily_bars/dt=2025-01-03/BRK.B.parquet")
    assert bar is not None
    assert (bar.dataset, bar.symbol, bar.dt) == (DAILY_BARS_DS, "BRK.B", date(2025, 1, 3))
    assert parse_object_key("raw/quotes/dt=2025-01-03/_SUCCESS") is None
    assert parse_object_key("raw/other/dt=2025-01-03/x.parquet") is None


def _objects(keys: list[str], size: int = 10) -> list[LakeObject]:
    result = []
    for key in keys:
        name = parse_object_key(key)
        assert name is not None
        result.append(LakeObject(ObjectInfo(key, size, "etag"), name))
    return result


def test_batches_cut_by_count_and_bytes_in_key_order() -> None:
    objs = _objects([f"raw/daily_bars/dt=2025-01-03/S{i}.parquet" for i in (3, 1, 2, 5, 4)])
    cut = list(batches("L", objs, max_objects=2, max_bytes=10**9))
    assert [[o.name.symbol for o in b.objects] for b in cut] == [["S1", "S2"], ["S3", "S4"], ["S5"]]
    assert [b.number for b in cut] == [1, 2, 3]
    assert len(list(batches("L", objs, max_objects=100, max_bytes=25))) == 3  # 10 + 10 bytes per batch


def test_external_stage_copies_name_the_lake_objects_and_never_purge() -> None:
    """Production COPY: FILES relative to the dataset's prefix on the lake stage, FORCE (the ledger decides)."""
    settings = SnowflakeSettings(stage_mode="external")
    target = SnowflakeTarget(session=None, lake=Lake(LakeSettings(url="s3://lake/prod")), settings=settings)
    keys = [
        "raw/quotes/dt=2025-01-03/quotes+0+00000000000000000000+00000000000000000009.parquet",
        "raw/quotes/dt=2025-01-03/quotes+1+00000000000000000000+00000000000000000004.parquet",
        "raw/daily_bars/dt=2025-01-03/AAPL.parquet",
    ]
    (bars, quotes) = target.copy_statements(Batch("L1", 1, tuple(_objects(keys))))
    assert bars == (
        "COPY INTO STOCKPIPE.BRONZE.STG_DAILY_BARS FROM @STOCKPIPE.BRONZE.STOCKPIPE_LAKE/raw/daily_bars/ "
        "FILES = ('dt=2025-01-03/AAPL.parquet') FILE_FORMAT = (TYPE = PARQUET) "
        "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE FORCE = TRUE"
    )
    assert "FILES = ('dt=2025-01-03/quotes+0+00000000000000000000+00000000000000000009.parquet', " in quotes
    assert "PURGE" not in quotes
