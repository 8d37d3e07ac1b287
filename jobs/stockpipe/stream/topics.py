"""The pipeline's topics. In a cluster Strimzi's KafkaTopic objects own them; on one machine this creates them."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from tenacity import before_sleep_log, retry, retry_if_exception, stop_after_delay, wait_exponential

from stockpipe.settings import KafkaSettings

DLQ_MAX_MESSAGE_BYTES = 2 * 1024 * 1024  # the chart's DLQ KafkaTopic max.message.bytes; the consumer's producer too

log = logging.getLogger(__name__)

# Errors of the link, not of the request: a broker restarting, a connection reset, a slow metadata answer.
_TRANSIENT = {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN, KafkaError.REQUEST_TIMED_OUT}


def _transient(exc: BaseException) -> bool:
    if not isinstance(exc, KafkaException) or not exc.args or not isinstance(exc.args[0], KafkaError):
        return False
    error: KafkaError = exc.args[0]
    return error.code() in _TRANSIENT or error.retriable()


# A process starting while its broker is briefly unreachable waits for it instead of crashing;
# authorisation and configuration errors are answers and fail at once.
_retry_transient = retry(
    retry=retry_if_exception(_transient),
    wait=wait_exponential(multiplier=0.5, max=10),
    stop=stop_after_delay(120),
    before_sleep=before_sleep_log(log, logging.WARNING),
    reraise=True,
)


@_retry_transient
def ensure_topic(
    bootstrap_or_config: str | dict[str, str | int | float | bool],
    topic: str,
    partitions: int = 1,
    config: dict[str, str] | None = None,
) -> None:
    conf: dict[str, str | int | float | bool] = (
        {"bootstrap.servers": bootstrap_or_config} if isinstance(bootstrap_or_config, str) else bootstrap_or_config
    )
    admin = AdminClient(conf)
    if topic in admin.list_topics(timeout=10).topics:
        return
    futures = admin.create_topics([NewTopic(topic, partitions, 1, config=config or {})], operation_timeout=15)
    for future in futures.values():
        try:
            future.result(timeout=20)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise


def ensure_pipeline_topics(kafka: KafkaSettings, partitions: int = 3) -> None:
    """Create the pipeline's missing topics, unless `kafka.create_topics` is off (a cluster's KafkaTopics own them)."""
    if not kafka.create_topics:
        log.info("topics are not created here (kafka.create_topics is off): the cluster's KafkaTopics own them")
        return
    conf = kafka.client_config()
    ensure_topic(conf, kafka.topic_quotes, partitions)
    ensure_topic(conf, kafka.topic_trades, partitions)
    ensure_topic(conf, kafka.topic_dlq, 1, {"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)})
    ensure_topic(conf, kafka.topic_heartbeats, 1, {"retention.ms": str(7 * 24 * 3600 * 1000)})
    ensure_topic(conf, kafka.topic_lake_objects, 1, {"retention.ms": str(7 * 24 * 3600 * 1000)})


def isolated_topics(bootstrap: str, name: str, partitions: int = 3) -> KafkaSettings:
    """The pipeline's topics under their own names (`<topic>-<name>`), created: for benchmarks and tests."""
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap,
        topic_quotes=f"quotes-{name}",
        topic_trades=f"trades-{name}",
        topic_dlq=f"dlq-{name}",
        topic_heartbeats=f"heartbeats-{name}",
        topic_lake_objects=f"lake-objects-{name}",
    )
    ensure_pipeline_topics(kafka, partitions=partitions)
    return kafka
