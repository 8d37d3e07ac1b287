"""Bronze DDL, owned by the code: numbered migrations recorded in a schema_version table.

A target applies the migrations it has not recorded yet, in order, when a load starts; a warehouse
whose recorded version is newer than the code's is refused rather than written by old code. A schema
change is a new migration appended here (never an edit of an applied one). Statements are
idempotent (IF NOT EXISTS), because Snowflake commits DDL on its own and a migration interrupted
half way must be safe to run again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from stockpipe.contracts.bars import ADJUSTMENT_COLUMNS
from stockpipe.warehouse.datasets import DAILY_BARS_DS, DATASETS, Dataset

Dialect = Literal["duckdb", "snowflake"]

LEDGER = "load_ledger"
LAKE_DIRS = "lake_dirs"
SCHEMA_VERSION = "schema_version"


class SchemaVersionError(RuntimeError):
    """The warehouse was migrated by newer code than this."""


def sql_type(arrow: pa.DataType, dialect: Dialect) -> str:
    """The bronze column type of an Arrow type: the same meaning in both warehouses."""
    snow = dialect == "snowflake"
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "VARCHAR"
    if pa.types.is_timestamp(arrow):
        if arrow.tz is None:
            return "TIMESTAMP_NTZ" if snow else "TIMESTAMP"
        return "TIMESTAMP_TZ" if snow else "TIMESTAMPTZ"
    if pa.types.is_floating(arrow):
        return "FLOAT" if snow else "DOUBLE"
    if pa.types.is_int32(arrow) or pa.types.is_int16(arrow) or pa.types.is_int8(arrow):
        return "NUMBER(10,0)" if snow else "INTEGER"
    if pa.types.is_integer(arrow):
        return "NUMBER(19,0)" if snow else "BIGINT"
    if pa.types.is_date(arrow):
        return "DATE"
    if pa.types.is_boolean(arrow):
        return "BOOLEAN"
    if pa.types.is_list(arrow) and pa.types.is_string(arrow.value_type):
        return "ARRAY" if snow else "VARCHAR[]"
    raise TypeError(f"no bronze type for Arrow type {arrow}")


def now_type(dialect: Dialect) -> str:
    return "TIMESTAMP_TZ" if dialect == "snowflake" else "TIMESTAMPTZ"


def bronze_columns(dataset: Dataset, dialect: Dialect) -> list[str]:
    cols = [f"{f.name} {sql_type(f.type, dialect)}{'' if f.nullable else ' NOT NULL'}" for f in dataset.schema]
    cols += ["source_file VARCHAR NOT NULL", "load_id VARCHAR NOT NULL", f"loaded_at {now_type(dialect)} NOT NULL"]
    return cols


def staging_columns(dataset: Dataset, dialect: Dialect) -> list[str]:
    """Lake columns only, all nullable: NOT NULL is checked when rows reach bronze, inside the load's transaction."""
    return [f"{f.name} {sql_type(f.type, dialect)}" for f in dataset.schema]


def _v1(schema: str, dialect: Dialect) -> list[str]:
    ts = now_type(dialect)
    big = "NUMBER(19,0)" if dialect == "snowflake" else "BIGINT"
    statements = [
        f"CREATE TABLE IF NOT EXISTS {schema}.{d.table} ({', '.join(bronze_columns(d, dialect))})" for d in DATASETS
    ]
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {schema}.{LEDGER} ("
        "object_key VARCHAR NOT NULL, object_dir VARCHAR NOT NULL, dataset VARCHAR NOT NULL, "
        f"size {big} NOT NULL, etag VARCHAR NOT NULL, row_count {big} NOT NULL, "
        f"load_id VARCHAR NOT NULL, loaded_at {ts} NOT NULL)"
    )
    # Directory modification times of a local lake that were fully loaded (see listing.py).
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {schema}.{LAKE_DIRS} (dir_key VARCHAR NOT NULL, mtime_ns {big} NOT NULL, "
        f"noted_at {ts} NOT NULL)"
    )
    return statements


def _v2(schema: str, dialect: Dialect) -> list[str]:
    # Nullable, so bars loaded before (and objects written before) read as "no adjustment data".
    # A warehouse created at version 2 already has them from _v1's contract columns: IF NOT EXISTS.
    return [
        f"ALTER TABLE {schema}.{DAILY_BARS_DS.table} ADD COLUMN IF NOT EXISTS {name} {sql_type(pa.float64(), dialect)}"
        for name in ADJUSTMENT_COLUMNS
    ]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: Callable[[str, Dialect], list[str]]  # (bronze schema, dialect) -> DDL


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "bronze tables for quotes, trades, daily bars and dead letters; load ledger; lake directories", _v1),
    Migration(2, "daily bars: provider-adjusted OHLCV, split factor and cash dividend", _v2),
)
CODE_VERSION = MIGRATIONS[-1].version


def schema_version_ddl(schema: str, dialect: Dialect) -> list[str]:
    return [
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        f"CREATE TABLE IF NOT EXISTS {schema}.{SCHEMA_VERSION} (version INTEGER NOT NULL, "
        f"description VARCHAR NOT NULL, applied_at {now_type(dialect)} NOT NULL)",
    ]


def pending(current: int | None) -> list[Migration]:
    """Migrations after `current` (None: an empty warehouse); refuses a warehouse newer than the code."""
    current = current or 0
    if current > CODE_VERSION:
        raise SchemaVersionError(
            f"the warehouse's bronze schema is version {current}, this code knows up to {CODE_VERSION}: "
            "upgrade stockpipe before loading"
        )
    return [m for m in MIGRATIONS if m.version > current]
