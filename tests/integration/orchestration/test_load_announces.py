"""lake_to_bronze emits a bronze table's asset (what schedules dbt_build) only when its load brought rows."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime

import pytest

from stockpipe.lake.store import Lake
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe_dev.bench import lakegen
from tests.integration.orchestration.conftest import SYMBOLS, Pipeline

AFTER_CLOSE = datetime(2025, 12, 1, 23, 30, tzinfo=UTC)


def asset_events(pipeline: Pipeline) -> dict[str, int]:
    with sqlite3.connect(pipeline.home / "airflow.db") as db:
        rows = db.execute(
            "SELECT a.name, count(e.id) FROM asset a LEFT JOIN asset_event e ON e.asset_id = a.id "
            "WHERE a.name LIKE 'bronze.%' GROUP BY a.name"
        ).fetchall()
    return {str(name): int(n) for name, n in rows}


@pytest.mark.timeout(1800)  # two DAG runs in child processes, after the session's Airflow and Kafka start
def test_a_load_that_brings_nothing_triggers_no_dbt_build(pipeline: Pipeline) -> None:
    lakegen.write_daily_bars(Lake(pipeline.lake), SyntheticMarket(), SYMBOLS, [date(2025, 12, 1)])
    before = asset_events(pipeline)

    first = pipeline.run("lake_to_bronze", AFTER_CLOSE)
    assert first.tasks["load_bronze"] == "success"
    assert first.tasks["announce_daily_bars"] == "success"
    assert {first.tasks[f"announce_{t}"] for t in ("quotes", "trades", "dlq")} == {"skipped"}
    after_first = asset_events(pipeline)
    assert after_first.get("bronze.daily_bars", 0) == before.get("bronze.daily_bars", 0) + 1
    for table in ("quotes", "trades", "dlq"):
        assert after_first.get(f"bronze.{table}", 0) == before.get(f"bronze.{table}", 0)

    again = pipeline.run("lake_to_bronze", AFTER_CLOSE)  # nothing new in the lake
    assert again.tasks["load_bronze"] == "success"
    assert {again.tasks[f"announce_{t}"] for t in ("daily_bars", "quotes", "trades", "dlq")} == {"skipped"}
    assert asset_events(pipeline) == after_first  # no event: dbt_build is not scheduled
