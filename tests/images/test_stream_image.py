"""The consumer from the `stockpipe` image: local Kafka into the local MinIO, read-only root, SIGTERM -> 0."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from datetime import timedelta

from confluent_kafka import Consumer, TopicPartition

from stockpipe.contracts.messages import QUOTE_V1
from stockpipe.lake.store import Lake
from stockpipe.settings import LakeSettings
from stockpipe.stream.publisher import Publisher
from stockpipe.stream.topics import isolated_topics
from stockpipe_dev.bench.stream import SESSION_OPEN, quote_messages
from stockpipe_dev.localservices.kafka import KafkaBroker
from stockpipe_dev.localservices.process import free_port
from tests.images.conftest import Images

ROWS = 2000


def metric(port: int, needle: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return needle in resp.read().decode()
    except OSError:
        return False


def test_consumer_container_writes_the_lake_and_commits_on_sigterm(
    images: Images, kafka_broker: KafkaBroker, s3_lake: LakeSettings
) -> None:
    topics = isolated_topics(kafka_broker.bootstrap, uuid.uuid4().hex[:8])
    publisher = Publisher(topics)
    publisher.publish(topics.topic_quotes, QUOTE_V1, quote_messages(ROWS))
    publisher.watermark(topics.topic_quotes, SESSION_OPEN + timedelta(days=1))
    assert publisher.flush() == 0
    port = free_port()
    group = f"image-{uuid.uuid4().hex[:6]}"
    assert s3_lake.s3_endpoint_url
    assert s3_lake.access_key
    assert s3_lake.secret_key
    env = {
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": topics.bootstrap_servers,
        "STOCKPIPE_KAFKA__TOPIC_QUOTES": topics.topic_quotes,
        "STOCKPIPE_KAFKA__TOPIC_TRADES": topics.topic_trades,
        "STOCKPIPE_KAFKA__TOPIC_DLQ": topics.topic_dlq,
        "STOCKPIPE_KAFKA__TOPIC_HEARTBEATS": topics.topic_heartbeats,
        "STOCKPIPE_LAKE__URL": s3_lake.url,
        "STOCKPIPE_LAKE__S3_ENDPOINT_URL": s3_lake.s3_endpoint_url,
        "STOCKPIPE_GROUP_ID": group,
        "STOCKPIPE_METRICS_PORT": str(port),
    }
    secrets = {
        "STOCKPIPE_LAKE__ACCESS_KEY": s3_lake.access_key.get_secret_value(),
        "STOCKPIPE_LAKE__SECRET_KEY": s3_lake.secret_key.get_secret_value(),
    }
    started = images.run("stockpipe", ["consumer"], env=env, secret_env=secrets, network="host", detach=True)
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    written = f'stockpipe_consumer_rows_written_total{{dataset="quotes"}} {ROWS}.0'
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not metric(port, written):
            time.sleep(0.5)
        assert metric(port, written), images.docker("logs", container).stderr[-3000:]
    finally:
        images.docker("stop", "--time", "60", container, timeout=90)
        code = images.docker("wait", container).stdout.strip()
        logs = images.docker("logs", container)
        images.docker("rm", container)
    assert code == "0", (logs.stdout + logs.stderr)[-3000:]
    lines = [json.loads(line) for line in (logs.stdout + logs.stderr).splitlines() if line.startswith("{")]
    assert any("consumer stopped" in line["msg"] for line in lines)
    # The lake has every row (the consumer commits only after the object is durable) ...
    lake = Lake(s3_lake)
    keys = [info.key for info in lake.walk("raw/quotes")]
    assert keys
    assert all(key.endswith(".parquet") for key in keys)
    # ... and the group's offsets cover every record and each partition's watermark.
    reader = Consumer({"bootstrap.servers": topics.bootstrap_servers, "group.id": group})
    committed = reader.committed([TopicPartition(topics.topic_quotes, p) for p in range(3)], timeout=10)
    reader.close()
    assert sum(tp.offset for tp in committed) == ROWS + 3
