"""`stockpipe probe`, the chart's `helm test` command, against a real broker, a real consumer and MinIO."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from stockpipe.settings import LakeSettings
from stockpipe.stream.probe import ready_condition
from stockpipe.stream.topics import isolated_topics
from stockpipe_dev.localservices.kafka import KafkaBroker
from stockpipe_dev.localservices.process import free_port

pytestmark = pytest.mark.integration


def _env(kafka_bootstrap: str, topics: dict[str, str], lake: LakeSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKPIPE_") or k == "STOCKPIPE_CACHE_DIR"}
    assert lake.access_key is not None
    assert lake.secret_key is not None
    return {
        **env,
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        **{f"STOCKPIPE_KAFKA__TOPIC_{name.upper()}": topic for name, topic in topics.items()},
        "STOCKPIPE_KAFKA__CREATE_TOPICS": "false",
        "STOCKPIPE_LAKE__URL": lake.url,
        "STOCKPIPE_LAKE__S3_ENDPOINT_URL": lake.s3_endpoint_url or "",
        "STOCKPIPE_LAKE__ACCESS_KEY": lake.access_key.get_secret_value(),
        "STOCKPIPE_LAKE__SECRET_KEY": lake.secret_key.get_secret_value(),
    }


def _probe(env: dict[str, str], timeout_s: int) -> subprocess.CompletedProcess[str]:
    """`stockpipe probe` as the helm test pod runs it (no watchlist: no API server here)."""
    argv = [sys.executable, "-m", "stockpipe.cli", "probe", "--timeout", str(timeout_s)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s + 120, check=False)


def test_probe_finds_its_quote_in_the_lake(kafka_broker: KafkaBroker, s3_lake: LakeSettings, tmp_path: Path) -> None:
    name = uuid.uuid4().hex[:8]
    kafka = isolated_topics(kafka_broker.bootstrap, f"probe-{name}")
    topics = {
        "quotes": kafka.topic_quotes,
        "trades": kafka.topic_trades,
        "dlq": kafka.topic_dlq,
        "heartbeats": kafka.topic_heartbeats,
    }
    env = _env(kafka.bootstrap_servers, topics, s3_lake)
    log = tmp_path / "consumer.log"
    consumer_env = {**env, "STOCKPIPE_GROUP_ID": f"probe-{name}", "STOCKPIPE_METRICS_PORT": str(free_port())}
    with open(log, "wb") as out:
        consumer = subprocess.Popen(
            [sys.executable, "-m", "stockpipe.cli", "consumer"], env=consumer_env, stdout=out, stderr=out
        )
    try:
        probe = _probe(env, timeout_s=120)
    finally:
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(60)
    assert probe.returncode == 0, f"{probe.stdout}{probe.stderr}\nconsumer:\n{log.read_text()[-3000:]}"
    assert "probe quote in the lake: raw/quotes/dt=" in probe.stdout
    assert f"{kafka.topic_quotes}+" in probe.stdout


def test_probe_fails_with_a_clear_line_when_no_consumer_runs(kafka_broker: KafkaBroker, s3_lake: LakeSettings) -> None:
    kafka = isolated_topics(kafka_broker.bootstrap, f"probe-{uuid.uuid4().hex[:8]}")
    env = _env(kafka.bootstrap_servers, {"quotes": kafka.topic_quotes}, s3_lake)
    probe = _probe(env, timeout_s=5)
    assert probe.returncode == 1
    assert "probe failed: no lake object holds the probe quote" in probe.stderr
    assert "is the consumer running" in probe.stderr


WATCHLIST: dict[str, Any] = {"metadata": {"name": "default", "generation": 2}}


@pytest.mark.parametrize(
    ("status", "ready", "why"),
    [
        ({}, False, "no Ready condition yet"),
        (
            {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True", "reason": "Rendered"}]},
            True,
            "Rendered",
        ),
        (
            {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "False", "reason": "TooManySymbols"}]},
            False,
            "Ready=False (TooManySymbols)",
        ),
        ({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}, False, "not 2"),
    ],
)
def test_ready_condition(status: dict[str, Any], ready: bool, why: str) -> None:
    got_ready, got_why = ready_condition({**WATCHLIST, "status": status})
    assert got_ready is ready
    assert why in got_why
