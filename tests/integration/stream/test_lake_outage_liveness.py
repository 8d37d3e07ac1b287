"""A lake outage shorter than the retry budget: health never fails, one incident and one recovery,
even across a restart of the consumer (the incident book is kept in a file)."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from stockpipe.contracts.messages import QUOTE_V1
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
from stockpipe.stream.publisher import Publisher
from stockpipe_dev.localservices.minio import MinioServer
from stockpipe_dev.localservices.process import free_port
from stockpipe_dev.localservices.slack_standin import SlackWebhookStandin
from tests.integration.stream.support import GOOD_QUOTE, wait_for

GOOD = GOOD_QUOTE


def publish(kafka: KafkaSettings, minute: int) -> None:
    """One quote, then a watermark past its window: its file closes and is written at once."""
    at = f"2025-11-28T15:{minute:02d}:00Z"
    publisher = Publisher(kafka)
    publisher.publish(kafka.topic_quotes, QUOTE_V1, [{**GOOD, "quote_ts": at, "fetched_at": at}])
    publisher.watermark(kafka.topic_quotes, datetime(2025, 11, 28, 15, minute + 1, 30, tzinfo=UTC))
    assert publisher.flush() == 0


def lake_on(minio: MinioServer) -> LakeSettings:
    return LakeSettings(
        url=f"s3://{minio.bucket}/outage",
        s3_endpoint_url=minio.endpoint,
        access_key=SecretStr(minio.access_key),
        secret_key=SecretStr(minio.secret_key),
    )


class Prober:
    """Polls health() as a liveness probe would (more often than the chart's 20 s): every answer kept."""

    def __init__(self, consumer: LakeConsumer, period_s: float = 0.5) -> None:
        self.consumer, self.period_s = consumer, period_s
        self.failures: list[dict[str, object]] = []
        self.probes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            ok, detail = self.consumer.health()
            self.probes += 1
            if not ok:
                self.failures.append(detail)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_a_lake_outage_within_the_retry_budget_never_fails_health(
    kafka_topics: KafkaSettings, slack_standin: SlackWebhookStandin, tmp_path: Path
) -> None:
    minio = MinioServer(tmp_path / "minio", free_port(), free_port())
    record = minio.start()
    settings = ConsumerSettings(
        kafka=kafka_topics,
        lake=lake_on(minio),
        metrics_port=0,
        group_id="outage-health",
        window_seconds=60,
        alert_after_retries=2,
        stall_seconds=3,  # a loop stalled this long is unhealthy: far shorter than the outage below
        lake_retry_seconds=120,
        slack_webhook_url=SecretStr(slack_standin.webhook_url()),
        alert_min_interval_s=1.0,
        incident_state_file=tmp_path / "incidents.json",
    )
    consumer = LakeConsumer(settings)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    prober = Prober(consumer)
    try:
        publish(kafka_topics, 0)
        assert wait_for(lambda: consumer.stats.rows == 1, 60)
        MinioServer.stop(record)  # the lake goes away
        publish(kafka_topics, 5)
        assert wait_for(lambda: len(slack_standin.texts()) == 1, 60), slack_standin.texts()
        assert "the lake" in slack_standin.texts()[0]
        # The loop has been blocked in the lake write for several stall limits: still healthy.
        assert wait_for(lambda: time.monotonic() - consumer.stats.last_loop > 4 * settings.stall_seconds, 60)
        record = minio.start()  # the lake is back
        assert wait_for(lambda: consumer.stats.rows == 2, 120)
        assert wait_for(lambda: len(slack_standin.texts()) == 2, 30), slack_standin.texts()
    finally:
        prober.stop()
        consumer.stop_event.set()
        thread.join(30)
        MinioServer.stop(record)
    assert prober.failures == [], prober.failures
    assert prober.probes > 0
    texts = slack_standin.texts()
    assert "answers again" in texts[1], texts


def test_the_incident_book_survives_a_restart_one_incident_and_one_recovery(
    kafka_topics: KafkaSettings, slack_standin: SlackWebhookStandin, tmp_path: Path
) -> None:
    publish(kafka_topics, 0)
    minio = MinioServer(tmp_path / "minio", free_port(), free_port())  # not started: the lake is away

    def incarnation(retry_s: float) -> tuple[LakeConsumer, threading.Thread]:
        settings = ConsumerSettings(
            kafka=kafka_topics,
            lake=lake_on(minio),
            metrics_port=0,
            group_id="outage-restart",
            window_seconds=60,
            alert_after_retries=2,
            lake_retry_seconds=retry_s,
            slack_webhook_url=SecretStr(slack_standin.webhook_url()),
            alert_min_interval_s=1.0,
            incident_state_file=tmp_path / "incidents.json",
        )
        consumer = LakeConsumer(settings)

        def run() -> None:
            # The first incarnation runs out of lake retries and raises: a crash, as a pod's would be.
            with contextlib.suppress(Exception):
                consumer.run()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return consumer, thread

    _first, thread = incarnation(retry_s=30)  # long enough for alert_after_retries failures
    assert wait_for(lambda: len(slack_standin.texts()) == 1, 60), slack_standin.texts()
    thread.join(90)  # out of retries: this incarnation dies, as a pod would restart
    assert not thread.is_alive()

    second, thread = incarnation(retry_s=120)
    record = None
    try:
        # The new incarnation fails as often as opens an incident: the book says it is announced.
        assert wait_for(lambda: second._failures.get("lake-unreachable", 0) >= 3, 60)
        assert len(slack_standin.texts()) == 1, slack_standin.texts()
        record = minio.start()
        assert wait_for(lambda: second.stats.rows == 1, 120)
        assert wait_for(lambda: len(slack_standin.texts()) == 2, 30), slack_standin.texts()
    finally:
        second.stop_event.set()
        thread.join(30)
        if record is not None:
            MinioServer.stop(record)
    texts = slack_standin.texts()
    assert len(texts) == 2, texts
    assert "answers again" in texts[1]
