"""A dead letter fits the dead-letter topic's max.message.bytes (the chart's 2 MiB), truncated if need be."""

from __future__ import annotations

import base64

import orjson

from stockpipe.stream.consumer.deadletters import dead_letter
from stockpipe.stream.consumer.settings import ConsumerSettings
from stockpipe.stream.topics import DLQ_MAX_MESSAGE_BYTES
from stockpipe.stream.validation import Reject


def reject(value: bytes, key: bytes = b"AAPL") -> Reject:
    return Reject("oversized", 0, 42, value, key, 1_764_342_000_000)


def test_the_producer_limit_is_the_dlq_topics() -> None:
    assert DLQ_MAX_MESSAGE_BYTES == 2 * 1024 * 1024  # charts/stockpipe/templates/kafkatopic.yaml
    assert ConsumerSettings().dlq_max_message_bytes == DLQ_MAX_MESSAGE_BYTES


def test_a_small_original_is_kept_whole() -> None:
    value, reason = dead_letter("quotes", reject(b"x" * 1000), DLQ_MAX_MESSAGE_BYTES)
    letter = orjson.loads(value)
    assert reason == letter["reason"] == "oversized"
    assert base64.b64decode(letter["original_b64"]) == b"x" * 1000


def test_a_big_original_is_truncated_to_fit_and_the_record_says_so() -> None:
    original = bytes(range(256)) * (3 * 4096)  # 3 MiB: 4 MiB in base64
    value, reason = dead_letter("quotes", reject(original, key=b"k" * 5000), DLQ_MAX_MESSAGE_BYTES)
    assert len(value) + len(b"quotes/0/42") + len(reason) < DLQ_MAX_MESSAGE_BYTES - 1024
    letter = orjson.loads(value)
    kept = base64.b64decode(letter["original_b64"])
    assert original.startswith(kept)
    assert len(kept) > 1024 * 1024
    assert letter["reason"] == reason
    assert f"first {len(kept)} of {len(original)} bytes" in reason
    assert "original key truncated" in reason
    assert len(letter["original_key"]) == 1024
