"""The continuous loader on Snowflake (fakesnow's server, through Snowpark): one session across its cycles,
and dbt builds at most every min_build_interval_seconds while every notified object lands in bronze.

Cycles are driven one by one (`_cycle`, as the run loop calls it on settled notices) with a simulated
clock; the dbt build itself is counted, not run (dbt-snowflake on fakesnow: test_bronze_snowflake.py).
"""

# Queries name tables defined in the code.
# ruff: noqa: S608

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stockpipe.lake.store import Lake
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.warehouse import dbt_runner
from stockpipe.warehouse.continuous import ContinuousLoader, ContinuousLoaderSettings
from stockpipe.warehouse.settings import SnowflakeSettings, WarehouseTargetSettings
from stockpipe.warehouse.snowflake_target import open_session
from stockpipe_dev.bench import lakegen

DAY = date(2025, 1, 3)


class Logins:
    """Counts snowflake-connector connections made in this process (each one a Snowflake login)."""

    def __init__(self, patch: pytest.MonkeyPatch) -> None:
        from snowflake.connector.connection import SnowflakeConnection

        self.count = 0
        original = SnowflakeConnection.__init__

        def counting(conn: Any, *args: Any, **kwargs: Any) -> None:
            self.count += 1
            original(conn, *args, **kwargs)

        patch.setattr(SnowflakeConnection, "__init__", counting)


class Stream:
    """Quotes objects written into the lake one window at a time, as the consumer cuts them."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.offsets = lakegen.Offsets.start()
        self.table = lakegen.quotes_table(SyntheticMarket(seed=3), ["AAPL"], DAY, 1)
        self.written = 0
        self.rows = 0

    def next_object(self) -> list[str]:
        rows = self.table.slice(self.written * 5, 5)
        self.written += 1
        self.rows += rows.num_rows
        return lakegen.write_stream(self.lake, "quotes", "quotes", rows, "quote_ts", self.offsets)


@pytest.fixture
def gold(snowflake_settings: SnowflakeSettings) -> None:
    """The two gold facts the loader measures after a build, empty (dbt itself is not run here)."""
    session = open_session(snowflake_settings, schema=None)
    db = snowflake_settings.database
    try:
        for statement in (
            f"CREATE DATABASE IF NOT EXISTS {db}",
            f"CREATE SCHEMA IF NOT EXISTS {db}.GOLD",
            f"CREATE TABLE {db}.GOLD.FCT_QUOTES (session_date DATE, quote_ts TIMESTAMP_TZ, "
            "fetched_at TIMESTAMP_TZ, loaded_at TIMESTAMP_TZ)",
            f"CREATE TABLE {db}.GOLD.FCT_TRADES (fetched_at TIMESTAMP_TZ, loaded_at TIMESTAMP_TZ)",
        ):
            session.sql(statement).collect()
    finally:
        session.close()


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The dbt invocations of the loader (each one succeeds at once)."""
    calls: list[list[str]] = []

    def run_dbt(args: list[str], *_: Any, **__: Any) -> Any:
        calls.append(args)
        return SimpleNamespace(success=True)

    monkeypatch.setattr(dbt_runner, "run_dbt", run_dbt)
    return calls


def make_loader(tmp_path: Path, snowflake: SnowflakeSettings, clock: Any, **overrides: Any) -> ContinuousLoader:
    settings = ContinuousLoaderSettings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),  # never reached: cycles are driven here
        lake=LakeSettings(url=f"file://{tmp_path / 'lake'}"),
        warehouse=WarehouseTargetSettings(target="snowflake", snowflake=snowflake),
        metrics_port=0,
        catchup_seconds=3600,
        **overrides,
    )
    return ContinuousLoader(settings, clock=clock)


def notify_and_cycle(loader: ContinuousLoader, keys: list[str]) -> None:
    for key in keys:
        loader.pending[key] = time.monotonic()
    assert loader._cycle(catchup=False)


def bronze_quotes(snowflake: SnowflakeSettings) -> int:
    session = open_session(snowflake)
    try:
        return int(session.sql(f"SELECT count(*) FROM {snowflake.database}.BRONZE.QUOTES").collect()[0][0])
    finally:
        session.close()


def test_the_continuous_loader_keeps_one_snowflake_session_across_cycles(
    tmp_path: Path,
    snowflake_settings: SnowflakeSettings,
    gold: None,
    builds: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = Stream(Lake(LakeSettings(url=f"file://{tmp_path / 'lake'}")))
    loader = make_loader(tmp_path, snowflake_settings, time.monotonic)
    logins = Logins(monkeypatch)
    try:
        for _ in range(20):
            notify_and_cycle(loader, stream.next_object())
        # Loads, gold reads after each build: all through the one session.
        assert (logins.count, loader.cycles, len(builds)) == (1, 20, 20)
        assert loader.snowflake is not None
        assert loader.snowflake.opened == 1

        # A session Snowflake closed (expired, dropped) is replaced once, on the next use. The connector
        # marks a closed connection by dropping its REST client (fakesnow's server does not serve the
        # logout request connection.close() sends, so the close is done the way the connector records it).
        monkeypatch.setattr(loader.snowflake.get().connection, "_rest", None)
        for _ in range(3):
            notify_and_cycle(loader, stream.next_object())
        assert (logins.count, loader.snowflake.opened) == (2, 2)
    finally:
        loader.heartbeat.close()
        loader.consumer.close()
        if loader.snowflake is not None:
            loader.snowflake.close()
    assert bronze_quotes(snowflake_settings) == stream.rows


def test_builds_wait_for_the_interval_while_every_load_lands_in_bronze(
    tmp_path: Path, snowflake_settings: SnowflakeSettings, gold: None, builds: list[list[str]]
) -> None:
    stream = Stream(Lake(LakeSettings(url=f"file://{tmp_path / 'lake'}")))
    now = [0.0]
    loader = make_loader(tmp_path, snowflake_settings, lambda: now[0], min_build_interval_seconds=300)
    try:
        # 30 notices in 10 simulated minutes: one every 20 s.
        for n in range(30):
            now[0] = n * 20.0
            notify_and_cycle(loader, stream.next_object())
            if n == 14:  # t = 280 s: one build so far, yet every object is in bronze
                assert len(builds) == 1
                assert bronze_quotes(snowflake_settings) == stream.rows
        assert len(builds) <= 3
        assert len(builds) == 2  # t = 0 (the first cycle) and t = 300
        assert loader.cycles == 30
        assert bronze_quotes(snowflake_settings) == stream.rows

        # The rows loaded since the last build are built once the interval has passed, notice or not.
        assert loader.unbuilt
        now[0] = 600.0
        assert loader._cycle(catchup=False)
        assert (len(builds), loader.unbuilt) == (3, False)
    finally:
        loader.heartbeat.close()
        loader.consumer.close()
        if loader.snowflake is not None:
            loader.snowflake.close()
