"""`stockpipe watch probe` against the real local Kafka and a MinIO lake: heartbeats per component,
newest data per symbol in market hours, dead-letter count; and nothing read after the probed instant."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Producer

from stockpipe.lake.store import Lake
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe.orchestration.watch import WatchSettings, probe
from stockpipe.stream.heartbeat import HEARTBEAT_V1
from stockpipe_dev.bench import lakegen
from tests.integration.orchestration.conftest import CLI_ENTRY, Pipeline

SESSION = date(2025, 12, 1)
MIDDAY = datetime(2025, 12, 1, 17, 0, tzinfo=UTC)  # 12:00 New York


def beat(producer: Producer, topic: str, component: str, at: datetime) -> None:
    value = {"schema": HEARTBEAT_V1, "component": component, "host": "test", "at": at.isoformat()}
    producer.produce(topic, orjson.dumps(value), key=component.encode())


def test_probe_reports_heartbeats_freshness_and_dead_letters(pipeline: Pipeline) -> None:
    kafka = pipeline.kafka
    producer = Producer(kafka.client_config())
    beat(producer, kafka.topic_heartbeats, "producer", MIDDAY - timedelta(minutes=4))
    beat(producer, kafka.topic_heartbeats, "producer", MIDDAY - timedelta(seconds=30))
    beat(producer, kafka.topic_heartbeats, "consumer", MIDDAY - timedelta(minutes=20))
    beat(producer, kafka.topic_heartbeats, "consumer", MIDDAY + timedelta(minutes=1))  # after the instant: ignored
    for i in range(3):
        producer.produce(kafka.topic_dlq, b"{}", key=str(i).encode())
    producer.produce(kafka.topic_heartbeats, b"not json")
    assert producer.flush(30) == 0
    lake = Lake(pipeline.lake)
    # AAPL and MSFT flow all session; NVDA only until 10:00 New York; BRK.B never.
    offsets = lakegen.Offsets.start()  # one log: no two files share offsets
    lakegen.write_session(lake, SyntheticMarket(7), ["AAPL", "MSFT"], SESSION, offsets, 5, 1)
    nvda = lakegen.quotes_table(SyntheticMarket(7), ["NVDA"], SESSION, 5)
    ten = pa.scalar(datetime(2025, 12, 1, 15, 0, tzinfo=UTC), type=nvda["quote_ts"].type)
    lakegen.write_stream(
        lake, "quotes", "quotes", nvda.filter(pc.less_equal(nvda["quote_ts"], ten)), "quote_ts", offsets
    )

    settings = WatchSettings(kafka=kafka, lake=pipeline.lake, watch_symbols=["AAPL", "MSFT", "NVDA", "BRK.B"])
    report = probe(settings, MIDDAY)
    assert report["market_open"] is True
    assert report["session_open"] == "2025-12-01T14:30:00Z"
    assert report["heartbeats"] == {
        "consumer": (MIDDAY - timedelta(minutes=20)).isoformat().replace("+00:00", "Z"),
        "producer": (MIDDAY - timedelta(seconds=30)).isoformat().replace("+00:00", "Z"),
    }
    last = report["last_event"]
    assert set(last) == {"AAPL", "MSFT", "NVDA", "BRK.B"}
    assert last["BRK.B"] is None
    assert last["NVDA"] == "2025-12-01T15:00:00Z"
    aapl = datetime.fromisoformat(last["AAPL"].replace("Z", "+00:00"))
    assert MIDDAY - timedelta(minutes=5) <= aapl <= MIDDAY  # nothing after the probed instant
    assert report["dead_letters"] == 3

    # The same through the command a pod runs: one JSON line on stdout.
    out = subprocess.run(
        [sys.executable, str(CLI_ENTRY), "watch", "probe", "--as-of", "2025-12-06T17:00:00Z"],
        env=pipeline.env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    weekend = json.loads(out.stdout.strip().splitlines()[-1])
    assert weekend["market_open"] is False
    assert weekend["last_event"] == {}  # freshness is not read outside market hours
    assert weekend["dead_letters"] == 3
