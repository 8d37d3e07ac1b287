"""`stockpipe watch probe`: the facts pipeline_watch judges, gathered as of one instant.

  heartbeats   the newest heartbeat.v1 `at` per component on the heartbeats topic (read from
               `lookback` before the instant, by Kafka timestamp; later heartbeats are ignored)
  freshness    during market hours, the newest quote/trade time per symbol in the lake's files of
               that day (the lake, not the warehouse: it measures the real-time path itself, not the
               bronze load schedule, and never contends for DuckDB's single-writer lock)
  dead letters the number of messages the dead-letter topic has ever held (its high watermarks)
  gold         the continuous loader's last word on gold (`state/freshness/gold.json` in the lake): the
               newest intraday gold row's fetched_at and when its build finished; absent without a loader
It prints one JSON report on stdout and judges nothing: thresholds and alerts live on the Airflow
side (stockpipe.orchestration.watch_alerts), which keeps incident state between runs.
"""

from __future__ import annotations

import io
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition
from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from stockpipe.contracts.watchlist import Watchlist
from stockpipe.lake.layout import dt_prefix
from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.settings import ConfigError, KafkaSettings, LakeSettings, StockpipeSettings
from stockpipe.stream.heartbeat import HEARTBEAT_V1

log = logging.getLogger("stockpipe.watch")

# The event-time column of each stream dataset that says a symbol's data is flowing.
FRESHNESS_COLUMNS = {"quotes": "quote_ts", "trades": "trade_ts"}


class WatchSettings(StockpipeSettings):
    kafka: KafkaSettings = KafkaSettings()
    lake: LakeSettings = LakeSettings()
    # Symbols expected to flow: this list, else the watchlist file; symbols seen that day count too.
    watch_symbols: Annotated[list[str], NoDecode] = Field(default_factory=list)
    watchlist_file: Path | None = None
    watch_lookback_s: float = Field(3600.0, gt=0, description="how far back heartbeats are read")
    watch_kafka_timeout_s: float = Field(30.0, gt=0)

    @field_validator("watch_symbols", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip().upper() for s in value.strip().strip("[]").replace('"', "").split(",") if s.strip()]
        return value

    @field_validator("watch_symbols")
    @classmethod
    def _valid(cls, value: list[str]) -> list[str]:
        return Watchlist(symbols=value).symbols

    def expected_symbols(self) -> list[str]:
        if self.watch_symbols:
            return list(self.watch_symbols)
        if self.watchlist_file is not None:
            try:
                return Watchlist.from_file(self.watchlist_file).active_symbols
            except (OSError, ValueError) as exc:
                raise ConfigError(f"watchlist_file {self.watchlist_file}: {exc}") from None
        return []


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z") if at is not None else None


