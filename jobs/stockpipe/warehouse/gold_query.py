"""Reading gold for the continuous loader's freshness measurement: one query helper over either
warehouse (DuckDB's file, or the workload's kept Snowpark session), and the bulk histogram update
that lets the measurement stay an aggregate in SQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import Histogram

from stockpipe.warehouse.settings import WarehouseSettings
from stockpipe.warehouse.snowpark_session import KeptSession

if TYPE_CHECKING:  # a Snowpark Session only on Snowflake; DuckDB runs never import it
    from snowflake.snowpark import Session


def observe_buckets(histogram: Histogram, buckets: Sequence[tuple[int, int, float]]) -> None:
    """Counts per bucket (index, count, sum) into a histogram, as that many observe() calls would.

    prometheus_client has no bulk observe; its per-bucket counters (non-cumulative, exported summed)
    and sum are what observe() increments.
    """
    for index, count, total in buckets:
        histogram._buckets[index].inc(count)
        histogram._sum.inc(total)


def utc(value: Any) -> datetime:
    at: datetime = value
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else None


class GoldQuery:
    """query(sql, params) -> rows on the warehouse's gold schema, filled in for the warehouse's dialect:
    `{gold}` the schema, `{ts_param}` a timestamp parameter and `{age_s}` the
    seconds from a row's fetched_at to a `built_at` column in scope.

    A parameter is best named once (bound in a subquery) when an expression uses it: a rewriting
    stand-in (fakesnow) may copy an expression, and its placeholder with it, past the values given."""

    def __init__(self, cursor: Any, gold: str, ts_param: str, age_s: str) -> None:
        self._cursor = cursor
        self._names = {"gold": gold, "ts_param": ts_param, "age_s": age_s}

    def _execute(self, sql: str, params: list[Any]) -> Any:
        return self._cursor().execute(sql.format(**self._names), params)

    def __call__(self, sql: str, params: list[Any]) -> list[Any]:
        rows: list[Any] = self._execute(sql, params).fetchall()
        return rows

    def chunks(self, sql: str, params: list[Any], size: int) -> Iterator[list[Any]]:
        cur = self._execute(sql, params)
        while rows := cur.fetchmany(size):
            yield rows


def _snowpark_cursor(kept: KeptSession) -> Any:
    session: Session = kept.get()
    return session.connection.cursor()


@contextmanager
def gold_reader(settings: WarehouseSettings, session: KeptSession | None = None) -> Iterator[GoldQuery]:
    """Queries on the warehouse's gold schema (see GoldQuery).

    session: on Snowflake, the workload's kept Snowpark session (otherwise one is opened and closed here).
    """
    if settings.warehouse.target == "duckdb":
        import duckdb

        conn = duckdb.connect(str(settings.warehouse.duckdb_path))
        conn.execute("SET TimeZone = 'UTC'")
        try:
            yield GoldQuery(lambda: conn, "gold", "CAST(? AS TIMESTAMPTZ)", "epoch(built_at) - epoch(fetched_at)")
        finally:
            conn.close()
        return
    sf = settings.warehouse.snowflake
    kept = session or KeptSession(sf, "stockpipe-gold-reader")
    try:
        # The session's connection binds on the server, qmark style; its cursor streams (fetchmany).
        yield GoldQuery(
            lambda: _snowpark_cursor(kept),
            f"{sf.database}.GOLD",
            "CAST(? AS TIMESTAMP_TZ)",
            "datediff(millisecond, fetched_at, built_at) / 1000.0",
        )
    finally:
        if session is None:
            kept.close()
