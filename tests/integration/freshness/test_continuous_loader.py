"""The continuous bronze loader: loads what the consumer announces, and a killed loader loses and doubles nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import duckdb
import orjson

from stockpipe.warehouse.continuous import ContinuousLoader, ContinuousLoaderSettings
from stockpipe.warehouse.gold_freshness import read_gold_freshness
from stockpipe.warehouse.settings import WarehouseTargetSettings
from tests.integration.freshness.conftest import QUOTE_KEY, Pipeline, bronze_keys, lake_keys

TRADE_KEY = ["symbol", "trade_ts", "price", "size", "seq"]
DAY = date(2025, 11, 28)  # an early close (13:00): a short session
STARTED = b"continuous bronze loader started"


def loader_settings(pipeline: Pipeline, tmp: Path, **overrides: object) -> ContinuousLoaderSettings:
    return ContinuousLoaderSettings(
        kafka=pipeline.kafka,
        lake=pipeline.lake_settings,
        warehouse=WarehouseTargetSettings(duckdb_path=pipeline.warehouse),
        group_id=f"loader-{pipeline.kafka.topic_quotes}",
        metrics_port=0,
        settle_seconds=0.5,
        catchup_seconds=3600,
        latency_log=tmp / "latency.jsonl",
        **overrides,  # type: ignore[arg-type]
    )


def wait_for(check: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError("timed out")


def test_loads_what_the_consumer_announces(pipeline: Pipeline, tmp_path: Path) -> None:
    # The session is in the past: the loader's catch-up lists only recent days, so only notices bring it.
    pipeline.replay(DAY)
    consumer = pipeline.consumer()
    consumer.run(max_idle_s=3)
    lake_rows, lake_distinct = lake_keys(pipeline.lake, "quotes", QUOTE_KEY)
    assert lake_rows == lake_distinct > 0

    objects = sum(1 for _ in pipeline.lake.walk("raw/quotes")) + sum(1 for _ in pipeline.lake.walk("raw/trades"))
    loader = ContinuousLoader(loader_settings(pipeline, tmp_path))
    thread = threading.Thread(target=loader.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: loader.loaded_objects >= objects and loader.built_once and not loader.pending, 240)
    finally:
        loader.stop.set()
        thread.join(60)
    assert bronze_keys(pipeline.warehouse, "quotes", QUOTE_KEY) == (lake_distinct, lake_distinct)
    trades = lake_keys(pipeline.lake, "trades", TRADE_KEY)[1]
    assert bronze_keys(pipeline.warehouse, "trades", TRADE_KEY) == (trades, trades)
    conn = duckdb.connect(str(pipeline.warehouse), read_only=True)
    try:
        gold = conn.execute("SELECT count(*) FROM gold.fct_quotes").fetchone()
        ranges = conn.execute("SELECT count(*) FROM gold.mart_intraday_range").fetchone()
        ledger = conn.execute("SELECT count(*), count(DISTINCT object_key) FROM bronze.load_ledger").fetchone()
    finally:
        conn.close()
    assert gold == (lake_distinct,)
    assert ranges == (3,)  # one row per symbol of the session
    assert ledger == (objects, objects)
    # What the build made visible was measured, and pipeline_watch's state was written.
    samples = [orjson.loads(line) for line in (tmp_path / "latency.jsonl").read_bytes().splitlines()]
    assert sum(len(s["latency_s"]) for s in samples if s["fact"] == "fct_quotes") == lake_distinct
    state = read_gold_freshness(pipeline.lake)
    assert state is not None
    assert state.session == DAY
    assert state.newest_fetched_at is not None


def test_a_killed_loader_loses_and_doubles_nothing(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.replay(DAY)
    pipeline.consumer().run(max_idle_s=3)
    quotes = lake_keys(pipeline.lake, "quotes", QUOTE_KEY)[1]
    trades = lake_keys(pipeline.lake, "trades", TRADE_KEY)[1]
    env = {
        **os.environ,
        **pipeline.env(),
        "STOCKPIPE_GROUP_ID": "killed-loader",
        "STOCKPIPE_METRICS_PORT": "0",
        "STOCKPIPE_SETTLE_SECONDS": "0.2",
        "STOCKPIPE_WAREHOUSE__BATCH_MAX_OBJECTS": "3",  # many small transactions: kills land inside loads
    }
    rng = random.Random(16)
    log = open(tmp_path / "loader.log", "ab")  # noqa: SIM115 - closed below
    try:
        for _ in range(3):
            proc = subprocess.Popen(
                [sys.executable, "-m", "stockpipe.cli", "load", "continuous"], env=env, stdout=log, stderr=log
            )
            time.sleep(rng.uniform(2.0, 7.0))  # start-up, mid-load, mid-build, between load and commit
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        started = (tmp_path / "loader.log").read_bytes().count(STARTED)
        proc = subprocess.Popen(
            [sys.executable, "-m", "stockpipe.cli", "load", "continuous"], env=env, stdout=log, stderr=log
        )
        try:
            # The killed loaders may have loaded everything already: the last one must be running (its SIGTERM
            # handler set) before it is asked to stop, or the signal lands in Python's start-up.
            wait_for(lambda: (tmp_path / "loader.log").read_bytes().count(STARTED) > started, 120)
            wait_for(lambda: bronze_keys(pipeline.warehouse, "trades", TRADE_KEY)[0] >= trades, 240)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(120) == 0
    finally:
        log.close()
    assert bronze_keys(pipeline.warehouse, "quotes", QUOTE_KEY) == (quotes, quotes)
    assert bronze_keys(pipeline.warehouse, "trades", TRADE_KEY) == (trades, trades)
