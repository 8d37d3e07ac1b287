"""In a cluster Strimzi's KafkaTopics own the topics: with kafka.create_topics off, a workload creates none."""

from __future__ import annotations

import uuid

from confluent_kafka.admin import AdminClient

from stockpipe.settings import KafkaSettings
from stockpipe.stream.topics import ensure_pipeline_topics
from stockpipe_dev.localservices.kafka import KafkaBroker


def _pipeline_topics(name: str, bootstrap: str, *, create: bool) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        topic_quotes=f"quotes-{name}",
        topic_trades=f"trades-{name}",
        topic_dlq=f"dlq-{name}",
        topic_heartbeats=f"heartbeats-{name}",
        create_topics=create,
    )


def test_workloads_create_topics_only_when_told(kafka_broker: KafkaBroker) -> None:
    name = uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})

    owned_by_the_cluster = _pipeline_topics(name, kafka_broker.bootstrap, create=False)
    ensure_pipeline_topics(owned_by_the_cluster)
    assert not [t for t in admin.list_topics(timeout=10).topics if t.endswith(name)]

    ensure_pipeline_topics(_pipeline_topics(name, kafka_broker.bootstrap, create=True))
    topics = admin.list_topics(timeout=10).topics
    assert {f"{t}-{name}" for t in ("quotes", "trades", "dlq", "heartbeats")} <= set(topics)
    assert len(topics[f"quotes-{name}"].partitions) == 3
