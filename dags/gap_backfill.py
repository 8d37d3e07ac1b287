"""gap_backfill: every session evening, find the sessions the lake lacks per symbol (January 1 to the
run's session) and fetch only those (`stockpipe history gaps --end <session>`). Closed days skip."""

from __future__ import annotations

from airflow.sdk import DAG

from stockpipe.orchestration.jobs import job_task
from stockpipe.orchestration.settings import airflow_settings
from stockpipe.orchestration.tasks import GATE_DATE, LAKE_DAILY_BARS, START_DATE, TAGS, cron, dag_defaults, session_gate

with DAG(
    dag_id="gap_backfill",
    schedule=cron(airflow_settings().gap_backfill_cron),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dag_defaults(),
    tags=TAGS,
    doc_md=__doc__,
):
    session_gate() >> job_task(
        "history_gaps", ["history", "gaps", "--end", GATE_DATE], result=True, outlets=[LAKE_DAILY_BARS]
    )