def _parse_at(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _consumer(kafka: KafkaSettings) -> Consumer:
    # Assigned partitions only, no group membership and no commits: a probe leaves no trace.
    return Consumer(
        {
            **kafka.client_config(),
            "group.id": "stockpipe-watch-probe",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
        }
    )


def read_heartbeats(kafka: KafkaSettings, as_of: datetime, lookback_s: float, timeout_s: float) -> dict[str, datetime]:
    """The newest heartbeat time (at or before as_of) per component."""
    newest: dict[str, datetime] = {}
    consumer = _consumer(kafka)
    try:
        metadata = consumer.list_topics(kafka.topic_heartbeats, timeout=timeout_s)
        topic = metadata.topics.get(kafka.topic_heartbeats)
        if topic is None or topic.error is not None or not topic.partitions:
            log.warning("no heartbeats topic %r", kafka.topic_heartbeats)
            return newest
        since_ms = int((as_of - timedelta(seconds=lookback_s)).timestamp() * 1000)
        wanted = [TopicPartition(kafka.topic_heartbeats, p, since_ms) for p in topic.partitions]
        starts = consumer.offsets_for_times(wanted, timeout=timeout_s)
        pending: dict[int, int] = {}  # partition -> offset of the last message to read
        assign: list[TopicPartition] = []
        for tp in starts:
            _low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
            if tp.offset in (OFFSET_END, -1) or tp.offset >= high:
                continue  # nothing that recent
            pending[tp.partition] = high - 1
            assign.append(TopicPartition(tp.topic, tp.partition, tp.offset))
        if not assign:
            return newest
        consumer.assign(assign)
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            partition, error = int(msg.partition() or 0), msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:  # read up to the high watermark
                    pending.pop(partition, None)
                continue
            if int(msg.offset() or 0) >= pending.get(partition, -1):
                pending.pop(partition, None)
            try:
                beat = orjson.loads(msg.value() or b"")
            except orjson.JSONDecodeError:
                continue
            if not isinstance(beat, dict) or beat.get("schema") != HEARTBEAT_V1:
                continue
            at = _parse_at(beat.get("at"))
            component = beat.get("component")
            if at is None or not isinstance(component, str) or at > as_of:
                continue
            if component not in newest or at > newest[component]:
                newest[component] = at
        if pending:
            log.warning("heartbeats read incompletely within %.0f s: partitions %s", timeout_s, sorted(pending))
    finally:
        consumer.close()
    return newest


def dead_letter_count(kafka: KafkaSettings, timeout_s: float) -> int:
    """Messages the dead-letter topic has ever held (sum of its high watermarks); 0 if it does not exist."""
    consumer = _consumer(kafka)
    try:
        topic = consumer.list_topics(kafka.topic_dlq, timeout=timeout_s).topics.get(kafka.topic_dlq)
        if topic is None or topic.error is not None:
            return 0
        return sum(
            consumer.get_watermark_offsets(TopicPartition(kafka.topic_dlq, p), timeout=timeout_s)[1]
            for p in topic.partitions
        )
    finally:
        consumer.close()


def lake_freshness(lake: Lake, as_of: datetime) -> dict[str, datetime]:
    """The newest event time (at or before as_of) per symbol in the lake's stream files of as_of's day."""
    day = as_of.astimezone(UTC).date()  # stream files are dated by their UTC record-time window
    newest: dict[str, datetime] = {}
    cutoff = pa.scalar(as_of.astimezone(UTC), type=pa.timestamp("us", tz="UTC"))
    for dataset, column in FRESHNESS_COLUMNS.items():
        for key in lake.listdir(dt_prefix(dataset, day)):
            if not key.endswith(".parquet"):
                continue
            table = pq.read_table(io.BytesIO(lake.read(key)), columns=["symbol", column])
            ts = pc.cast(table[column], pa.timestamp("us", tz="UTC"))
            table = table.set_column(1, column, ts).filter(pc.less_equal(ts, cutoff))
            if table.num_rows == 0:
                continue
            grouped = table.group_by("symbol").aggregate([(column, "max")])
            for symbol, at in zip(grouped["symbol"].to_pylist(), grouped[f"{column}_max"].to_pylist(), strict=True):
                if at is not None and (symbol not in newest or at > newest[symbol]):
                    newest[symbol] = at
    return newest


def probe(settings: WatchSettings, as_of: datetime) -> dict[str, Any]:
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    session = calendar.session(as_of.astimezone(calendar.NEW_YORK).date())
    market_open = calendar.is_open(as_of)
    heartbeats = read_heartbeats(settings.kafka, as_of, settings.watch_lookback_s, settings.watch_kafka_timeout_s)
    freshness: dict[str, str | None] = {}
    if market_open:
        seen = lake_freshness(Lake(settings.lake), as_of)
        for symbol in sorted(set(settings.expected_symbols()) | set(seen)):
            freshness[symbol] = _iso(seen.get(symbol))
    return {
        "as_of": _iso(as_of),
        "market_open": market_open,
        "session_open": _iso(session.open_utc) if session else None,
        "heartbeats": {c: _iso(at) for c, at in sorted(heartbeats.items())},
        "last_event": freshness,
        "dead_letters": dead_letter_count(settings.kafka, settings.watch_kafka_timeout_s),
        "gold": _gold(Lake(settings.lake)),
    }


def _gold(lake: Lake) -> dict[str, str | None] | None:
    from stockpipe.warehouse.gold_freshness import read_gold_freshness

    state = read_gold_freshness(lake)
    if state is None:
        return None
    return {
        "session": state.session.isoformat() if state.session else None,
        "newest_fetched_at": _iso(state.newest_fetched_at),
        "built_at": _iso(state.built_at),
    }


def probe_json(settings: WatchSettings, as_of: datetime) -> str:
    try:
        return orjson.dumps(probe(settings, as_of)).decode()
    except KafkaException as exc:
        raise RuntimeError(f"Kafka unavailable: {exc}") from None
