"""Synthetic lake -> bronze (DuckDB) -> `dbt build` of silver and gold, through the `stockpipe load` commands."""

# Queries name tables and columns defined in the code.
# ruff: noqa: S608

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from stockpipe.bench import lakegen
from stockpipe.contracts.bars import DAILY_BAR_SCHEMA
from stockpipe.contracts.messages import QUOTE_V1
from stockpipe.lake.layout import StreamObject, daily_bar_key
from stockpipe.marketdata import calendar
from stockpipe.settings import LakeSettings
from stockpipe.stream.lakewriter import parquet_bytes
from stockpipe.warehouse.cli import load_app
from stockpipe.warehouse.dbt_runner import run_dbt
from stockpipe.warehouse.settings import WarehouseSettings, WarehouseTargetSettings

from .conftest import SESSION, SyntheticLake, write_synthetic_lake

REPO = Path(__file__).resolve().parents[3]
# Freshness is measured at a fixed instant, so that two builds of the same data are identical.
AS_OF = "{freshness_as_of: '2025-01-14 12:00:00+00:00'}"


@pytest.fixture
def warehouse_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DuckDB warehouse of the test's own; dbt's target and logs out of the source tree."""
    path = tmp_path / "warehouse" / "stockpipe.duckdb"
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__TARGET", "duckdb")
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__DUCKDB_PATH", str(path))
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__DBT_PROJECT_DIR", str(REPO / "dbt"))
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "dbt-target"))
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "dbt-logs"))
    return path


def load(lake: SyntheticLake, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("STOCKPIPE_LAKE__URL", lake.settings.url)
    result = CliRunner().invoke(load_app, ["bronze"])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def build(*extra: str) -> None:
    as_of = [] if "--as-of" in extra else ["--vars", AS_OF]
    result = CliRunner().invoke(load_app, ["dbt-build", *as_of, *extra])
    assert result.exit_code == 0, result.output


def run_results(tmp_path: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = json.loads((tmp_path / "dbt-target" / "run_results.json").read_text())["results"]
    return results


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        tables = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema IN ('silver', 'gold') ORDER BY 1"
        ).fetchall()
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for (t,) in tables}


def scalar(path: Path, sql: str) -> Any:
    with duckdb.connect(str(path), read_only=True) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def test_dbt_build_passes_every_test_and_a_rerun_changes_nothing(
    local_lake: SyntheticLake, warehouse_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load(local_lake, monkeypatch)["loaded_objects"] == local_lake.objects
    build()
    results = run_results(tmp_path)
    kinds = {r["unique_id"].split(".")[0] for r in results}
    assert kinds == {"model", "seed", "test", "unit_test"}
    assert [r["unique_id"] for r in results if r["status"] not in ("success", "pass")] == []
    assert sum(1 for r in results if r["unique_id"].startswith("unit_test.")) == 7

    rows = local_lake.rows
    assert scalar(warehouse_env, "SELECT count(*) FROM gold.fct_daily_bars") == rows["daily_bars"]
    assert scalar(warehouse_env, "SELECT count(*) FROM gold.fct_quotes") == rows["quotes"]
    assert scalar(warehouse_env, "SELECT count(*) FROM gold.fct_trades") == rows["trades"]
    assert scalar(warehouse_env, "SELECT sum(dead_letters) FROM gold.fct_dead_letters_daily") == rows["dlq"]
    assert scalar(warehouse_env, "SELECT count(*) FROM gold.mart_symbol_daily") == rows["daily_bars"]
    assert scalar(warehouse_env, "SELECT count(*) FROM gold.mart_intraday_range") == len(local_lake.symbols)
    # Half a year of bars: 90-session averages exist at the end, and YTD returns from January on.
    assert (
        scalar(warehouse_env, f"SELECT count(ma_90) FROM gold.mart_symbol_daily WHERE session_date = '{SESSION}'") == 4
    )
    assert scalar(warehouse_env, "SELECT count(*) FROM gold.mart_symbol_daily WHERE ytd_return IS NOT NULL") == 4 * 6

    before = snapshot(warehouse_env)
    assert load(local_lake, monkeypatch)["loaded_objects"] == 0
    build()
    assert snapshot(warehouse_env) == before


def test_an_incremental_build_after_a_new_session_equals_a_full_rebuild(
    local_lake: SyntheticLake, warehouse_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(local_lake, monkeypatch)
    build()
    next_day = calendar.sessions_between(SESSION + timedelta(days=1), SESSION + timedelta(days=7))[0]
    local_lake.add_session(next_day)
    report = load(local_lake, monkeypatch)
    assert report["rows"]["daily_bars"] == len(local_lake.symbols)
    # Only the branches of the bronze tables that got rows: no dead letters and no calendar change came.
    build("--changed-only")
    built = {r["unique_id"].split(".")[-1] for r in run_results(tmp_path) if r["unique_id"].startswith("model.")}
    assert built == {
        "slv_daily_bars", "slv_quotes", "slv_trades", "dim_symbol", "fct_daily_bars", "fct_quotes", "fct_trades",
        "mart_symbol_daily", "mart_intraday_range",
    }  # fmt: skip
    incremental = snapshot(warehouse_env)
    assert (
        scalar(warehouse_env, f"SELECT count(ma_7) FROM gold.mart_symbol_daily WHERE session_date = '{next_day}'") == 4
    )
    assert scalar(warehouse_env, "SELECT count(*) FROM gold.mart_intraday_range") == 2 * len(local_lake.symbols)

    copy = tmp_path / "full" / "stockpipe.duckdb"
    copy.parent.mkdir()
    shutil.copyfile(warehouse_env, copy)
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__DUCKDB_PATH", str(copy))
    build("--full-refresh")
    assert snapshot(copy) == incremental

    nothing = CliRunner().invoke(load_app, ["dbt-build", "--changed-only"])
    assert nothing.exit_code == 0, nothing.output
    assert "nothing to do" in nothing.output


def restate_bar(lake: SyntheticLake, day: date, symbol: str) -> float:
    """The vendor's corrected bar of an old session: same object, another close (within high/low)."""
    key = daily_bar_key(day, symbol)
    bar = pq.read_table(pa.BufferReader(lake.lake.read(key))).to_pylist()[0]
    bar["close"] = round((bar["high"] + bar["low"] + bar["close"]) / 3, 4)
    lake.lake.write_atomic(key, parquet_bytes(pa.Table.from_pylist([bar], schema=DAILY_BAR_SCHEMA)))
    return float(bar["close"])


