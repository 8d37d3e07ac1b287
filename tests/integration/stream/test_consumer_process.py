"""`stockpipe consumer` as a process: metrics, health, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from stockpipe.contracts.messages import QUOTE_V1
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.publisher import Publisher
from stockpipe_dev.bench.stream import SESSION_OPEN, quote_messages
from stockpipe_dev.localservices.process import free_port


def test_consumer_serves_health_and_metrics_and_exits_zero_on_sigterm(
    kafka_topics: KafkaSettings, file_lake: LakeSettings, tmp_path: Path
) -> None:
    publisher = Publisher(kafka_topics)
    publisher.publish(kafka_topics.topic_quotes, QUOTE_V1, quote_messages(3000))
    publisher.watermark(kafka_topics.topic_quotes, SESSION_OPEN + timedelta(days=1))
    assert publisher.flush() == 0
    port = free_port()
    env = {
        **os.environ,
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": kafka_topics.bootstrap_servers,
        "STOCKPIPE_KAFKA__TOPIC_QUOTES": kafka_topics.topic_quotes,
        "STOCKPIPE_KAFKA__TOPIC_TRADES": kafka_topics.topic_trades,
        "STOCKPIPE_KAFKA__TOPIC_DLQ": kafka_topics.topic_dlq,
        "STOCKPIPE_KAFKA__TOPIC_HEARTBEATS": kafka_topics.topic_heartbeats,
        "STOCKPIPE_LAKE__URL": file_lake.url,
        "STOCKPIPE_GROUP_ID": "process-test",
        "STOCKPIPE_METRICS_PORT": str(port),
    }
    log = tmp_path / "consumer.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "stockpipe.cli", "consumer"], env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        metrics = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                    metrics = resp.read().decode()
                if 'stockpipe_consumer_rows_written_total{dataset="quotes"} 3000.0' in metrics:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert 'stockpipe_consumer_rows_written_total{dataset="quotes"} 3000.0' in metrics
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            health = json.loads(resp.read())
        assert health["ok"] is True
        assert health["rows"] == 3000
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, log.read_text()[-2000:]
    # Everything written was committed before it left.
    reader = Consumer({"bootstrap.servers": kafka_topics.bootstrap_servers, "group.id": "process-test"})
    committed = reader.committed([TopicPartition(kafka_topics.topic_quotes, p) for p in range(3)], timeout=10)
    reader.close()
    assert sum(tp.offset for tp in committed) == 3000 + 3  # every record and each partition's watermark
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any("consumer stopped" in line["msg"] for line in lines)  # JSON logs, clean shutdown
