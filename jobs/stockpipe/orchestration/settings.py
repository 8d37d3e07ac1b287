"""Airflow-side settings: how DAGs launch jobs, when they run, and where alerts go.

Environment (prefix `STOCKPIPE_AIRFLOW__`, nested with `__`, like every stockpipe setting):
  MODE                    embedded (a local process per task, the default) or kubernetes (a pod per task)
  EMBEDDED_COMMAND        the `stockpipe` entry point as a JSON list (default: this Python's `-m stockpipe.cli`)
  NAMESPACE, IMAGE, IMAGE_PULL_POLICY, SERVICE_ACCOUNT      the pods (kubernetes mode)
  ENV_SECRETS             JSON list of Kubernetes Secrets exposed to pods as environment (envFrom)
  ENV_CONFIGMAPS          JSON list of ConfigMaps exposed the same way
  POD_ENV                 JSON object of extra plain environment variables for pods
  POD_TEMPLATE_FILE       the chart's job pod template (KubernetesPodOperator's pod_template_file)
  KUBECONFIG              a scheduler outside the cluster launches the pods with this; unset: in-cluster
  RESOURCES__REQUEST_CPU, __REQUEST_MEMORY, __LIMIT_CPU, __LIMIT_MEMORY
  STARTUP_TIMEOUT_S, JOB_TIMEOUT_MINUTES, RETRIES, RETRY_DELAY_S
  WAREHOUSE_POOL          an Airflow pool for the tasks that write the warehouse (a 1-slot pool serialises
                          DuckDB's single writer); unset: the default pool
  SLACK_CONN_ID           the Slack incoming-webhook connection (default slack_stockpipe)
  TIMEZONE, LAKE_TO_BRONZE_CRONS, DAILY_HISTORY_CRON, GAP_BACKFILL_CRON, PIPELINE_WATCH_CRON
  WATCH__*                the thresholds pipeline_watch alerts on (see WatchThresholds)
  DAGS_FOLDER, HOME       where run_dag (embedded demo runs) finds the DAGs and keeps its metadata DB

DAG files read these at parse time: only the environment, never a file, a database or the network.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

NEW_YORK_TZ = "America/New_York"


class PodResources(BaseModel):
    request_cpu: str = "250m"
    request_memory: str = "512Mi"
    limit_cpu: str | None = None  # no CPU limit by default: throttling slows jobs without protecting anyone
    limit_memory: str = "2Gi"

    def as_dict(self) -> dict[str, dict[str, str]]:
        limits = {"memory": self.limit_memory} | ({"cpu": self.limit_cpu} if self.limit_cpu else {})
        return {"requests": {"cpu": self.request_cpu, "memory": self.request_memory}, "limits": limits}


class WatchThresholds(BaseModel):
    components: list[str] = Field(default_factory=lambda: ["producer", "consumer"])
    heartbeat_max_age_s: float = Field(180.0, gt=0, description="a component is lost after this long unheard")
    stale_after_minutes: float = Field(
        30.0, gt=0, description="open-market minutes without a quote in the lake before a symbol is stale"
    )
    dlq_growth_max: int = Field(0, ge=0, description="new dead letters tolerated between two checks")
    gold_stale_after_s: float = Field(
        180.0, gt=0, description="market open: the newest intraday gold row may be this old (continuous loader)"
    )
    alerts_per_hour: int = Field(12, ge=1, description="new-incident messages at most, per hour")
    state_variable: str = Field("stockpipe_watch_state", description="the Airflow Variable holding incident state")


JobMode = Literal["embedded", "kubernetes"]


class AirflowSideSettings(BaseModel):
    mode: JobMode = "embedded"
    embedded_command: list[str] = Field(default_factory=list, description="empty: python -m stockpipe.cli")
    namespace: str = "stockpipe"
    image: str = "stockpipe:0.1.0"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    service_account: str = "stockpipe-jobs"
    env_secrets: list[str] = Field(default_factory=lambda: ["stockpipe-env"])
    env_configmaps: list[str] = Field(default_factory=list)
    pod_env: dict[str, str] = Field(default_factory=dict)
    resources: PodResources = PodResources()
    # The chart's pod template (volumes, Secrets as files, the warehouse claim); the operator's own
    # fields above are merged over it.
    pod_template_file: Path | None = None
    kubeconfig: Path | None = Field(
        None, description="a scheduler outside the cluster launches the job pods with this; unset: in-cluster"
    )
    startup_timeout_s: int = Field(300, ge=10)
    job_timeout_minutes: int = Field(120, ge=1)
    retries: int = Field(2, ge=0)
    retry_delay_s: int = Field(300, ge=0)
    warehouse_pool: str | None = None
    slack_conn_id: str = "slack_stockpipe"
    timezone: str = NEW_YORK_TZ
    # Every 15 minutes of the session, then once after the close (16:00 New York) for the last files.
    lake_to_bronze_crons: list[str] = Field(default_factory=lambda: ["*/15 9-15 * * 1-5", "30 16 * * 1-5"])
    daily_history_cron: str = "30 18 * * 1-5"  # providers publish end-of-day bars some time after the close
    gap_backfill_cron: str = "0 20 * * 1-5"
    pipeline_watch_cron: str = "*/5 * * * *"
    watch: WatchThresholds = WatchThresholds()
    dags_folder: Path | None = None
    home: Path | None = None

    def embedded_argv(self) -> list[str]:
        return list(self.embedded_command) or [sys.executable, "-m", "stockpipe.cli"]


class _Env(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STOCKPIPE_", env_nested_delimiter="__", extra="ignore")

    airflow: AirflowSideSettings = AirflowSideSettings()


@functools.lru_cache(maxsize=1)
def airflow_settings() -> AirflowSideSettings:
    """The settings from the environment only (no secrets directory: DAG parsing must not read files)."""
    return _Env().airflow
