"""The consumer's settings, its Prometheus metrics and its run statistics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import Counter, Gauge
from pydantic import Field, SecretStr, field_validator

from stockpipe.settings import KafkaSettings, LakeSettings, StockpipeSettings
from stockpipe.stream.topics import DLQ_MAX_MESSAGE_BYTES
from stockpipe.stream.windows import SESSION_GRID_S

MESSAGES = Counter("stockpipe_consumer_messages_total", "Messages read", ["topic"])
ROWS_WRITTEN = Counter("stockpipe_consumer_rows_written_total", "Rows written to the lake", ["dataset"])
FILES_WRITTEN = Counter("stockpipe_consumer_files_written_total", "Objects written to the lake", ["dataset"])
DLQ = Counter("stockpipe_consumer_dead_letters_total", "Messages sent to the dead-letter topic", ["topic", "reason"])
LAKE_RETRIES = Counter("stockpipe_consumer_lake_write_retries_total", "Lake writes retried")
FENCED = Counter("stockpipe_consumer_fenced_writes_total", "Lake writes refused: another writer was ahead")
COMMIT_FAILURES = Counter("stockpipe_consumer_commit_failures_total", "Offset commits that failed")
BUFFERED = Gauge("stockpipe_consumer_buffered_rows", "Rows waiting for their file to close")
DLQ_REFUSED = Counter(
    "stockpipe_consumer_dead_letters_refused_total",
    "Dead letters the dead-letter topic refused (each is sent again; its partition holds meanwhile)",
    ["error"],
)
DLQ_OUTSTANDING = Gauge("stockpipe_consumer_dead_letters_outstanding", "Dead letters sent and not acknowledged yet")
LAST_FLUSH = Gauge("stockpipe_consumer_last_flush_timestamp_seconds", "When the last object was written")


class ConsumerSettings(StockpipeSettings):
    kafka: KafkaSettings = KafkaSettings()
    lake: LakeSettings = LakeSettings()
    group_id: str = "stockpipe-lake-writer"
    max_records_per_file: int = Field(100_000, ge=1, le=5_000_000)
    window_seconds: int = Field(900, ge=1, le=86_400, description="record-time window of a file; divides a day")
    dlq_window_seconds: int = Field(3600, ge=1, le=86_400, description="the same for dead letters")
    session_window_seconds: int | None = Field(
        30, ge=1, le=1800, description="shorter windows while the NYSE session is open (freshness); divides 1800"
    )
    batch_size: int = Field(20_000, ge=1, le=200_000)
    checker_threads: int = Field(
        2, ge=1, le=16, description="threads checking polled batches (Arrow parsing) while the next is polled"
    )
    poll_timeout_seconds: float = Field(
        0.1, gt=0, le=5, description="how long a poll waits to fill a batch; bounds the latency of a quiet stream"
    )
    metrics_port: int = Field(9102, ge=0, le=65535)
    heartbeat_seconds: float = Field(30.0, gt=0)
    queued_max_kbytes: int = Field(32_768, ge=1024, description="librdkafka's prefetch buffer, bounds memory")
    lake_retry_seconds: float = Field(600.0, gt=0, description="how long a lake write is retried before giving up")
    session_timeout_ms: int = Field(
        45_000, ge=6_000, le=300_000, description="how long the group waits for a silent member before moving its work"
    )
    slack_webhook_url: SecretStr | None = Field(None, description="incidents and recoveries go here")
    alert_min_interval_s: float = Field(60.0, gt=0, description="at least this long between new-incident messages")
    alert_after_retries: int = Field(3, ge=1, description="lake or broker failures in a row that open an incident")
    dlq_alert_ratio: float = Field(0.05, gt=0, le=1, description="dead letters per message above which to alert")
    dlq_alert_min_messages: int = Field(
        100, ge=1, description="messages (accumulated over heartbeats) that one dead-letter rate is judged on"
    )
    dlq_max_message_bytes: int = Field(
        DLQ_MAX_MESSAGE_BYTES,
        ge=64 * 1024,
        description="the dead-letter topic's max.message.bytes (the chart's: 2 MiB); bigger originals are truncated",
    )
    stall_seconds: float = Field(
        120.0, gt=0, description="health fails after this long without a loop turn, unless a known outage is retried"
    )
    dead_letter_hold_seconds: float = Field(
        600.0,
        gt=0,
        description="how long health stays good while a refused dead letter holds its partition (it is retried"
        " beyond that; a restart re-reads it)",
    )
    incident_state_file: Path | None = Field(
        None,
        description="where the Slack incident book is kept across restarts (one incident and one recovery per"
        " outage however often the pod restarts); a writable volume in a pod. Unset: in memory only",
    )
    run_without_fence: bool = Field(
        False,
        description="start even when the object store ignores If-None-Match (no zombie fence): a loud warning",
    )
    crash_loop_restarts: int = Field(
        3, ge=1, le=100, description="starts at the same offset after which the message found there is dead-lettered"
    )

    @field_validator("session_window_seconds")
    @classmethod
    def _divides_the_session_grid(cls, value: int | None) -> int | None:
        if value is not None and SESSION_GRID_S % value:
            raise ValueError("must divide 1800 s, so that files never straddle the open or the close")
        return value

    @field_validator("window_seconds", "dlq_window_seconds")
    @classmethod
    def _divides_a_day(cls, value: int) -> int:
        if 86_400 % value:
            raise ValueError("must divide a day (86400 s), so that files never straddle two dates")
        return value


@dataclass
class _Stats:
    messages: int = 0
    rows: int = 0
    files: int = 0
    dead_letters: int = 0
    started: float = field(default_factory=time.monotonic)
    last_flush: float = 0.0
    first_message: float = 0.0  # perf_counter of the first batch: throughput excludes the group join
    last_loop: float = field(default_factory=time.monotonic)
