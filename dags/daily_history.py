"""daily_history: each session's daily bars, after the close, for the session of the run's logical
date (`stockpipe history daily --date <session>`). Closed days skip. New bars trigger lake_to_bronze."""

from __future__ import annotations

from airflow.sdk import DAG

from stockpipe.orchestration.jobs import job_task
from stockpipe.orchestration.settings import airflow_settings
from stockpipe.orchestration.tasks import GATE_DATE, LAKE_DAILY_BARS, START_DATE, TAGS, cron, dag_defaults, session_gate

with DAG(
    dag_id="daily_history",
    schedule=cron(airflow_settings().daily_history_cron),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dag_defaults(),
    tags=TAGS,
    doc_md=__doc__,
):
    session_gate() >> job_task(
        "history_daily", ["history", "daily", "--date", GATE_DATE], result=True, outlets=[LAKE_DAILY_BARS]
    )
