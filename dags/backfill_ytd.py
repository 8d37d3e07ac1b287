"""backfill_ytd: by hand only. Loads every session of a range, year to date unless the run's params
say otherwise (`stockpipe history backfill --start S --end E`); a range without a session skips."""

from __future__ import annotations

from airflow.sdk import DAG, Param

from stockpipe.orchestration.jobs import job_task
from stockpipe.orchestration.tasks import LAKE_DAILY_BARS, START_DATE, TAGS, backfill_gate, dag_defaults

with DAG(
    dag_id="backfill_ytd",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dag_defaults(),
    tags=TAGS,
    doc_md=__doc__,
    params={
        "start": Param(None, type=["null", "string"], format="date", description="first day; default January 1"),
        "end": Param(None, type=["null", "string"], format="date", description="last day; default last closed"),
        "refetch": Param(False, type="boolean", description="fetch symbols the lake already holds completely"),
    },
):
    backfill_gate() >> job_task(
        "history_backfill",
        [
            "history",
            "backfill",
            "--start",
            "{{ ti.xcom_pull(task_ids='session_gate')['start'] }}",
            "--end",
            "{{ ti.xcom_pull(task_ids='session_gate')['end'] }}",
            "{{ '--refetch' if params.refetch else '--no-refetch' }}",
        ],
        result=True,
        outlets=[LAKE_DAILY_BARS],
    )
