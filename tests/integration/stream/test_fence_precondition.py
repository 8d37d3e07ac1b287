"""At start the consumer checks that the store refuses an overwrite under `If-None-Match: *`."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
from stockpipe.stream.consumer.fence import PROBE_PREFIX, FenceUnsupported
from stockpipe_dev.localservices.minio import MinioServer
from stockpipe_dev.localservices.slow_s3 import SlowS3


def settings_through(gate: SlowS3, minio: MinioServer, kafka: KafkaSettings, **extra: object) -> ConsumerSettings:
    lake = LakeSettings(
        url=f"s3://{minio.bucket}/fence-precondition",
        s3_endpoint_url=gate.endpoint,
        access_key=SecretStr(minio.access_key),
        secret_key=SecretStr(minio.secret_key),
    )
    return ConsumerSettings(kafka=kafka, lake=lake, metrics_port=0, group_id="fence-precondition", **extra)  # type: ignore[arg-type]


def test_a_store_that_honours_if_none_match_passes_and_leaves_no_probe(
    minio_server: MinioServer, kafka_topics: KafkaSettings
) -> None:
    with SlowS3(minio_server.endpoint, 0.0) as gate:
        consumer = LakeConsumer(settings_through(gate, minio_server, kafka_topics))
        consumer._check_fence()
        assert not list(consumer.lake.walk(PROBE_PREFIX))


def test_a_store_that_ignores_if_none_match_refuses_to_start(
    minio_server: MinioServer, kafka_topics: KafkaSettings
) -> None:
    with SlowS3(minio_server.endpoint, 0.0) as gate:
        gate.ignore_if_none_match = True
        consumer = LakeConsumer(settings_through(gate, minio_server, kafka_topics))
        with pytest.raises(FenceUnsupported, match="STOCKPIPE_RUN_WITHOUT_FENCE=true"):
            consumer.run()
        assert not consumer.partitions  # never subscribed


def test_run_without_fence_starts_with_a_loud_warning(
    minio_server: MinioServer, kafka_topics: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    with SlowS3(minio_server.endpoint, 0.0) as gate:
        gate.ignore_if_none_match = True
        consumer = LakeConsumer(settings_through(gate, minio_server, kafka_topics, run_without_fence=True))
        with caplog.at_level(logging.ERROR, logger="stockpipe.consumer"):
            consumer._check_fence()
        assert any("RUNNING WITHOUT THE ZOMBIE FENCE" in r.getMessage() for r in caplog.records)
