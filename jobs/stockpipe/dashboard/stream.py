"""The health page's facts from outside the warehouse: the stream (consumer lag, heartbeats) and history gaps.

Both are optional for the dashboard: Kafka and the batch code are imported lazily, so a dashboard
without a reachable stream (or without those packages) shows a note instead of failing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pandas as pd

from stockpipe.lake.store import Lake
from stockpipe.settings import KafkaSettings, LakeSettings

log = logging.getLogger(__name__)


@dataclass
class StreamState:
    reachable: bool
    note: str = ""
    lag: pd.DataFrame = field(default_factory=pd.DataFrame)  # topic, partition, committed, high, lag
    heartbeats: pd.DataFrame = field(default_factory=pd.DataFrame)  # component, last_beat, age_s


def stream_state(kafka: KafkaSettings, group: str, timeout_s: float, now: datetime | None = None) -> StreamState:
    """The lake consumer group's lag per partition and each component's newest heartbeat, if Kafka answers."""
    now = now or datetime.now(UTC)
    try:
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        from stockpipe.orchestration.watch import read_heartbeats
    except ImportError as exc:
        return StreamState(False, f"the stream client is not installed here ({exc.name}): no lag or heartbeats")
    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": group,  # only to read the group's committed offsets: never subscribes or commits
            "enable.auto.commit": False,
            "socket.timeout.ms": int(timeout_s * 1000),
        },
        logger=log,  # librdkafka's connection errors go to logging, not to stderr once a retry
    )
    try:
        try:
            metadata = consumer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            return StreamState(False, f"the stream at {kafka.bootstrap_servers} is not reachable ({exc.args[0]})")
        rows = []
        for topic in (kafka.topic_quotes, kafka.topic_trades):
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            parts = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
            committed = consumer.committed(parts, timeout=timeout_s)
            for tp in committed:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=timeout_s)
                done = tp.offset if tp.offset >= 0 else None
                rows.append(
                    {"topic": topic, "partition": tp.partition, "committed": done, "high_watermark": high,
                     "lag": high - (done or 0)}
                )  # fmt: skip
        beats = read_heartbeats(kafka, now, lookback_s=3600, timeout_s=timeout_s)
    except KafkaException as exc:
        return StreamState(False, f"the stream at {kafka.bootstrap_servers} did not answer ({exc.args[0]})")
    finally:
        consumer.close()
    heartbeats = pd.DataFrame(
        [{"component": c, "last_beat": at, "age_s": round((now - at).total_seconds(), 1)} for c, at in beats.items()],
        columns=["component", "last_beat", "age_s"],
    )
    return StreamState(
        True, "", pd.DataFrame(rows, columns=["topic", "partition", "committed", "high_watermark", "lag"]), heartbeats
    )


@dataclass
class Gaps:
    start: date
    end: date
    runs: pd.DataFrame  # symbol, first, last, sessions
    note: str = ""


def history_gaps(lake: LakeSettings, symbols: list[str], start: date | None = None, end: date | None = None) -> Gaps:
    """What `stockpipe history gaps` would fetch: per symbol, the runs of sessions the lake lacks.

    The batch job's own pieces decide it: its default range (January 1 of the last closed session's
    year to that session), its lake listing and its missing-runs computation.
    """
    from stockpipe.batch import jobs, lakeio
    from stockpipe.marketdata import calendar

    end = end or jobs.last_closed_session()
    start = start or date(end.year, 1, 1)
    sessions = calendar.sessions_between(start, end)
    holdings = lakeio.list_daily_bars(Lake(lake), start, end)
    rows = []
    for symbol in symbols:
        for first, last in jobs.missing_runs(sessions, holdings.sessions(symbol)):
            rows.append(
                {"symbol": symbol, "first": first, "last": last,
                 "sessions": len(calendar.sessions_between(first, last))}
            )  # fmt: skip
    return Gaps(start, end, pd.DataFrame(rows, columns=["symbol", "first", "last", "sessions"]))
