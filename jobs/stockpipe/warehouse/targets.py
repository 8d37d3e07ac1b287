"""Opening the configured warehouse target."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from stockpipe.lake.compaction import Register
from stockpipe.lake.store import Lake, ObjectInfo
from stockpipe.warehouse.loader import Target
from stockpipe.warehouse.settings import WarehouseSettings
from stockpipe.warehouse.snowpark_session import KeptSession


@contextmanager
def open_target(settings: WarehouseSettings, lake: Lake, session: KeptSession | None = None) -> Iterator[Target]:
    """The DuckDB file or a Snowflake session, closed on exit.

    session: a workload's kept Snowpark session, used (and left open) instead of a session of its own.
    """
    wh = settings.warehouse
    target: Target
    if wh.target == "duckdb":
        from stockpipe.warehouse.duckdb_target import DuckDBTarget

        target = DuckDBTarget(wh.duckdb_path, lake, threads=wh.duckdb_threads, s3=wh.s3)
    else:
        from stockpipe.warehouse.snowflake_target import SnowflakeTarget, open_session

        if session is not None:
            target = SnowflakeTarget(session.get(), lake, wh.snowflake, owned=False)
        else:
            target = SnowflakeTarget(open_session(wh.snowflake), lake, wh.snowflake)
    try:
        yield target
    finally:
        target.close()


def compaction_register(settings: WarehouseSettings, lake: Lake, timeout_s: float | None = None) -> Register | None:
    """How `lake compact` records its rewrites: DuckDB's ledger, one writer-locked swap per group.

    The lock and the file are taken per call, so the rewrite's I/O runs with the warehouse free.
    None on Snowflake: the next load reads the compacted objects (bronze merges on natural keys).
    """
    if settings.warehouse.target != "duckdb":
        return None
    from stockpipe.warehouse.duckdb_target import DuckDBTarget
    from stockpipe.warehouse.writerlock import DEFAULT_TIMEOUT_S, warehouse_writer

    path = settings.warehouse.duckdb_path
    prepared = False

    def register(compacted: ObjectInfo, members: Sequence[ObjectInfo], rows: int) -> bool:
        nonlocal prepared
        with (
            warehouse_writer(settings, timeout_s or DEFAULT_TIMEOUT_S),
            DuckDBTarget(path, lake, s3=settings.warehouse.s3) as target,
        ):
            if not prepared:
                target.ensure_schema()
                prepared = True
            return target.record_compaction(compacted, members, rows)

    return register
