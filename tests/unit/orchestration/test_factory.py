"""The task factory decides by STOCKPIPE_AIRFLOW__MODE; embedded tasks run the job as a local process."""

from __future__ import annotations

import sys

import pytest

from stockpipe.orchestration.jobs import EmbeddedJobOperator, job_task
from stockpipe.orchestration.settings import AirflowSideSettings, airflow_settings

SUMMARY_JOB = "import json, sys\nprint(json.dumps({'argv': sys.argv[1:]}))\n"
FAILING_JOB = "import sys\nprint('error: provider refused the key', file=sys.stderr)\nsys.exit(1)\n"


def test_the_mode_setting_picks_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    assert isinstance(job_task("a", ["load", "bronze"]), EmbeddedJobOperator)
    monkeypatch.setenv("STOCKPIPE_AIRFLOW__MODE", "kubernetes")
    airflow_settings.cache_clear()
    assert isinstance(job_task("b", ["load", "bronze"]), KubernetesPodOperator)


def test_settings_come_from_stockpipe_airflow_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_AIRFLOW__RETRIES", "5")
    monkeypatch.setenv("STOCKPIPE_AIRFLOW__WAREHOUSE_POOL", "duckdb_writer")
    monkeypatch.setenv("STOCKPIPE_AIRFLOW__WATCH__HEARTBEAT_MAX_AGE_S", "90")
    settings = airflow_settings()
    assert settings.retries == 5
    assert settings.watch.heartbeat_max_age_s == 90
    task = job_task("load_bronze", ["load", "bronze"], warehouse=True)
    assert task.retries == 5
    assert task.pool == "duckdb_writer"
    assert job_task("history", ["history", "gaps"]).pool != "duckdb_writer"  # only warehouse writers queue


def test_an_embedded_task_returns_the_jobs_summary() -> None:
    task = EmbeddedJobOperator(
        task_id="load", arguments=["load", "bronze"], command=[sys.executable, "-c", SUMMARY_JOB], push_result=True
    )
    assert task.do_xcom_push is True
    assert task.execute({}) == {"argv": ["load", "bronze"]}


def test_an_embedded_task_fails_with_the_jobs_reason() -> None:
    from airflow.sdk.exceptions import AirflowException

    task = EmbeddedJobOperator(
        task_id="gaps", arguments=["history", "gaps"], command=[sys.executable, "-c", FAILING_JOB]
    )
    with pytest.raises(AirflowException, match="stockpipe history gaps exited with 1: provider refused the key"):
        task.execute({})


def test_the_default_embedded_command_is_this_pythons_stockpipe() -> None:
    assert AirflowSideSettings().embedded_argv() == [sys.executable, "-m", "stockpipe.cli"]
