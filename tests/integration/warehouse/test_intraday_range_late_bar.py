"""mart_intraday_range after the previous session's bar arrives late, then is corrected (DuckDB, real dbt).

The mart's reference close is the previous session's daily bar when the warehouse has it, else the
quote's own prev_close. A bar that arrives or changes after the mart was built moves that reference
without any new quote: a plain incremental build must still give what a `--full-refresh` build gives.
"""

# Queries name tables and columns defined in the code.
# ruff: noqa: S608

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe.settings import LakeSettings
from stockpipe_dev.bench import lakegen
from tests.integration.warehouse.conftest import SESSION, SyntheticLake
from tests.integration.warehouse.test_dbt_build import (  # noqa: F401  (warehouse_env is a fixture)
    build,
    load,
    restate_bar,
    rows,
    run_results,
    snapshot,
    warehouse_env,
)

LATE = "AAPL"  # its bar of the previous session is missing at first
ON_TIME = "MSFT"  # its bar of the previous session is there from the start
# Only the mart and what it is built from, plus dim_symbol that their relationship tests read; with
# DBT_INDIRECT_SELECTION=cautious, the data tests of these models that read nothing else.
SELECT = ["--select", "+mart_intraday_range", "--select", "+dim_symbol"]
COLUMNS = (
    "symbol, session_date, last_quote_ts, last_price, day_open, day_high, day_low, prev_close, "
    "last_vs_prev_close, high_vs_prev_close, low_vs_prev_close, quote_count, loaded_at"
)


def mart(path: Path) -> list[dict[str, Any]]:
    return rows(path, f"SELECT {COLUMNS} FROM gold.mart_intraday_range ORDER BY symbol, session_date")


def prev_closes(path: Path, day: date) -> dict[str, float]:
    return {r["symbol"]: r["prev_close"] for r in mart(path) if r["session_date"] == day}


def assert_equals_full_refresh(warehouse: Path, tmp_path: Path, step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the incrementally built warehouse, fully rebuilt, holds the same tables, the mart first."""
    incremental = snapshot(warehouse)
    copy = tmp_path / f"full-{step}" / "stockpipe.duckdb"
    copy.parent.mkdir()
    shutil.copyfile(warehouse, copy)
    with monkeypatch.context() as env:
        env.setenv("STOCKPIPE_WAREHOUSE__DUCKDB_PATH", str(copy))
        build("--full-refresh", *SELECT)
    assert mart(copy) == mart(warehouse), step
    assert snapshot(copy) == incremental, step


def test_a_late_then_corrected_previous_bar_reprices_the_session_as_a_full_refresh_does(
    tmp_path: Path,
    warehouse_env: Path,  # noqa: F811  (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DBT_INDIRECT_SELECTION", "cautious")
    day = SESSION  # 2025-01-10: the previous session is 2025-01-08 (markets closed on the 9th)
    previous = calendar.previous_session(day)
    assert previous == date(2025, 1, 8)
    settings = LakeSettings(url=f"file://{tmp_path / 'lake'}")
    lake = SyntheticLake(settings, Lake(settings), SyntheticMarket(seed=11), lakegen.Offsets.start(), [LATE, ON_TIME])
    # A month of bars; quotes of the previous session (its reference, the bar before it, never
    # changes) and of the session itself.
    earlier = [d for d in calendar.sessions_between(date(2024, 12, 2), day) if d < previous]
    lakegen.write_daily_bars(lake.lake, lake.market, lake.symbols, earlier)
    lakegen.write_daily_bars(lake.lake, lake.market, [ON_TIME], [previous])
    for session in (previous, day):
        lakegen.write_session(lake.lake, lake.market, lake.symbols, session, lake.offsets, 5, 1)
    quoted_prev_close = {s: lake.market.daily_bar(s, previous).close for s in lake.symbols}

    load(lake, monkeypatch)
    build(*SELECT)
    assert {r["status"] for r in run_results(tmp_path)} <= {"success", "pass"}
    ran = [r["unique_id"] for r in run_results(tmp_path)]
    built = {u.split(".")[-1] for u in ran if u.startswith("model.")}
    assert "mart_intraday_range" in built
    assert "mart_symbol_daily" not in built
    # The mart's data tests ran, its relationship to dim_symbol included.
    assert any(u.startswith("test.stockpipe.relationships_mart_intraday_range_symbol") for u in ran)
    assert len(mart(warehouse_env)) == 4
    # Without the bar, the session's reference is the quote's prev_close.
    assert prev_closes(warehouse_env, day) == quoted_prev_close
    untouched = [r for r in mart(warehouse_env) if r["session_date"] == previous]

    # (a) The late bar arrives; the vendor's official close is not the close the quotes carried.
    lakegen.write_daily_bars(lake.lake, lake.market, [LATE], [previous])
    late_close = restate_bar(lake, previous, LATE)
    assert late_close != quoted_prev_close[LATE]
    assert load(lake, monkeypatch)["rows"] == {"daily_bars": 1}
    build(*SELECT)
    assert {r["status"] for r in run_results(tmp_path)} <= {"success", "pass"}
    assert prev_closes(warehouse_env, day) == quoted_prev_close | {LATE: late_close}
    late_row = next(r for r in mart(warehouse_env) if (r["symbol"], r["session_date"]) == (LATE, day))
    assert late_row["last_vs_prev_close"] == round(late_row["last_price"] / late_close - 1, 6)
    assert [r for r in mart(warehouse_env) if r["session_date"] == previous] == untouched
    assert_equals_full_refresh(warehouse_env, tmp_path, "late", monkeypatch)

    # (b) The vendor corrects the previous session's close, for the late bar and the on-time one.
    corrected = {s: restate_bar(lake, previous, s) for s in lake.symbols}
    assert corrected[LATE] != late_close
    assert corrected[ON_TIME] != quoted_prev_close[ON_TIME]
    assert load(lake, monkeypatch)["rows"] == {"daily_bars": 2}
    build(*SELECT)
    assert {r["status"] for r in run_results(tmp_path)} <= {"success", "pass"}
    assert prev_closes(warehouse_env, day) == corrected
    assert [r for r in mart(warehouse_env) if r["session_date"] == previous] == untouched
    assert_equals_full_refresh(warehouse_env, tmp_path, "corrected", monkeypatch)