def test_a_plain_build_after_a_new_session_and_a_restated_bar_equals_a_full_rebuild(
    local_lake: SyntheticLake, warehouse_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every model runs incrementally (a plain build, not --changed-only) and gives the full rebuild's tables.

    The restated bar is the prior year's last close: the marts must recompute its symbol from there
    on, YTD returns of the new year included.
    """
    load(local_lake, monkeypatch)
    build()
    next_day = calendar.sessions_between(SESSION + timedelta(days=1), SESSION + timedelta(days=7))[0]
    local_lake.add_session(next_day)
    restated_close = restate_bar(local_lake, date(2024, 12, 31), "MSFT")
    report = load(local_lake, monkeypatch)
    assert report["rows"]["daily_bars"] == len(local_lake.symbols) + 1
    # --as-of is --vars' freshness_as_of: the freshness mart is reproducible, so the snapshots compare.
    build_as_of = ["--as-of", "2025-01-14T07:00:00-05:00"]
    build(*build_as_of)
    models = [r for r in run_results(tmp_path) if r["unique_id"].startswith("model.")]
    assert len(models) == 13
    assert {r["status"] for r in run_results(tmp_path)} <= {"success", "pass"}
    incremental = snapshot(warehouse_env)
    msft_2025 = "FROM gold.mart_symbol_daily WHERE symbol = 'MSFT' AND session_date > '2024-12-31'"
    assert scalar(warehouse_env, f"SELECT count(*) {msft_2025}") == 7
    stale = f"prior_year_close_price <> {restated_close} OR ytd_return <> round(close_price / {restated_close} - 1, 6)"
    assert scalar(warehouse_env, f"SELECT count(*) {msft_2025} AND ({stale})") == 0

    copy = tmp_path / "full" / "stockpipe.duckdb"
    copy.parent.mkdir()
    shutil.copyfile(warehouse_env, copy)
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__DUCKDB_PATH", str(copy))
    build("--full-refresh", *build_as_of)
    assert snapshot(copy) == incremental


def test_incremental_runs_still_enforce_on_schema_change_and_the_contracts(
    local_lake: SyntheticLake, warehouse_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The steady-state merge checks columns in one query; a difference must still fail as dbt fails it."""
    load(local_lake, monkeypatch)
    build()
    with duckdb.connect(str(warehouse_env)) as conn:
        conn.execute("ALTER TABLE silver.slv_trades ADD COLUMN stray INTEGER")
    drifted = CliRunner().invoke(load_app, ["dbt-build", "--vars", AS_OF, "--select", "slv_trades"])
    assert drifted.exit_code == 1
    assert "out of sync" in drifted.output

    # The models' SQL no longer matches their contracts (bigint in both), an incremental model and a view.
    project = tmp_path / "dbt-project"
    shutil.copytree(REPO / "dbt", project, ignore=shutil.ignore_patterns("target", "logs"))
    for path, column, retyped in (
        ("fct_trades.sql", "slv_trades.seq,", "cast(slv_trades.seq as double) as seq,"),
        ("marts/mart_data_freshness.sql", "sessions_behind as bigint", "sessions_behind as double"),
    ):
        model = project / "models" / "gold" / path
        model.write_text(model.read_text().replace(column, retyped))
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__DBT_PROJECT_DIR", str(project))
    broken = CliRunner().invoke(
        load_app, ["dbt-build", "--vars", AS_OF, "--select", "fct_trades", "--select", "mart_data_freshness"]
    )
    assert broken.exit_code == 1
    failed = {r["unique_id"].split(".")[-1]: r["message"] for r in run_results(tmp_path) if r["status"] == "error"}
    assert set(failed) == {"fct_trades", "mart_data_freshness"}
    assert all("contract" in message for message in failed.values()), failed
    # The view that failed its contract is still the previous one.
    freshness_type = "SELECT data_type FROM information_schema.columns WHERE table_name = 'mart_data_freshness' "
    assert scalar(warehouse_env, freshness_type + "AND column_name = 'bar_sessions_behind'") == "BIGINT"


def test_every_model_and_column_is_described_and_docs_generate(
    warehouse_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = WarehouseSettings(
        lake=LakeSettings(url=f"file://{tmp_path / 'empty-lake'}"),
        warehouse=WarehouseTargetSettings(duckdb_path=warehouse_env, dbt_project_dir=REPO / "dbt"),
    )
    # An empty lake still gives every bronze table (the loader's DDL), so the whole project builds.
    monkeypatch.setenv("STOCKPIPE_LAKE__URL", settings.lake.url)
    assert CliRunner().invoke(load_app, ["bronze"]).exit_code == 0
    assert run_dbt(["build", "--vars", AS_OF], settings).success
    outcome = run_dbt(["docs", "generate"], settings)
    assert outcome.success, outcome.exception
    manifest = json.loads((outcome.target_path / "manifest.json").read_text())
    catalog = json.loads((outcome.target_path / "catalog.json").read_text())
    models = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] in ("model", "seed")}
    assert len(models) == 14
    for unique_id, node in models.items():
        assert node["description"].strip(), unique_id
        assert node["columns"], unique_id
        undescribed = [c for c, col in node["columns"].items() if not col["description"].strip()]
        assert undescribed == [], unique_id
        assert set(catalog["nodes"][unique_id]["columns"]) == set(node["columns"]), unique_id
        if node["schema"] == "gold":
            assert node["config"]["contract"]["enforced"], unique_id
    for unique_id, source in manifest["sources"].items():
        assert source["description"].strip(), unique_id
        assert all(c["description"].strip() for c in source["columns"].values()), unique_id


