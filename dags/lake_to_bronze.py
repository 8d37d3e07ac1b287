"""lake_to_bronze: load new lake objects into bronze, every 15 minutes of the session, once after the
close, and whenever a history job wrote new bars. Produces the bronze assets that drive dbt_build."""

from __future__ import annotations

from airflow.sdk import DAG

from stockpipe.orchestration.jobs import job_task
from stockpipe.orchestration.notify import LoadSuccessAlert
from stockpipe.orchestration.tasks import (
    BRONZE_ASSETS,
    START_DATE,
    TAGS,
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
        ["load", "bronze"],
        result=True,
        warehouse=True,
        outlets=BRONZE_ASSETS,
        on_success_callback=[LoadSuccessAlert()],
    )
    scheduled_session_gate() >> load
