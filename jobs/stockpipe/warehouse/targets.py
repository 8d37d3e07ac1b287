"""Opening the configured warehouse target."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from stockpipe.lake.store import Lake
from stockpipe.warehouse.loader import Target
from stockpipe.warehouse.settings import WarehouseSettings


@contextmanager
def open_target(settings: WarehouseSettings, lake: Lake) -> Iterator[Target]:
    """The DuckDB file or a Snowflake session, closed on exit."""
    wh = settings.warehouse
    target: Target
    if wh.target == "duckdb":
        from stockpipe.warehouse.duckdb_target import DuckDBTarget

        target = DuckDBTarget(wh.duckdb_path, lake, threads=wh.duckdb_threads)
    else:
        from stockpipe.warehouse.snowflake_target import SnowflakeTarget, connect

        target = SnowflakeTarget(connect(wh.snowflake), lake, wh.snowflake)
    try:
        yield target
    finally:
        target.close()
