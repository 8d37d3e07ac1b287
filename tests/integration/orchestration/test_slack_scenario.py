"""A scripted day against the Slack stand-in, through the DAGs and the provider's webhook notifier:
a load succeeds, a job fails, the heartbeats stop, they come back. Slack gets exactly those four
messages, in that order, once each; repeating a state sends nothing more."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from confluent_kafka import Producer

from stockpipe.orchestration.embedded import DagRunFailed
from stockpipe.stream.heartbeat import HEARTBEAT_V1
from stockpipe_dev.localservices.slack_standin import SlackWebhookStandin
from tests.integration.orchestration.conftest import SYMBOLS, Pipeline

AFTER_CLOSE = datetime(2025, 12, 1, 23, 30, tzinfo=UTC)
WATCH = datetime(2025, 12, 6, 15, 0, tzinfo=UTC)  # a Saturday: liveness is judged, freshness is not


def heartbeats(pipeline: Pipeline, at: datetime) -> None:
    producer = Producer(pipeline.kafka.client_config())
    for component in ("producer", "consumer"):
        value = {"schema": HEARTBEAT_V1, "component": component, "host": "test", "at": at.isoformat()}
        producer.produce(pipeline.kafka.topic_heartbeats, orjson.dumps(value), key=component.encode())
    assert producer.flush(30) == 0


def test_success_failure_heartbeat_lost_and_recovered_once_each(
    pipeline: Pipeline, slack_standin: SlackWebhookStandin
) -> None:
    connection = json.dumps({"conn_type": "slackwebhook", "password": slack_standin.webhook_url()})
    slack = {"AIRFLOW_CONN_SLACK_STOCKPIPE": connection}

    assert pipeline.run("daily_history", AFTER_CLOSE, **slack).ok  # bars into the lake: no message
    assert pipeline.run("lake_to_bronze", AFTER_CLOSE, **slack).ok  # loads them: the success message
    assert pipeline.run("lake_to_bronze", AFTER_CLOSE, **slack).ok  # loads nothing: no message

    # Finnhub history needs a key: the job exits with a configuration error and the task fails.
    with pytest.raises(DagRunFailed, match="history_backfill"):
        pipeline.run("backfill_ytd", AFTER_CLOSE, {"start": "2025-12-01", "end": "2025-12-01"},
                     STOCKPIPE_HISTORY_PROVIDER="finnhub", **slack)  # fmt: skip

    assert pipeline.run("pipeline_watch", WATCH, **slack).ok  # no heartbeat at all: lost
    assert pipeline.run("pipeline_watch", WATCH + timedelta(minutes=5), **slack).ok  # still lost: silent
    back = WATCH + timedelta(minutes=10)
    heartbeats(pipeline, back - timedelta(seconds=10))
    assert pipeline.run("pipeline_watch", back, **slack).ok  # recovered
    heartbeats(pipeline, back + timedelta(minutes=5) - timedelta(seconds=10))
    assert pipeline.run("pipeline_watch", back + timedelta(minutes=5), **slack).ok  # still fine: silent

    texts = slack_standin.texts()
    assert len(texts) == 4, texts
    success, failure, lost, recovered = texts
    n = len(SYMBOLS)  # the daily job writes one bar object holding every symbol's bar
    assert success.startswith(
        f":white_check_mark: stockpipe `lake_to_bronze`: loaded 1 files, {n} rows (daily_bars {n})"
    )
    assert failure.startswith(":x: stockpipe `backfill_ytd.history_backfill` failed (try 1): ")
    assert "STOCKPIPE_FINNHUB_TOKEN" in failure
    assert "/dags/backfill_ytd/runs/" in failure  # the log link
    assert "/tasks/history_backfill" in failure
    assert lost == (
        ":rotating_light: stockpipe heartbeat lost: consumer (no heartbeat in the probe's lookback), "
        "producer (no heartbeat in the probe's lookback)"
    )
    assert recovered == ":white_check_mark: stockpipe heartbeat recovered: consumer, producer alive again"


def test_without_a_slack_connection_nothing_fails(pipeline: Pipeline, slack_standin: SlackWebhookStandin) -> None:
    assert pipeline.run("daily_history", AFTER_CLOSE).ok
    assert pipeline.run("lake_to_bronze", AFTER_CLOSE).ok
    run = pipeline.run("pipeline_watch", WATCH)
    assert run.tasks == {"probe": "success", "judge_and_alert": "success"}
    assert run.log_file is not None
    with open(run.log_file, encoding="utf-8") as log:
        assert "no Slack connection 'slack_stockpipe'" in log.read()
    assert slack_standin.texts() == []
