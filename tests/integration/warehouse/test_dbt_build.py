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

from stockpipe.batch import jobs
from stockpipe.batch.settings import HistorySettings
from stockpipe.contracts.bars import DAILY_BAR_SCHEMA
from stockpipe.contracts.messages import QUOTE_V1
from stockpipe.lake.layout import StreamObject, daily_bar_key
from stockpipe.lake.parquet import parquet_bytes
from stockpipe.marketdata import calendar
from stockpipe.marketdata.history.synthetic_history import synthetic_bars
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe.settings import LakeSettings, load_settings
from stockpipe.warehouse.cli import load_app
from stockpipe.warehouse.dbt_runner import run_dbt
from stockpipe.warehouse.settings import WarehouseSettings, WarehouseTargetSettings
from stockpipe_dev.bench import lakegen

from .conftest import BARS_FROM, BARS_TO, SESSION, SyntheticLake, write_synthetic_lake

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
    assert sum(1 for r in results if r["unique_id"].startswith("unit_test.")) == 11

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
    assert len(models) == 14
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
    assert len(models) == 15
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


# Seed 11's NSR: a 10:1 split going ex on 2024-10-14 and dividends going ex on 2024-08-26 and 2024-11-11.
SPLITTER = "NSR"
SPLIT_DAY = date(2024, 10, 14)


def set_split_factor(lake: SyntheticLake, day: date, symbol: str, split_factor: float) -> None:
    """The vendor's bar of `day` with another split factor (the same raw prices)."""
    key = daily_bar_key(day, symbol)
    bar = pq.read_table(pa.BufferReader(lake.lake.read(key))).to_pylist()[0]
    bar["split_factor"] = split_factor
    lake.lake.write_atomic(key, parquet_bytes(pa.Table.from_pylist([bar], schema=DAILY_BAR_SCHEMA)))