def test_source_freshness_runs_on_the_market_clock(
    warehouse_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fresh: the newest due bar and a quote from now. Old trades only warn (the source may be off)."""
    now = datetime.now(UTC)
    due = [d for d in calendar.sessions_between(now.date() - timedelta(days=10), now.date())
           if calendar.session(d).close_utc + timedelta(hours=3) <= now]  # type: ignore[union-attr]  # fmt: skip
    lake = write_synthetic_lake(LakeSettings(url=f"file://{tmp_path / 'lake'}"), symbols=["AAPL"])
    lakegen.write_daily_bars(lake.lake, lake.market, ["AAPL"], [due[-1]])
    quote = {name: None for name in QUOTE_V1.lake_schema().names} | {
        "symbol": "AAPL", "quote_ts": now, "fetched_at": now, "source": "synthetic", "price": 100.0,
        "day_high": 101.0, "day_low": 99.0, "day_open": 100.0, "prev_close": 100.0, "kafka_partition": 0,
        "kafka_offset": 10_000,
    }  # fmt: skip
    obj = StreamObject("quotes", now.date(), "quotes", 0, 10_000, 10_000)
    lake.lake.write_atomic(obj.key, parquet_bytes(pa.Table.from_pylist([quote], schema=QUOTE_V1.lake_schema())))
    load(lake, monkeypatch)
    build("--select", "nyse_sessions")

    result = CliRunner().invoke(load_app, ["dbt-freshness"])
    assert result.exit_code == 0, result.output  # warnings do not fail the command
    sources = json.loads((tmp_path / "dbt-target" / "sources.json").read_text())["results"]
    status = {r["unique_id"].rsplit(".", 1)[1]: r["status"] for r in sources}
    assert status == {"daily_bars": "pass", "quotes": "pass", "trades": "warn"}
    # The quote's age is open-market time only: never more than the seconds since it was written.
    quotes = next(r for r in sources if r["unique_id"].endswith(".quotes"))
    assert quotes["max_loaded_at_time_ago_in_s"] <= (datetime.now(UTC) - now).total_seconds() + 1
