"""Two loads into one DuckDB bronze at once: the one that commits later carries the later loaded_at, so
dbt's incremental silver (rows loaded after its newest loaded_at) never skips a row."""

from __future__ import annotations

import threading
from datetime import date, datetime
from pathlib import Path
from typing import Any

from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe.settings import LakeSettings
from stockpipe.warehouse.dbt_runner import run_dbt
from stockpipe.warehouse.duckdb_target import DuckDBTarget
from stockpipe.warehouse.loader import BronzeLoader, LoadReport
from stockpipe.warehouse.settings import WarehouseSettings, WarehouseTargetSettings
from stockpipe_dev.bench import lakegen

DBT_PROJECT = Path(__file__).resolve().parents[3] / "dbt"
SYMBOLS = ["AAPL", "MSFT"]


class PausingTarget(DuckDBTarget):
    """Holds its first load transaction open right after taking loaded_at, until released (or 15 s)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stamped = threading.Event()
        self.release = threading.Event()

    def _now(self) -> datetime:
        now = super()._now()
        if not self.stamped.is_set():  # the first call: loaded_at of the first batch, inside its transaction
            self.stamped.set()
            self.release.wait(15)
        return now


def test_two_overlapping_loads_lose_no_row_in_silver(tmp_path: Path) -> None:
    days = calendar.sessions_between(date(2025, 1, 2), date(2025, 1, 31))
    lakes = []
    for name, part in (("first", days[:10]), ("second", days[10:])):
        lake = Lake(LakeSettings(url=f"file://{tmp_path / name}"))
        lakegen.write_daily_bars(lake, SyntheticMarket(), SYMBOLS, part)
        lakes.append(lake)
    db = tmp_path / "wh.duckdb"
    with DuckDBTarget(db, lakes[0]) as target:
        target.ensure_schema()
    settings = WarehouseSettings(
        lake=lakes[0].settings, warehouse=WarehouseTargetSettings(duckdb_path=db, dbt_project_dir=DBT_PROJECT)
    )

    def silver() -> None:
        outcome = run_dbt(
            ["run", "--select", "slv_daily_bars"],
            settings,
            target_path=tmp_path / "dbt-target",
            extra_env={"DBT_LOG_PATH": str(tmp_path / "dbt-logs")},
        )
        assert outcome.success, outcome.failures() or outcome.exception

    reports: dict[str, LoadReport] = {}
    first = PausingTarget(db, lakes[0])
    second = DuckDBTarget(db, lakes[1])

    def load(name: str, target: DuckDBTarget, lake: Lake) -> None:
        reports[name] = BronzeLoader(lake, target).run()

    a = threading.Thread(target=load, args=("first", first, lakes[0]))
    a.start()
    assert first.stamped.wait(30), "the first load never reached its transaction"
    # The second load starts while the first holds its loaded_at: it must wait for the first to commit.
    b = threading.Thread(target=load, args=("second", second, lakes[1]))
    b.start()
    b.join(8)  # ample time for a 20-object load that does not wait
    committed_second_first = not b.is_alive()
    first.release.set()
    a.join(30)
    b.join(30)
    first.close()
    second.close()
    assert not committed_second_first, "the second load committed while the first held an older loaded_at"
    assert reports["first"].total_rows == reports["second"].total_rows == 10 * len(SYMBOLS)

    silver()
    with DuckDBTarget(db, lakes[0]) as target:
        stamps = dict(
            target.conn.execute("SELECT load_id, max(loaded_at) FROM bronze.daily_bars GROUP BY 1").fetchall()
        )
        assert stamps[reports["second"].load_id] > stamps[reports["first"].load_id]
        silver_rows = target.conn.execute("SELECT count(*) FROM silver.slv_daily_bars").fetchone()
        bronze_rows = target.conn.execute("SELECT count(*) FROM bronze.daily_bars").fetchone()
    assert silver_rows == bronze_rows == (len(days) * len(SYMBOLS),)
