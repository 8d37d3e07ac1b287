"""Settings of `stockpipe dashboard`: the warehouse it reads, the lake and stream it reports on, its caching.

Environment (see stockpipe.settings for the prefix and nesting rules):
  STOCKPIPE_WAREHOUSE__TARGET, __DUCKDB_PATH, __SNOWFLAKE__*   the same variables as the loader
  STOCKPIPE_LAKE__URL, ...                                      the lake (objects, history gaps)
  STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS, ...                       the stream (lag, heartbeats), optional
  STOCKPIPE_DASHBOARD__CACHE_TTL_S                              how long query results are reused
  STOCKPIPE_DASHBOARD__SNAPSHOT_DIR                             where the DuckDB snapshot is kept
  STOCKPIPE_DASHBOARD__SNAPSHOT_REFRESH_S                       a new snapshot at most this often
  STOCKPIPE_DASHBOARD__SNAPSHOT_GRACE_S                         the previous snapshot kept this long
  STOCKPIPE_DASHBOARD__CONSUMER_GROUP                           the lake consumer's group (for its lag)
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from stockpipe.settings import KafkaSettings, LakeSettings, StockpipeSettings
from stockpipe.warehouse.settings import WarehouseTargetSettings


class DashboardOptions(BaseModel):
    cache_ttl_s: float = Field(60.0, gt=0, le=86_400, description="query results are reused this long")
    snapshot_dir: Path | None = Field(
        None, description="where the read-only copy of the DuckDB file lives; default <cache dir>/dashboard"
    )
    snapshot_wait_s: float = Field(
        30.0, ge=0, description="how long the first snapshot waits for a writer (bronze load, dbt) to finish"
    )
    snapshot_refresh_s: float = Field(
        30.0, ge=0, le=3600, description="a new copy of the DuckDB file at most this often (0: after every write)"
    )
    snapshot_grace_s: float = Field(
        30.0, ge=0, le=3600, description="the previous copy is kept this long for sessions still reading it"
    )
    consumer_group: str = Field("stockpipe-lake-writer", min_length=1, description="the lake consumer's group")
    stream_timeout_s: float = Field(3.0, gt=0, le=60, description="how long the health page waits for Kafka")
    heatmap_sessions: int = Field(20, ge=2, le=250, description="sessions shown in the market heatmap")
    heatmap_symbols: int = Field(40, ge=1, le=500, description="most traded symbols shown in the heatmap")
    movers: int = Field(5, ge=1, le=50, description="top gainers and losers shown")
    snowflake_gold_schema: str = Field("GOLD", pattern=r"^[A-Za-z_][A-Za-z0-9_$]*$")


class DashboardSettings(StockpipeSettings):
    warehouse: WarehouseTargetSettings = WarehouseTargetSettings()
    lake: LakeSettings = LakeSettings()
    kafka: KafkaSettings = KafkaSettings()
    dashboard: DashboardOptions = DashboardOptions()

    @model_validator(mode="after")
    def _snowflake_complete(self) -> DashboardSettings:
        sf = self.warehouse.snowflake
        if self.warehouse.target == "snowflake":
            missing = [n for n in ("account", "user") if not getattr(sf, n)]
            if missing:
                raise ValueError(f"warehouse.target=snowflake needs warehouse.snowflake.{', '.join(missing)}")
            if sf.password is None and sf.private_key_file is None:
                raise ValueError("warehouse.snowflake needs private_key_file (key-pair auth) or password")
            if sf.private_key_file is not None and not sf.private_key_file.is_file():
                raise ValueError(f"warehouse.snowflake.private_key_file: {sf.private_key_file} is not a file")
        return self
