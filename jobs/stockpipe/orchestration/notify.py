"""Slack from Airflow: the provider's SlackWebhookNotifier on the connection named in settings.

`post` never raises: with no connection configured (or Slack down) it logs the alert and returns
False, so a missing Slack setup never fails a task. Connection: an "Slack Incoming Webhook"
(`slackwebhook`) connection, default id `slack_stockpipe`, whose password is the webhook URL.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseHook, BaseNotifier
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from stockpipe.logs import redact
from stockpipe.orchestration.settings import airflow_settings

log = logging.getLogger("stockpipe.orchestration.slack")

MAX_ERROR_CHARS = 300


def post(text: str, context: Any = None, conn_id: str | None = None) -> bool:
    """Send one message; False (and a log line) instead of an exception when it cannot go out."""
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    conn_id = conn_id or airflow_settings().slack_conn_id
    try:
        BaseHook.get_connection(conn_id)
    except Exception as exc:  # not found, or no way to reach connections: either way, log only
        log.warning("no Slack connection %r (%s); alert logged only: %s", conn_id, type(exc).__name__, redact(text))
        return False
    # A new notifier per message: a notifier renders its fields in place, once.
    notifier: Any = SlackWebhookNotifier(
        slack_webhook_conn_id=conn_id,
        text=text,
        timeout=10,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    try:
        notifier.notify(context or {})
    except Exception as exc:
        log.error("Slack alert not sent (%s); alert: %s", redact(str(exc)), redact(text))
        return False
    return True


def failure_text(dag_id: str, task_id: str, try_number: int | None, log_url: str | None, error: object) -> str:
    reason = redact(str(error))[:MAX_ERROR_CHARS] if error is not None else "no error recorded"
    tries = f" (try {try_number})" if try_number else ""
    link = f"\nlog: {log_url}" if log_url else ""
    return f":x: stockpipe `{dag_id}.{task_id}` failed{tries}: {reason}{link}"


def load_success_text(dag_id: str, summary: Any) -> str | None:
    """The message for a bronze load's JSON report, or None when it loaded nothing (nothing to say)."""
    if not isinstance(summary, dict):
        return None
    files = int(summary.get("loaded_objects") or 0)
    if files == 0:
        return None
    rows: dict[str, int] = {str(k): int(v) for k, v in dict(summary.get("rows") or {}).items()}
    per_table = ", ".join(f"{table} {count:,}" for table, count in sorted(rows.items()) if count)
    seconds = float(summary.get("seconds") or 0.0)
    return (
        f":white_check_mark: stockpipe `{dag_id}`: loaded {files:,} files, {sum(rows.values()):,} rows"
        f"{f' ({per_table})' if per_table else ''} into {summary.get('target', 'bronze')} in {seconds:.1f} s"
        f" (load {summary.get('load_id', '?')})"
    )


class JobFailureAlert(BaseNotifier):
    """on_failure_callback: which task failed, on which try, why, and a link to its log."""

    def notify(self, context: Any) -> None:
        ti = context.get("ti") or context.get("task_instance")
        text = failure_text(
            dag_id=str(getattr(ti, "dag_id", "?")),
            task_id=str(getattr(ti, "task_id", "?")),
            try_number=getattr(ti, "try_number", None),
            log_url=getattr(ti, "log_url", None),
            error=context.get("exception"),
        )
        post(text, context)


class LoadSuccessAlert(BaseNotifier):
    """on_success_callback of a load task: files and rows from the job's JSON report (its XCom)."""

    def notify(self, context: Any) -> None:
        ti = context["ti"]
        summary = ti.xcom_pull(task_ids=ti.task_id)
        text = load_success_text(ti.dag_id, summary)
        if text is None:
            log.info("load loaded nothing new: no Slack message")
            return
        post(text, context)