def rows(path: Path, sql: str) -> list[dict[str, Any]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        cursor = conn.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_a_split_that_arrives_after_the_marts_were_built_restates_them(
    tmp_path: Path, warehouse_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Total return through a 10:1 split and two dividends; the split first arrives missing, then restated.

    The split day's return is the true one (close * 10 / previous close - 1), an ex-date's is the
    total return ((close + dividend) / previous close - 1), volatility and moving averages show no
    step, and the plain incremental build after the late split equals a full rebuild.
    """
    market = SyntheticMarket(seed=11)
    actions = {(a.ex_date, a.kind): a.value for a in market.corporate_actions(SPLITTER, BARS_FROM, BARS_TO)}
    assert sorted(actions) == [
        (date(2024, 8, 26), "dividend"), (SPLIT_DAY, "split"), (date(2024, 11, 11), "dividend")
    ]  # fmt: skip
    assert actions[(SPLIT_DAY, "split")] == 10.0
    lake = write_synthetic_lake(LakeSettings(url=f"file://{tmp_path / 'lake'}"), symbols=[SPLITTER, "MSFT"])
    set_split_factor(lake, SPLIT_DAY, SPLITTER, 1.0)  # the vendor's first bar of the day misses the split
    load(lake, monkeypatch)
    build_as_of = ["--as-of", "2025-01-14T07:00:00-05:00"]
    build(*build_as_of)
    mart = f"FROM gold.mart_symbol_daily WHERE symbol = '{SPLITTER}'"
    assert scalar(warehouse_env, f"SELECT daily_return {mart} AND session_date = '{SPLIT_DAY}'") < -0.85

    set_split_factor(lake, SPLIT_DAY, SPLITTER, 10.0)  # the split arrives
    assert load(lake, monkeypatch)["rows"]["daily_bars"] == 1
    build(*build_as_of)
    assert {r["status"] for r in run_results(tmp_path)} <= {"success", "pass"}
    series = rows(warehouse_env, f"SELECT * {mart} ORDER BY session_date")
    by_day = {r["session_date"]: r for r in series}
    split_row = by_day[SPLIT_DAY]
    assert split_row["split_factor"] == 10.0
    assert split_row["daily_return"] == round(split_row["close_price"] * 10 / split_row["prev_close_price"] - 1, 6)
    for (day, kind), cash in actions.items():
        if kind == "dividend":
            row = by_day[day]
            assert row["dividend_cash"] == cash
            total_return = (row["close_price"] + cash) / row["prev_close_price"] - 1
            assert row["daily_return"] == pytest.approx(total_return, abs=2e-6)
    # No step anywhere: the synthetic market moves a few percent a day at most.
    assert max(abs(r["daily_return"] or 0.0) for r in series) < 0.1
    assert max(r["volatility_30"] or 0.0 for r in series) < 1.0
    for column in ("ma_7", "ma_30", "ma_90"):
        ratios = [r[column] / r["adj_close_price"] for r in series if r[column] is not None]
        assert ratios, column
        assert 0.8 < min(ratios) <= max(ratios) < 1.25, column
    # The raw close is kept: before the split it is ten times (and a dividend more) the adjusted one.
    before = by_day[date(2024, 10, 1)]
    assert 10.0 < before["close_price"] / before["adj_close_price"] < 10.2
    # Year-to-date total return, based on the restated (adjusted) last close of 2024.
    last = by_day[BARS_TO]
    assert last["ytd_return"] == round(last["adj_close_price"] / last["prior_year_adj_close_price"] - 1, 6)
    # The restated adjusted history is what the provider serves for a fetch of the whole range.
    provider = {b.day: b.adj_close for b in synthetic_bars(market, SPLITTER, BARS_FROM, BARS_TO)}
    fct = rows(warehouse_env, f"SELECT session_date, adj_close FROM gold.fct_daily_bars WHERE symbol = '{SPLITTER}'")
    assert {r["session_date"]: pytest.approx(provider[r["session_date"]], abs=2e-6) for r in fct} == {
        r["session_date"]: r["adj_close"] for r in fct
    }
    assert rows(warehouse_env, "SELECT symbol, ex_date, kind FROM gold.fct_corporate_actions ORDER BY ex_date") == [
        {"symbol": SPLITTER, "ex_date": day, "kind": kind} for day, kind in sorted(actions)
    ]

    incremental = snapshot(warehouse_env)
    copy = tmp_path / "full" / "stockpipe.duckdb"
    copy.parent.mkdir()
    shutil.copyfile(warehouse_env, copy)
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__DUCKDB_PATH", str(copy))
    build("--full-refresh", *build_as_of)
    assert snapshot(copy) == incremental


def test_a_backfill_from_2005_builds_gold_with_every_test_passing(
    tmp_path: Path, warehouse_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty years of two symbols (a split, dividends) through the history job, bronze and dbt."""
    lake = LakeSettings(url=f"file://{tmp_path / 'lake'}")
    settings = load_settings(
        HistorySettings, lake=lake, history_symbols=["MSFT", SPLITTER], history_budget_per_minute=60_000,
        synthetic_seed=11,
    )  # fmt: skip
    start, end = date(2005, 1, 3), date(2025, 1, 10)
    summary = jobs.backfill(settings, start, end)
    assert summary.ok, summary.to_dict()
    monkeypatch.setenv("STOCKPIPE_LAKE__URL", lake.url)
    loaded = CliRunner().invoke(load_app, ["bronze"])
    assert loaded.exit_code == 0, loaded.output
    build()
    results = run_results(tmp_path)
    assert [r["unique_id"] for r in results if r["status"] not in ("success", "pass")] == []
    sessions = len(calendar.sessions_between(start, end))
    assert scalar(warehouse_env, "SELECT count(*) FROM gold.mart_symbol_daily") == 2 * sessions
    assert scalar(warehouse_env, "SELECT min(session_date) FROM gold.fct_daily_bars") == start
    splits = rows(warehouse_env, "SELECT symbol, ex_date, ratio FROM gold.fct_corporate_actions WHERE kind = 'split'")
    assert {"symbol": "MSFT", "ex_date": date(2017, 7, 17), "ratio": 3.0} in splits
    assert scalar(warehouse_env, "SELECT count(*) FROM gold.fct_corporate_actions WHERE kind = 'dividend'") > 20
    assert scalar(warehouse_env, "SELECT max(abs(daily_return)) FROM gold.mart_symbol_daily") < 0.1


def test_the_helm_test_probe_reaches_bronze_but_never_silver_or_gold(
    warehouse_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stockpipe.stream.probe import PROBE_SOURCE, PROBE_SYMBOL

    lake = write_synthetic_lake(LakeSettings(url=f"file://{tmp_path / 'lake'}"), symbols=["AAPL"])
    at = datetime(2025, 1, 10, 16, tzinfo=UTC)
    probe = {name: None for name in QUOTE_V1.lake_schema().names} | {
        "symbol": PROBE_SYMBOL, "quote_ts": at, "fetched_at": at, "source": PROBE_SOURCE, "price": 1234.56,
        "day_high": 1234.56, "day_low": 1234.56, "day_open": 1234.56, "prev_close": 1234.56, "kafka_partition": 0,
        "kafka_offset": 90_000,
    }  # fmt: skip
    obj = StreamObject("quotes", SESSION, "quotes", 0, 90_000, 90_000)
    lake.lake.write_atomic(obj.key, parquet_bytes(pa.Table.from_pylist([probe], schema=QUOTE_V1.lake_schema())))
    load(lake, monkeypatch)
    assert scalar(warehouse_env, f"SELECT count(*) FROM bronze.quotes WHERE symbol = '{PROBE_SYMBOL}'") == 1

    build()
    for table in ("silver.slv_quotes", "gold.fct_quotes", "gold.dim_symbol", "gold.mart_intraday_range"):
        assert scalar(warehouse_env, f"SELECT count(*) FROM {table} WHERE symbol = '{PROBE_SYMBOL}'") == 0, table
    assert scalar(warehouse_env, "SELECT count(*) FROM gold.fct_quotes") > 0
    probe_tests = [r for r in run_results(tmp_path) if r["unique_id"].startswith("test.stockpipe.not_probe_")]
    assert len(probe_tests) == 5
    assert all(r["status"] == "pass" for r in probe_tests)
