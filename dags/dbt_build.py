"""dbt_build: silver and gold, whenever a load brought rows to a bronze table; only the branches of the
tables that got rows since the last build (`stockpipe load dbt-build --changed-only`)."""

from __future__ import annotations

from airflow.sdk import DAG, AssetAny

from stockpipe.orchestration.jobs import job_task
from stockpipe.orchestration.tasks import BRONZE_ASSETS, START_DATE, TAGS, dag_defaults

with DAG(
    dag_id="dbt_build",
    schedule=AssetAny(*BRONZE_ASSETS),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dag_defaults(),
    tags=TAGS,
    doc_md=__doc__,
):
    job_task("dbt_build", ["load", "dbt-build", "--changed-only"], warehouse=True)
