"""pipeline_watch: every 5 minutes, producer and consumer liveness (heartbeats), per-symbol freshness
in market hours (the lake) and dead-letter growth; one Slack alert per incident, one on recovery."""

from __future__ import annotations

from airflow.sdk import DAG

from stockpipe.orchestration.jobs import job_task
from stockpipe.orchestration.settings import airflow_settings
from stockpipe.orchestration.tasks import RUN_TIME, START_DATE, TAGS, cron, dag_defaults, judge_and_alert

with DAG(
    dag_id="pipeline_watch",
    schedule=cron(airflow_settings().pipeline_watch_cron),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args={**dag_defaults(), "retries": 0},  # the next run is 5 minutes away
    tags=TAGS,
    doc_md=__doc__,
):
    probe = job_task("probe", ["watch", "probe", "--as-of", RUN_TIME], result=True, retries=0)
    judge_and_alert(probe.output)
