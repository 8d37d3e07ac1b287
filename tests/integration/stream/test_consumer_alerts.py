"""The consumer's Slack incidents and recoveries: the lake away and back, a dead-letter rate above threshold."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import orjson
from confluent_kafka import Producer
from pydantic import SecretStr

from stockpipe.alerts.slack import SlackAlerter
from stockpipe.contracts.messages import QUOTE_V1
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
from stockpipe.stream.publisher import Publisher
from stockpipe_dev.localservices.minio import MinioServer
from stockpipe_dev.localservices.process import free_port
from stockpipe_dev.localservices.slack_standin import SlackWebhookStandin
from tests.integration.stream.support import GOOD_QUOTE, wait_for

GOOD = GOOD_QUOTE


def test_a_dead_letter_rate_above_the_threshold_is_one_incident(
    kafka_topics: KafkaSettings, file_lake: LakeSettings, slack_standin: SlackWebhookStandin
) -> None:
    """Half of 200 messages are dead letters: one incident, whatever the heartbeats' timing (the rate is
    judged over 100 messages or more); good messages afterwards bring one recovery."""
    producer = Producer({"bootstrap.servers": kafka_topics.bootstrap_servers})
    sent = [0]

    def send(count: int, bad_every: int | None) -> None:
        for _ in range(count):
            i = sent[0]
            sent[0] += 1
            at = f"2025-11-28T15:{i // 60:02d}:{i % 60:02d}Z"  # fewer than 3600 quotes: one a second
            quote = orjson.dumps({**GOOD, "quote_ts": at, "fetched_at": at})
            producer.produce(kafka_topics.topic_quotes, b"null" if bad_every and i % bad_every else quote, key=b"AAPL")
        assert producer.flush(20) == 0

    settings = ConsumerSettings(
        kafka=kafka_topics,
        lake=file_lake,
        metrics_port=0,
        group_id="alerts",
        heartbeat_seconds=0.5,
        dlq_alert_min_messages=100,
        slack_webhook_url=SecretStr(slack_standin.webhook_url()),
        alert_min_interval_s=1.0,
    )
    consumer = LakeConsumer(settings)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        send(200, 2)
        assert wait_for(lambda: len(slack_standin.texts()) == 1, 60), slack_standin.texts()
        # Good quotes in rounds, until a judged window of them holds no dead letter (bounded).
        for _ in range(10):
            send(150, None)
            if wait_for(lambda: len(slack_standin.texts()) > 1, 3):
                break
    finally:
        consumer.stop_event.set()
        thread.join(30)
    assert consumer.stats.dead_letters == 100
    texts = slack_standin.texts()
    assert len(texts) == 2, texts
    incident = re.search(r"(\d+) of (\d+) messages went to the dead-letter topic", texts[0])
    assert incident, texts[0]
    dead, seen = int(incident[1]), int(incident[2])
    assert seen >= 100
    assert dead / seen > settings.dlq_alert_ratio
    assert texts[1] == ":white_check_mark: stockpipe consumer: dead-letter rate normal"


def test_the_lake_away_is_one_incident_and_its_return_one_recovery(
    kafka_topics: KafkaSettings, slack_standin: SlackWebhookStandin, tmp_path: Path
) -> None:
    publisher = Publisher(kafka_topics)
    publisher.publish(kafka_topics.topic_quotes, QUOTE_V1, [GOOD])
    publisher.watermark(kafka_topics.topic_quotes, datetime(2025, 11, 28, 21, tzinfo=UTC))
    assert publisher.flush() == 0
    minio = MinioServer(tmp_path / "minio", free_port(), free_port())  # not started yet: the lake is away
    lake = LakeSettings(
        url=f"s3://{minio.bucket}/alerts",
        s3_endpoint_url=minio.endpoint,
        access_key=SecretStr(minio.access_key),
        secret_key=SecretStr(minio.secret_key),
    )
    settings = ConsumerSettings(
        kafka=kafka_topics,
        lake=lake,
        metrics_port=0,
        group_id="alerts-lake",
        window_seconds=60,
        alert_after_retries=2,
        slack_webhook_url=SecretStr(slack_standin.webhook_url()),
        alert_min_interval_s=1.0,
    )
    alerter = SlackAlerter(slack_standin.webhook_url(), 1.0)
    consumer = LakeConsumer(settings, alerter=alerter)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    record = None
    try:
        assert wait_for(lambda: len(slack_standin.texts()) == 1, 60), slack_standin.texts()
        assert "the lake" in slack_standin.texts()[0]
        record = minio.start()  # the lake comes back
        assert wait_for(lambda: consumer.stats.rows == 1, 120)
    finally:
        consumer.stop_event.set()
        thread.join(30)
        if record is not None:
            MinioServer.stop(record)
    texts = slack_standin.texts()
    assert len(texts) == 2, texts
    assert "answers again" in texts[1]
    assert consumer.stats.rows == 1
    assert minio.secret_key not in " ".join(texts)
