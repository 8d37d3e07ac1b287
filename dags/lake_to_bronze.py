"""lake_to_bronze: load new lake objects into bronze, every 15 minutes of the session, once after the
close, and whenever a history job wrote new bars. Emits the asset of each bronze table that got rows
(none after a load that found nothing new), which is what drives dbt_build."""

from __future__ import annotations

from airflow.sdk import DAG

from stockpipe.orchestration.jobs import job_task
from stockpipe.orchestration.notify import LoadSuccessAlert
from stockpipe.orchestration.tasks import (
    BRONZE_ASSETS,
    BRONZE_TABLES,
    LOAD_LISTING,
    START_DATE,
    TAGS,
    bronze_announcement,
    dag_defaults,
    lake_to_bronze_schedule,
    scheduled_session_gate,
)

with DAG(
    dag_id="lake_to_bronze",
    schedule=lake_to_bronze_schedule(),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dag_defaults(),
    tags=TAGS,
    doc_md=__doc__,
):
    load = job_task(
        "load_bronze",
        ["load", "bronze", "--listing", LOAD_LISTING],
        result=True,
        warehouse=True,
        on_success_callback=[LoadSuccessAlert()],
    )
    scheduled_session_gate() >> load
    for table, asset in zip(BRONZE_TABLES, BRONZE_ASSETS, strict=True):
        load >> bronze_announcement(table, asset, "load_bronze")
