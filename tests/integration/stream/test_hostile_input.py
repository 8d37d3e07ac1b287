"""Input that used to crash the consumer, and a consumer that crashes anyway, as real processes.

Each consumer here runs as its own process (as in a pod), so a crash is seen as an exit code rather
than taking the test runner down with it.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
from confluent_kafka import Producer

from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import Lake
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.publisher import Publisher
from stockpipe.stream.topics import isolated_topics
from stockpipe_dev.bench.chaos_common import workload_env
from stockpipe_dev.localservices.kafka import KafkaBroker
from tests.integration.stream.support import GOOD_QUOTE, wait_for

Reader = Callable[[Lake, str], tuple[pa.Table, list[StreamObject]]]

GOOD = GOOD_QUOTE
CLOSE = datetime(2025, 11, 28, 21, 0, tzinfo=UTC)

# A consumer whose checker dies (os.abort) on one value: a stand-in for a parser crash we do not know of.
POISONED_CONSUMER = """
import os, sys
from stockpipe.stream import validation
real = validation.BatchValidator.check
def check(self, values, *args, **kwargs):
    if any(v == b'{"poison": true}' for v in values):
        os.abort()
    return real(self, values, *args, **kwargs)
validation.BatchValidator.check = check
from stockpipe.cli import app
sys.argv = ["stockpipe", "consumer"]
app()
"""


def quote(minute: int) -> bytes:
    return orjson.dumps({**GOOD, "quote_ts": f"2025-11-28T15:{minute:02d}:00Z"})


def consumer_env(kafka: KafkaSettings, lake: LakeSettings, group: str, **extra: str) -> dict[str, str]:
    return {
        **workload_env(kafka, lake),
        "STOCKPIPE_GROUP_ID": group,
        "STOCKPIPE_METRICS_PORT": "0",
        "STOCKPIPE_WINDOW_SECONDS": "60",
        "STOCKPIPE_DLQ_WINDOW_SECONDS": "1",
        "STOCKPIPE_HEARTBEAT_SECONDS": "0.5",
        **extra,
    }


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(60)


def produce(kafka: KafkaSettings, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    for value in values:
        producer.produce(kafka.topic_quotes, value, key=b"AAPL")
    assert producer.flush(20) == 0
    publisher = Publisher(kafka)
    publisher.watermark(kafka.topic_quotes, CLOSE)  # the session close: the last files close
    assert publisher.flush() == 0


def dead_letters(lake: Lake, reader: Reader) -> list[tuple[str, bytes]]:
    letters, _ = reader(lake, "dlq")
    if not letters.num_rows:
        return []
    return sorted(
        zip(letters["reason"].to_pylist(), map(base64.b64decode, letters["original_b64"].to_pylist()), strict=True)
    )


def test_null_first_in_a_poll_is_dead_lettered_and_the_quotes_behind_it_reach_the_lake(
    kafka_broker: KafkaBroker, file_lake: LakeSettings, lake_reader: Reader, tmp_path: Path
) -> None:
    # One partition, so `null` is the first value of the consumer's first poll (it used to SIGSEGV
    # pyarrow there, on every restart); more of them further on, for the bisected halves.
    kafka = isolated_topics(kafka_broker.bootstrap, uuid.uuid4().hex[:8], partitions=1)
    values = [b"null", quote(0), b" null", quote(1), b"\xef\xbb\xbf" + quote(2), quote(3), b"null", b"null", quote(4)]
    produce(kafka, values)
    lake = Lake(file_lake)
    log = tmp_path / "consumer.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stockpipe.cli", "consumer"],
            env=consumer_env(kafka, file_lake, "hostile"),
            stdout=out,
            stderr=out,
        )
    try:
        assert wait_for(lambda: len(dead_letters(lake, lake_reader)) == 5, 90, proc), log.read_text()[-3000:]
        assert proc.poll() is None, f"the consumer died ({proc.returncode}): {log.read_text()[-3000:]}"
        quotes, _ = lake_reader(lake, "quotes")
        assert sorted(quotes["quote_ts"].cast(pa.string()).to_pylist()) == [
            f"2025-11-28 15:0{i}:00.000000Z" for i in (0, 1, 3, 4)
        ]
        assert dead_letters(lake, lake_reader) == sorted(
            [
                ("not_object:null", b"null"),
                ("not_object:null", b" null"),
                ("not_object:null", b"null"),
                ("not_object:null", b"null"),
                ("utf8_bom", b"\xef\xbb\xbf" + quote(2)),
            ]
        )
    finally:
        assert stop(proc) == 0, log.read_text()[-3000:]


def test_a_message_that_crashes_every_incarnation_is_dead_lettered_as_crashed_consumer(
    kafka_broker: KafkaBroker, file_lake: LakeSettings, lake_reader: Reader, tmp_path: Path
) -> None:
    kafka = isolated_topics(kafka_broker.bootstrap, uuid.uuid4().hex[:8], partitions=1)
    poison = b'{"poison": true}'
    values = [orjson.dumps({**GOOD, "quote_ts": f"2025-11-28T{15 + i // 60}:{i % 60:02d}:00Z"}) for i in range(200)]
    values.insert(130, poison)
    produce(kafka, values)
    lake = Lake(file_lake)
    log = tmp_path / "consumer.log"
    # A short session: a crashed member's partitions move on quickly (as a pod's restart would wait).
    env = consumer_env(
        kafka, file_lake, "crash-loop", STOCKPIPE_CRASH_LOOP_RESTARTS="2", STOCKPIPE_SESSION_TIMEOUT_MS="6000"
    )
    exits = []
    for _ in range(8):  # as a pod's restarts would; each start is a new incarnation
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-c", POISONED_CONSUMER], env=env, stdout=out, stderr=out)
        done = wait_for(lambda: ("crashed_consumer", poison) in dead_letters(lake, lake_reader), 60, proc)
        if done:
            assert stop(proc) == 0, log.read_text()[-3000:]
            break
        exits.append(proc.wait(60))
    assert ("crashed_consumer", poison) in dead_letters(lake, lake_reader), log.read_text()[-3000:]
    assert all(code == -signal.SIGABRT for code in exits), exits
    # Three crashes: the first, one narrowing it to a chunk of 64, one to the message; then it is set aside.
    assert len(exits) == 3, exits
    quotes, _ = lake_reader(lake, "quotes")
    assert quotes.num_rows == 200  # every quote, none twice
    assert len(set(quotes["kafka_offset"].to_pylist())) == 200
