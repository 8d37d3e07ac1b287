"""What the Airflow-side Slack messages say, and that a missing connection never raises."""

from __future__ import annotations

import logging

import pytest

from stockpipe.orchestration import notify

LOAD_REPORT = {
    "load_id": "20251201T213000Z-ab12cd34",
    "target": "duckdb",
    "listed": 40,
    "pending": 7,
    "loaded_objects": 7,
    "batches": 1,
    "rows": {"quotes": 1560, "daily_bars": 4, "trades": 0},
    "skipped_dirs": 0,
    "seconds": 1.234,
}


def test_load_success_names_files_and_rows_per_table() -> None:
    text = notify.load_success_text("lake_to_bronze", LOAD_REPORT)
    assert text is not None
    assert "loaded 7 files, 1,564 rows (daily_bars 4, quotes 1,560)" in text
    assert "20251201T213000Z-ab12cd34" in text


def test_a_load_of_nothing_says_nothing() -> None:
    assert notify.load_success_text("lake_to_bronze", {**LOAD_REPORT, "loaded_objects": 0, "rows": {}}) is None
    assert notify.load_success_text("lake_to_bronze", None) is None


def test_failure_names_task_try_reason_and_log_link() -> None:
    text = notify.failure_text(
        "daily_history", "history_daily", 2, "http://airflow/dags/x/runs/r/tasks/t?try_number=2",
        RuntimeError("history daily failed: token=abcdef123456"),
    )  # fmt: skip
    assert text.startswith(":x: stockpipe `daily_history.history_daily` failed (try 2): history daily failed")
    assert "abcdef123456" not in text  # secrets in error messages are masked
    assert text.endswith("log: http://airflow/dags/x/runs/r/tasks/t?try_number=2")


def test_post_without_a_slack_connection_logs_and_returns_false(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="stockpipe.orchestration.slack"):
        assert notify.post("hello", conn_id="no_such_connection_anywhere") is False
    assert "alert logged only: hello" in caplog.text
