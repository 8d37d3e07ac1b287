"""Creating topics waits out a broker that is briefly away and fails at once on an answer."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from stockpipe.stream.topics import _transient


@pytest.mark.parametrize("code", [KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN])
def test_a_broken_link_is_waited_out(code: int) -> None:
    assert _transient(KafkaException(KafkaError(code)))


@pytest.mark.parametrize(
    "code", [KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.INVALID_CONFIG]
)
def test_an_answer_fails_at_once(code: int) -> None:
    assert not _transient(KafkaException(KafkaError(code)))


def test_other_errors_are_not_kafkas_to_retry() -> None:
    assert not _transient(ValueError("bad"))
    assert not _transient(KafkaException("no error object"))
