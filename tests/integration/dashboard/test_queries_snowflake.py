"""The query layer asks Snowflake (fakesnow: Snowflake's SQL on DuckDB, through Snowpark's session) the same
questions as the DuckDB warehouse, and gets the same answers."""

# Table copies name tables and columns defined in the code.
# ruff: noqa: S608

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from snowflake.connector import connect as connector_connect

from stockpipe.dashboard import queries
from stockpipe.warehouse.settings import SnowflakeSettings
from stockpipe.warehouse.snowpark_session import session_config

from .conftest import BuiltWarehouse

# (schema, table, the rows the questions below can reach): fakesnow parses every INSERT with sqlglot,
# so the copy stays small.
TABLES = [
    ("gold", "dim_date", "date_day between '2024-06-01' and '2025-03-31'"), ("gold", "dim_symbol", "true"),
    ("gold", "fct_daily_bars", "true"), ("gold", "fct_quotes", "symbol = 'MSFT'"),
    ("gold", "fct_trades", "symbol = 'MSFT'"), ("gold", "fct_dead_letters_daily", "true"),
    ("gold", "mart_symbol_daily", "true"), ("gold", "mart_intraday_range", "true"),
    ("gold", "mart_data_freshness", "true"), ("bronze", "load_ledger", "true"),
]  # fmt: skip
CHUNK = 250
SNOWFLAKE_TYPES = {
    "VARCHAR": "VARCHAR", "DOUBLE": "FLOAT", "BIGINT": "INTEGER", "INTEGER": "INTEGER", "DATE": "DATE",
    "BOOLEAN": "BOOLEAN", "TIMESTAMP WITH TIME ZONE": "TIMESTAMP_TZ", "VARCHAR[]": "ARRAY",
}  # fmt: skip
QUESTIONS: dict[str, Callable[[queries.Reader], pd.DataFrame]] = {
    "as_of": queries.as_of,
    "symbols": queries.symbols,
    "latest_sessions": queries.latest_sessions,
    "daily_returns_since": lambda r: queries.daily_returns_since(r, 20),
    "symbol_history": lambda r: queries.symbol_history(r, "BRK.B", date(2024, 10, 1), date(2025, 1, 10)),
    "quote_sessions": lambda r: queries.quote_sessions(r, "MSFT"),
    "intraday_quotes": lambda r: queries.intraday_quotes(r, "MSFT", date(2025, 1, 10)),
    "intraday_trades": lambda r: queries.intraday_trades(r, "MSFT", date(2025, 1, 10)),
    # A view measured at query time: only the columns that do not move with the clock are compared.
    "freshness": lambda r: queries.freshness(r)[["symbol", "last_bar_date", "last_quote_ts", "last_trade_ts"]],
    "dead_letters": lambda r: queries.dead_letters(r, date(2024, 12, 1)),
    "recent_loads": lambda r: queries.recent_loads(r, 5),
    "lake_objects": queries.lake_objects,
}


def _value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp | datetime):
        ts = pd.Timestamp(v)
        return (ts.tz_convert("UTC") if ts.tzinfo else ts).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, float):
        return round(v, 6)
    if hasattr(v, "item"):  # numpy scalars
        return _value(v.item())
    return v


def rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    # Dates arrive as dates from Snowflake and as timestamps from DuckDB: compare what they say.
    out = [tuple(_value(v) for v in row) for row in frame.itertuples(index=False)]
    return sorted(
        tuple(v[:10] if isinstance(v, str) and v.endswith("00:00:00.000000") else v for v in row) for row in out
    )


def copy_warehouse(source: Path, settings: SnowflakeSettings) -> None:
    """The gold and bronze tables the dashboard reads, copied row for row into the fake Snowflake."""
    # The test's own connector connection (pyformat, bound in the client): fakesnow's server misreads
    # timestamps bound on the server (qmark, as Snowpark's connection binds).
    conn = connector_connect(**session_config(settings, "stockpipe-test-copy", schema=None))
    cur = conn.cursor()
    db = settings.database
    cur.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
    for schema in ("GOLD", settings.bronze_schema):
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {db}.{schema}")
    with duckdb.connect(str(source), read_only=True) as duck:
        for schema, table, rows_wanted in TABLES:
            columns = duck.execute(f"DESCRIBE {schema}.{table}").fetchall()
            target = f"{db}.{'GOLD' if schema == 'gold' else settings.bronze_schema}.{table}"
            cur.execute(f"CREATE TABLE {target} ({', '.join(f'{c[0]} {SNOWFLAKE_TYPES[c[1]]}' for c in columns)})")
            data = duck.execute(f"SELECT * FROM {schema}.{table} WHERE {rows_wanted}").fetchall()
            for first in range(0, len(data), CHUNK):
                cur.executemany(
                    f"INSERT INTO {target} VALUES ({', '.join(['%s'] * len(columns))})", data[first : first + CHUNK]
                )
    conn.close()


@pytest.fixture
def snowflake(built_warehouse: BuiltWarehouse, fakesnow_server: dict[str, Any]) -> SnowflakeSettings:
    settings = SnowflakeSettings(
        account=fakesnow_server["account"],
        user=fakesnow_server["user"],
        password=fakesnow_server["password"],
        host=fakesnow_server["host"],
        port=fakesnow_server["port"],
        protocol="http",
        database=f"D{uuid.uuid4().hex[:12].upper()}",
    )
    copy_warehouse(built_warehouse.path, settings)
    return settings


def test_every_question_gives_the_same_answer_on_snowflake_and_duckdb(
    built_warehouse: BuiltWarehouse, snowflake: SnowflakeSettings, tmp_path: Path
) -> None:
    duck = queries.DuckDBSnapshotReader(built_warehouse.path, tmp_path / "snap")
    snow = queries.SnowflakeReader(snowflake)
    try:
        for name, question in QUESTIONS.items():
            expected, got = question(duck), question(snow)
            assert list(got.columns) == list(expected.columns), name
            assert len(expected) > 0, name
            assert rows(got) == rows(expected), name
    finally:
        duck.close()
        snow.close()
