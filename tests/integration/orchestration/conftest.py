"""DAG runs on one machine: a temporary Airflow home (SQLite, created once per session), the
pipeline's environment for the embedded jobs, and helpers to read the DuckDB warehouse.

DAG runs go through stockpipe.orchestration.embedded.run_dag, the function `make demo` calls: each
is a child process running dag.test(), so Airflow's configuration never leaks into this process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from stockpipe.orchestration.embedded import DagRunOutcome, airflow_env, run_dag
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.topics import isolated_topics
from stockpipe_dev.localservices.kafka import KafkaBroker

REPO = Path(__file__).resolve().parents[3]
DAGS = REPO / "dags"
CLI_ENTRY = Path(__file__).with_name("cli_entry.py")
SYMBOLS = ["AAPL", "MSFT", "NVDA", "BRK.B"]


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A metadata database for the whole session, migrated once (`airflow db migrate` does the same)."""
    home = tmp_path_factory.mktemp("airflow")
    env = {**_base_env(), **airflow_env(home, DAGS)}
    code = "from stockpipe.orchestration.embedded import ensure_db; ensure_db()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300, capture_output=True)
    assert (home / "airflow.db").is_file()
    return home


def _base_env() -> dict[str, str]:
    import os

    # Nothing from the developer's own setup: only what a test sets.
    return {k: v for k, v in os.environ.items() if not k.startswith(("STOCKPIPE_", "AIRFLOW"))}


@dataclass
class Pipeline:
    """The environment of one test's pipeline: its topics, its lake prefix, its warehouse file."""

    kafka: KafkaSettings
    lake: LakeSettings
    warehouse: Path
    home: Path
    env: dict[str, str]

    def run(self, dag_id: str, logical_date: datetime, conf: dict[str, Any] | None = None, **env: str) -> DagRunOutcome:
        return run_dag(
            dag_id, logical_date, conf, env={**self.env, **env}, home=self.home, dags_folder=DAGS, timeout_s=900
        )

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql).fetchall()


@pytest.fixture
def pipeline(airflow_home: Path, kafka_broker: KafkaBroker, s3_lake: LakeSettings, tmp_path: Path) -> Pipeline:
    suffix = uuid.uuid4().hex[:8]
    kafka = isolated_topics(kafka_broker.bootstrap, suffix)
    warehouse = tmp_path / "warehouse" / "stockpipe.duckdb"
    warehouse.parent.mkdir()
    assert s3_lake.access_key is not None
    assert s3_lake.secret_key is not None
    env = {
        **_base_env(),
        "STOCKPIPE_AIRFLOW__EMBEDDED_COMMAND": json.dumps([sys.executable, str(CLI_ENTRY)]),
        "STOCKPIPE_AIRFLOW__RETRIES": "0",
        "STOCKPIPE_AIRFLOW__WATCH__STATE_VARIABLE": f"watch_state_{suffix}",
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "STOCKPIPE_KAFKA__TOPIC_QUOTES": kafka.topic_quotes,
        "STOCKPIPE_KAFKA__TOPIC_TRADES": kafka.topic_trades,
        "STOCKPIPE_KAFKA__TOPIC_DLQ": kafka.topic_dlq,
        "STOCKPIPE_KAFKA__TOPIC_HEARTBEATS": kafka.topic_heartbeats,
        "STOCKPIPE_LAKE__URL": s3_lake.url,
        "STOCKPIPE_LAKE__S3_ENDPOINT_URL": str(s3_lake.s3_endpoint_url),
        "STOCKPIPE_LAKE__ACCESS_KEY": s3_lake.access_key.get_secret_value(),
        "STOCKPIPE_LAKE__SECRET_KEY": s3_lake.secret_key.get_secret_value(),
        "STOCKPIPE_WAREHOUSE__DUCKDB_PATH": str(warehouse),
        "STOCKPIPE_WAREHOUSE__DBT_PROJECT_DIR": str(REPO / "dbt"),
        "STOCKPIPE_HISTORY_SYMBOLS": ",".join(SYMBOLS),
        "STOCKPIPE_WATCH_SYMBOLS": ",".join(SYMBOLS),
        "STOCKPIPE_LOG_LEVEL": "INFO",
    }
    return Pipeline(kafka, s3_lake, warehouse, airflow_home, env)
