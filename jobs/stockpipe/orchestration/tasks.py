"""The parts the DAG files assemble: assets, schedules, calendar gates, the watch judgement task.

Everything here is cheap to build at parse time: no I/O happens until a task runs.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow.sdk import (
    Asset,
    AssetAny,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    MultipleCronTriggerTimetable,
    Variable,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowSkipException

from stockpipe.orchestration import gating
from stockpipe.orchestration.notify import JobFailureAlert, post
from stockpipe.orchestration.settings import AirflowSideSettings, airflow_settings

log = logging.getLogger("stockpipe.orchestration")

START_DATE = datetime(2025, 1, 1, tzinfo=UTC)
TAGS = ["stockpipe"]
GATE_TASK_ID = "session_gate"

# The lake's daily bars (written by the history jobs) and the bronze tables (written by the load).
LAKE_DAILY_BARS = Asset(name="lake.raw.daily_bars", uri="stockpipe://lake/raw/daily_bars")
BRONZE_TABLES = ("daily_bars", "quotes", "trades", "dlq")
BRONZE_ASSETS = [Asset(name=f"bronze.{t}", uri=f"stockpipe://warehouse/bronze/{t}") for t in BRONZE_TABLES]

# Arguments that take the gate's decision (a Jinja template, rendered when the task runs).
GATE_DATE = "{{ ti.xcom_pull(task_ids='" + GATE_TASK_ID + "') }}"
RUN_TIME = "{{ (logical_date or dag_run.run_after).isoformat() }}"


def dag_defaults(settings: AirflowSideSettings | None = None) -> dict[str, Any]:
    settings = settings or airflow_settings()
    return {
        "owner": "stockpipe",
        "retries": settings.retries,
        "retry_delay": timedelta(seconds=settings.retry_delay_s),
        "on_failure_callback": [JobFailureAlert()],
    }


def cron(expression: str, settings: AirflowSideSettings | None = None) -> CronTriggerTimetable:
    return CronTriggerTimetable(expression, timezone=(settings or airflow_settings()).timezone)


def lake_to_bronze_schedule(settings: AirflowSideSettings | None = None) -> AssetOrTimeSchedule:
    """On the clock during and after the session, and whenever a history job has written new bars."""
    settings = settings or airflow_settings()
    clock = MultipleCronTriggerTimetable(*settings.lake_to_bronze_crons, timezone=settings.timezone)
    return AssetOrTimeSchedule(timetable=clock, assets=AssetAny(LAKE_DAILY_BARS))


# `stockpipe load bronze --listing ...`: clock-driven runs list the lake's recent partitions only;
# runs triggered by a history job (which may have written under an old range's day) or by hand list all.
LOAD_LISTING = "{{ 'recent' if dag_run.run_type == 'scheduled' else 'full' }}"


def bronze_announcement(table: str, asset: Asset, load_task_id: str) -> Any:
    """A task that emits `asset` (and so triggers dbt_build) only when the load brought `table` rows."""

    @task(task_id=f"announce_{table}", outlets=[asset])
    def announce() -> int:
        report = get_current_context()["ti"].xcom_pull(task_ids=load_task_id)
        rows = (report or {}).get("rows", {}) if isinstance(report, dict) else {}
        got = int(rows.get(table, 0))
        if got == 0:
            raise _skip(f"the load brought no rows to bronze.{table}: nothing for dbt to build")
        return got

    return announce()


def _run_time(context: Any) -> datetime:
    """The instant the run is for: its logical date, or when it was due (asset-triggered runs have none)."""
    at: datetime = context.get("logical_date") or context["dag_run"].run_after
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _skip(reason: str) -> AirflowSkipException:
    log.info("skipping this run: %s", reason)
    return AirflowSkipException(reason)


@task(task_id=GATE_TASK_ID)
def session_gate() -> str:
    """The NYSE session this run is for (its New York date); skips on days the exchange is closed."""
    at = _run_time(get_current_context())
    try:
        day = gating.session_for(at)
    except gating.NotASession as exc:
        raise _skip(str(exc)) from None
    log.info("run at %s is for the session of %s", at.isoformat(), day)
    return day.isoformat()


@task(task_id=GATE_TASK_ID)
def scheduled_session_gate() -> str | None:
    """Clock-driven runs skip on closed days; runs triggered by new data or by hand always load."""
    context = get_current_context()
    run_type = getattr(context["dag_run"], "run_type", None)
    run_type = str(getattr(run_type, "value", run_type))
    if run_type != "scheduled":
        log.info("%s run: loading whatever the lake holds, whatever the day", run_type or "unscheduled")
        return None
    at = _run_time(context)
    try:
        day = gating.session_for(at)
    except gating.NotASession as exc:
        raise _skip(str(exc)) from None
    return day.isoformat()


@task(task_id=GATE_TASK_ID)
def backfill_gate() -> dict[str, str | int]:
    """The range from the run's params (default: year to date); skips when it holds no session."""
    context = get_current_context()
    params = context["params"]

    def day(name: str) -> date | None:
        value = params.get(name)
        return date.fromisoformat(str(value)) if value else None

    try:
        span = gating.backfill_range(day("start"), day("end"), _run_time(context))
    except gating.NotASession as exc:
        raise _skip(str(exc)) from None
    log.info("backfill %s..%s: %d sessions", span.start, span.end, span.sessions)
    return span.as_xcom()


@task(task_id="judge_and_alert")
def judge_and_alert(report: Any) -> list[str]:
    """Compare the probe's report with the thresholds and the incidents of earlier runs; alert on changes."""
    from stockpipe.orchestration.watch_alerts import run_watch

    settings = airflow_settings()
    if not isinstance(report, dict):
        raise ValueError(f"the probe printed no JSON report: {report!r}")
    key = settings.watch.state_variable
    state = Variable.get(key, default=None, deserialize_json=True) or {}
    context = get_current_context()
    new_state, sent = run_watch(report, state, settings.watch, lambda text: post(text, context))
    Variable.set(key, new_state, serialize_json=True)
    log.info("incidents open: %s; messages sent: %d", sorted(new_state["book"]["incidents"]), len(sent))
    return sent
