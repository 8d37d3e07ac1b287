"""Settings of the warehouse workloads: `stockpipe load bronze` and `stockpipe load dbt-build`.

Environment (see stockpipe.settings for the prefix and nesting rules):
  STOCKPIPE_LAKE__URL, STOCKPIPE_LAKE__S3_ENDPOINT_URL, ...   the lake, shared with the consumer
  STOCKPIPE_WAREHOUSE__TARGET                  duckdb (default) or snowflake
  STOCKPIPE_WAREHOUSE__DUCKDB_PATH             the DuckDB file (default .warehouse/stockpipe.duckdb)
  STOCKPIPE_WAREHOUSE__BATCH_MAX_OBJECTS       lake objects per load transaction
  STOCKPIPE_WAREHOUSE__BATCH_MAX_BYTES         their total size per load transaction
  STOCKPIPE_WAREHOUSE__S3__REQUEST_TIMEOUT_SECONDS, __CONNECT_TIMEOUT_SECONDS, __MAX_ATTEMPTS, __VERIFY_MD5
                                               the S3 spool's GETs (DuckDB loading from an S3 lake)
  STOCKPIPE_WAREHOUSE__DBT_PROJECT_DIR         where dbt_project.yml and profiles.yml are (default dbt)
  STOCKPIPE_WAREHOUSE__SNOWFLAKE__ACCOUNT, __USER, __PASSWORD, __ROLE, __WAREHOUSE, __DATABASE,
  __AUTHENTICATOR, __PRIVATE_KEY_FILE, __STAGE_MODE (internal|external), __STAGE_NAME,
  __STAGE_URL, __STORAGE_INTEGRATION
The dbt profile (dbt/profiles.yml) reads the same variables, so one environment serves both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from stockpipe.settings import LakeSettings, StockpipeSettings

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_$]*$"


class SnowflakeSettings(BaseModel):
    account: str | None = Field(None, description="account identifier, e.g. myorg-myaccount")
    user: str | None = None
    password: SecretStr | None = None
    authenticator: str | None = Field(None, description="e.g. SNOWFLAKE_JWT with private_key_file; default password")
    private_key_file: Path | None = None
    host: str | None = Field(None, description="override the account's host (private link, a local stand-in)")
    port: int | None = Field(None, ge=1, le=65535)
    protocol: Literal["https", "http"] = "https"
    role: str | None = None
    warehouse: str | None = None
    database: str = Field("STOCKPIPE", pattern=_IDENTIFIER)
    bronze_schema: str = Field("BRONZE", pattern=_IDENTIFIER)
    stage_mode: Literal["external", "internal"] = Field(
        "external",
        description="external: a stage on the lake bucket, no upload (production); internal: PUT each object",
    )
    stage_name: str = Field("STOCKPIPE_LAKE", pattern=_IDENTIFIER)
    stage_url: str | None = Field(None, description="s3://bucket/prefix of the lake; creates the external stage")
    storage_integration: str | None = Field(None, pattern=_IDENTIFIER, description="for the external stage")

    @model_validator(mode="after")
    def _external_stage_needs_integration(self) -> SnowflakeSettings:
        if self.stage_url and not self.storage_integration:
            raise ValueError("stage_url needs storage_integration (Snowflake reads the bucket through it)")
        return self


class S3FetchSettings(BaseModel):
    """How the DuckDB target fetches an S3 batch into its spool (Arrow's S3 client)."""

    request_timeout_seconds: float = Field(30.0, gt=0, description="a request (or a stalled read) fails after this")
    connect_timeout_seconds: float = Field(5.0, gt=0)
    max_attempts: int = Field(3, ge=1, le=10, description="attempts per request (AWS standard retry strategy)")
    verify_md5: bool = Field(
        True,
        description="check single-part objects' bytes against their ETag (an MD5); off for SSE-KMS/SSE-C buckets",
    )


class WarehouseTargetSettings(BaseModel):
    target: Literal["duckdb", "snowflake"] = "duckdb"
    duckdb_path: Path = Field(Path(".warehouse/stockpipe.duckdb"), description="the embedded warehouse file")
    duckdb_threads: int | None = Field(None, ge=1, description="DuckDB worker threads; default: all cores")
    batch_max_objects: int = Field(1000, ge=1, le=1000, description="objects per transaction (COPY FILES limit)")
    batch_max_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1,
        description="bytes of objects per transaction (an S3 batch's spool beside the DuckDB file)",
    )
    dbt_project_dir: Path = Field(Path("dbt"), description="holds dbt_project.yml and profiles.yml")
    s3: S3FetchSettings = S3FetchSettings()
    snowflake: SnowflakeSettings = SnowflakeSettings()


class WarehouseSettings(StockpipeSettings):
    lake: LakeSettings = LakeSettings()
    warehouse: WarehouseTargetSettings = WarehouseTargetSettings()
