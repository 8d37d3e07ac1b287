"""lake_compaction: after each session's close, the session's small stream files (30 s windows while the
market is open) are rewritten per partition into few large ones (`stockpipe lake compact --date <session>`),
atomically and idempotently; closed days skip. It runs after lake_to_bronze's after-close load, so the
compacted objects are recorded in the load ledger and never read again."""

from __future__ import annotations

from airflow.sdk import DAG

from stockpipe.orchestration.jobs import job_task
from stockpipe.orchestration.tasks import GATE_DATE, START_DATE, TAGS, cron, dag_defaults, session_gate

with DAG(
    dag_id="lake_compaction",
    schedule=cron("0 17 * * 1-5"),  # 17:00 New York: after the close and lake_to_bronze's 16:30 load
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dag_defaults(),
    tags=TAGS,
    doc_md=__doc__,
):
    session_gate() >> job_task("lake_compact", ["lake", "compact", "--date", GATE_DATE], result=True, warehouse=True)
