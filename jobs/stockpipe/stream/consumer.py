"""`stockpipe consumer`: Kafka -> lake, exactly once.

Protocol (see DESIGN.md): file boundaries come from the log (PartitionFiles); an object is written
atomically under a name derived from its offsets; offsets are committed only after the object is
durable; on assignment each partition resumes after the newest object the lake holds for it (the
lake is the source of truth), or after the committed offset when that is further (rejected and
control records past the last file). A message that fails its contract goes to the dead-letter
topic with the reason, its bytes and its topic/partition/offset, and never blocks its partition.

Crash loops: no input is known to crash the checker (see validation.py), but if one ever did, the
same message would kill every incarnation. The state that survives a crash is the committed
offset's metadata, a marker {"n": crashes in a row, "probe": offsets being checked}: written on
assignment (the same offset committed again) and with every commit; a clean exit or hand-over
clears it. A partition that finds a marker was being worked on when its last owner died: its next
`max_records_per_file + (checker_threads + 2) * batch_size` offsets (everything the dead one could
have held uncommitted) are checked in chunks of 64, each under a marker naming it (a synchronous
commit of the same offset), and a chunk named by a crash is checked one message at a time. Once
the crashes outnumber `crash_loop_restarts` and the marker names a single message, that message
goes to the dead-letter topic as `crashed_consumer` without being parsed again.

Zombies: a consumer paused past its session timeout (SIGSTOP, a long GC, a frozen VM) may wake with
a batch whose partition has moved on. Every object is written with `Lake.write_new` (first write of
a name wins; a retry of identical bytes is a no-op) after checking that the lake does not already
hold the partition past the object's first offset. A refused write is fenced: the batch is given up,
its offsets are not committed, and a synchronous commit asks the group whether the partition is
still ours: if not (a zombie), it is forgotten; if so (the other writer was a zombie that got ahead
of us), it re-reads from the lake's resume point.
"""

from __future__ import annotations

import base64
import errno
import gc
import logging
import operator
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import Counter, Gauge
from pydantic import Field, SecretStr, field_validator
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_delay,
    wait_exponential,
)

from stockpipe.alerts.slack import SlackAlerter
from stockpipe.contracts.messages import DLQ_V1, QUOTE_V1, TRADE_V1, WATERMARK_V1, MessageSchema, iso
from stockpipe.freshness.notify import ObjectNotifier
from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import Lake, ObjectConflict
from stockpipe.observability import start_observability
from stockpipe.settings import KafkaSettings, LakeSettings, StockpipeSettings
from stockpipe.stream.heartbeat import Heartbeat
from stockpipe.stream.lakewriter import PartitionFiles, find_resume_offset
from stockpipe.stream.publisher import close_producer
from stockpipe.stream.validation import BatchValidator, CheckedBatch, Reject, pick
from stockpipe.stream.windows import SESSION_GRID_S

log = logging.getLogger("stockpipe.consumer")
_SECOND = operator.itemgetter(1)
T = TypeVar("T")

MESSAGES = Counter("stockpipe_consumer_messages_total", "Messages read", ["topic"])
ROWS_WRITTEN = Counter("stockpipe_consumer_rows_written_total", "Rows written to the lake", ["dataset"])
FILES_WRITTEN = Counter("stockpipe_consumer_files_written_total", "Objects written to the lake", ["dataset"])
DLQ = Counter("stockpipe_consumer_dead_letters_total", "Messages sent to the dead-letter topic", ["topic", "reason"])
LAKE_RETRIES = Counter("stockpipe_consumer_lake_write_retries_total", "Lake writes retried")
FENCED = Counter("stockpipe_consumer_fenced_writes_total", "Lake writes refused: another writer was ahead")
COMMIT_FAILURES = Counter("stockpipe_consumer_commit_failures_total", "Offset commits that failed")
BUFFERED = Gauge("stockpipe_consumer_buffered_rows", "Rows waiting for their file to close")
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


_MARKER = "stockpipe-crash-marker/1:"
_NOT_SEEN = 2**62  # the position of a partition waiting to re-read from the lake: nothing in flight is fresh
_NOT_OURS = (KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION)


class _Fenced(Exception):
    """A lake write refused because another writer holds the partition's data past this object's start."""

    def __init__(self, obj: StreamObject, why: str) -> None:
        super().__init__(f"write of {obj.key} fenced: {why}")
        self.obj = obj


_CAREFUL_CHUNK = 64


@dataclass
class _Careful:
    """A partition whose previous incarnation died (no clean exit) while it was checking [lo, hi]."""

    lo: int
    hi: int
    crashes: int  # incarnations in a row that died on this partition's watch
    quarantine: int | None = None  # the offset to dead-letter as crashed_consumer, unparsed
    probe: tuple[int, int] | None = None  # what is being checked now

    @property
    def chunk(self) -> int:
        return 1 if self.hi - self.lo < _CAREFUL_CHUNK else _CAREFUL_CHUNK


def _marker(crashes: int, probe: tuple[int, int] | None) -> str:
    return _MARKER + orjson.dumps({"n": crashes, "probe": probe}).decode()


def _read_marker(metadata: str | None) -> tuple[int, tuple[int, int] | None] | None:
    """(crashes so far, the offsets being checked when it died) from a committed offset's metadata."""
    if not metadata or not metadata.startswith(_MARKER):
        return None
    try:
        m = orjson.loads(metadata.removeprefix(_MARKER))
        probe = m.get("probe")
        return int(m["n"]), (int(probe[0]), int(probe[1])) if probe else None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
        return None


@dataclass
class _TopicPlan:
    schema: MessageSchema
    validator: BatchValidator


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


def _timestamps_ms(msgs: Sequence[Message]) -> np.ndarray:
    """The Kafka records' own timestamps (ms; <= 0 when a record has none), mapped in C."""
    return np.fromiter(map(_SECOND, map(Message.timestamp, msgs)), dtype=np.int64, count=len(msgs))


class _TopicBatch:
    """The messages of one topic in one poll, on their way through the checker.

    Checking (Arrow parsing and compute, which release the GIL) runs on a thread of its own while the
    main thread polls the next batch; everything that changes state (dead letters, files, offsets)
    stays on the main thread, in poll order.
    """

    def __init__(
        self,
        topic: str,
        plan: _TopicPlan,
        msgs: list[Message],
        values: list[bytes | None],
        keys: list[bytes | None],
        partitions: np.ndarray,
        offsets: np.ndarray,
        mine: np.ndarray | None,
        quarantine: frozenset[tuple[int, int]] = frozenset(),
    ) -> None:
        self.topic, self.plan = topic, plan
        self.quarantine = quarantine  # (partition, offset) to dead-letter as crashed_consumer, unparsed
        self._all = (msgs, values, keys)
        self._mine = mine
        self.all_partitions = partitions if mine is None else partitions[mine]
        self.all_offsets = offsets if mine is None else offsets[mine]
        self._partitions, self._offsets = partitions, offsets
        # What select() keeps: the fresh messages of this topic.
        self.fresh = np.zeros(0, dtype=bool)
        self.values: Sequence[bytes | None] = []
        self._keys: Sequence[bytes | None] = []
        self._msgs: Sequence[Message] = []
        self.partitions, self.offsets = self.all_partitions, self.all_offsets
        self._future: Future[CheckedBatch] | None = None

    def select(self, fresh: np.ndarray) -> bool:
        """Keep the fresh messages; False when none is."""
        self.fresh = fresh
        msgs, values, keys = self._all
        idx = np.flatnonzero(fresh) if self._mine is None else np.flatnonzero(self._mine)[fresh]
        if not len(idx):
            return False
        self.values, self._keys, self._msgs = pick(values, idx), pick(keys, idx), pick(msgs, idx)
        self.partitions, self.offsets = self._partitions[idx], self._offsets[idx]
        return True

    def _check(self) -> CheckedBatch:
        values = self.values
        held: dict[tuple[int, int], bytes | None] = {}
        if self.quarantine:
            pairs = list(zip(self.partitions.tolist(), self.offsets.tolist(), strict=True))
            held = {pair: values[i] for i, pair in enumerate(pairs) if pair in self.quarantine}
            if held:
                values = [b"" if pair in held else v for pair, v in zip(pairs, values, strict=True)]
        checked = self.plan.validator.check(
            values, self._keys, self.partitions, self.offsets, _timestamps_ms(self._msgs)
        )
        for r in checked.rejects:
            if (r.partition, r.offset) in held:
                r.reason, r.value = "crashed_consumer", held[(r.partition, r.offset)]  # never parsed again
        return checked

    def start(self, checker: ThreadPoolExecutor | None) -> None:
        if checker is None:
            future: Future[CheckedBatch] = Future()
            future.set_result(self._check())
            self._future = future
        else:
            self._future = checker.submit(self._check)

    def result(self) -> CheckedBatch:
        assert self._future is not None
        return self._future.result()


class LakeConsumer:
    def __init__(
        self, settings: ConsumerSettings, stop_event: threading.Event | None = None, alerter: SlackAlerter | None = None
    ) -> None:
        self.settings = settings
        url = settings.slack_webhook_url.get_secret_value() if settings.slack_webhook_url else None
        self.alerter = alerter or SlackAlerter(url, settings.alert_min_interval_s)
        self._failures: dict[str, int] = {}
        self._rate_mark = (0, 0)  # (messages, dead letters) at the last dead-letter-rate check
        self.lake = Lake(settings.lake)
        k = settings.kafka
        self.plans: dict[str, _TopicPlan] = {
            topic: _TopicPlan(schema, BatchValidator(schema))
            for topic, schema in ((k.topic_quotes, QUOTE_V1), (k.topic_trades, TRADE_V1), (k.topic_dlq, DLQ_V1))
        }
        self.partitions: dict[tuple[str, int], PartitionFiles] = {}
        self.stop_event = stop_event or threading.Event()
        self.stats = _Stats()
        self._to_commit: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}  # what this incarnation last committed
        self._careful: dict[tuple[str, int], _Careful] = {}
        self._resync: set[tuple[str, int]] = set()  # fenced partitions still ours: re-read from the lake
        self._dlq_pending = 0
        self._dlq_unmarked = False
        self.consumer = Consumer(
            {
                **k.client_config(),
                "group.id": settings.group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "queued.max.messages.kbytes": settings.queued_max_kbytes,
                "fetch.queue.backoff.ms": 20,  # the 1 s default stalls a consumer that keeps up
                "max.poll.interval.ms": int(settings.lake_retry_seconds * 1000) + 60_000,
                "session.timeout.ms": settings.session_timeout_ms,
                "isolation.level": "read_committed",
            }
        )
        self.dlq = Producer(
            {
                **k.client_config(),
                "enable.idempotence": True,
                "acks": "all",
                "message.max.bytes": 10 * 1024 * 1024,
                "linger.ms": 50,
            }
        )
        self.heartbeat = Heartbeat(k, "consumer", settings.heartbeat_seconds)
        self.notifier = ObjectNotifier(self.dlq, k.topic_lake_objects)  # tells the bronze loader what is new
        self._checker = ThreadPoolExecutor(max_workers=settings.checker_threads, thread_name_prefix="checker")
        # Polled and being checked, oldest first; completed in poll order, checker_threads polls behind.
        self._pending: deque[list[_TopicBatch]] = deque()

    # -- partition assignment ------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            found = consumer.committed(partitions, timeout=30)
            committed = {(tp.topic, tp.partition): tp.offset for tp in found}
            markers = {(tp.topic, tp.partition): _read_marker(tp.metadata) for tp in found}
        except KafkaException as exc:
            if self.stop_event.is_set() or exc.args[0].code() == KafkaError._DESTROY:
                return  # closing
            raise
        for tp in partitions:
            plan = self.plans[tp.topic]
            in_lake = self._with_lake_retries(
                f"lookup of {tp.topic}[{tp.partition}]",
                lambda: find_resume_offset(self.lake, plan.schema.dataset, tp.topic, tp.partition),  # noqa: B023
            )
            candidates = [o for o in (in_lake, committed.get((tp.topic, tp.partition))) if o is not None and o >= 0]
            resume = max(candidates) if candidates else None
            tp.offset = resume if resume is not None else OFFSET_BEGINNING
            self.partitions[(tp.topic, tp.partition)] = PartitionFiles(
                schema=plan.schema,
                topic=tp.topic,
                partition=tp.partition,
                next_offset=resume or 0,
                position=resume or 0,
                max_records=self.settings.max_records_per_file,
                window_s=self.settings.dlq_window_seconds if plan.schema is DLQ_V1 else self.settings.window_seconds,
                session_window_s=None if plan.schema is DLQ_V1 else self.settings.session_window_seconds,
                flush=self._write_object,
            )
            log.info(
                "assigned %s[%d]: resume at %s (lake %s, committed %s)",
                tp.topic,
                tp.partition,
                resume,
                in_lake,
                committed.get((tp.topic, tp.partition)),
            )
        consumer.assign(partitions)
        for tp in partitions:
            state = self.partitions[(tp.topic, tp.partition)]
            self._mark_start(consumer, tp.topic, tp.partition, state.position, markers.get((tp.topic, tp.partition)))

    def _mark_start(
        self,
        consumer: Consumer,
        topic: str,
        partition: int,
        start: int,
        last: tuple[int, tuple[int, int] | None] | None,
    ) -> None:
        """Read the last owner's marker: a crash on its watch makes this partition careful. Then mark the start."""
        key = (topic, partition)
        self._careful.pop(key, None)
        if last is not None and last[1] is None:
            try:
                end = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            except KafkaException:
                end = None
            if end is not None and start >= end:
                last = None  # nothing past the start: whatever killed the last owner, it was not this partition
        if last is None:  # a clean exit (or a first start) before us
            self._commit_marker(consumer, topic, partition, start, _marker(0, None))
            return
        crashes, probe = last[0] + 1, last[1]
        s = self.settings
        lo, hi = probe or (start, start + s.max_records_per_file + (s.checker_threads + 2) * s.batch_size)
        careful = self._careful[key] = _Careful(lo, hi, crashes, probe=probe)
        if crashes > s.crash_loop_restarts and lo == hi:
            careful.quarantine = lo
        log.error(
            "%s[%d]: its last owner died while checking %s (crash %d in a row): offsets %d..%d checked carefully%s",
            topic,
            partition,
            f"offsets {probe[0]}..{probe[1]}" if probe else f"from offset {start}",
            crashes,
            lo,
            hi,
            f"; offset {lo} goes to the dead-letter topic as crashed_consumer"
            if careful.quarantine is not None
            else "",
        )
        self._commit_marker(consumer, topic, partition, start, _marker(crashes, probe))

    def _commit_marker(self, consumer: Consumer, topic: str, partition: int, offset: int, metadata: str) -> None:
        """A synchronous commit of an offset already safe to commit, for its metadata (survives a crash)."""
        try:
            consumer.commit(offsets=[TopicPartition(topic, partition, offset, metadata=metadata)], asynchronous=False)
            self._committed[(topic, partition)] = offset
        except KafkaException as exc:
            log.warning("crash marker for %s[%d] not committed (%s)", topic, partition, exc.args[0].name())

    def _marker_of(self, key: tuple[str, int]) -> str:
        careful = self._careful.get(key)
        return _marker(careful.crashes, careful.probe) if careful else _marker(0, None)

    def _clear_markers(self) -> None:
        """A clean hand-over: no crash at these starts."""
        for (topic, partition), offset in list(self._committed.items()):
            if (topic, partition) in self.partitions:
                self._commit_marker(self.consumer, topic, partition, offset, "")
        self._careful.clear()

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._complete_pending()
        self._commit_pending()
        self._clear_markers()
        self._forget(partitions, "revoked")

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget(partitions, "lost")

    def _forget(self, partitions: list[TopicPartition], why: str) -> None:
        for tp in partitions:
            state = self.partitions.pop((tp.topic, tp.partition), None)
            self._to_commit.pop((tp.topic, tp.partition), None)
            self._committed.pop((tp.topic, tp.partition), None)
            self._careful.pop((tp.topic, tp.partition), None)
            self._resync.discard((tp.topic, tp.partition))
            if state:
                log.info(
                    "%s %s[%d]: %d buffered rows dropped, re-read by the next owner",
                    why,
                    tp.topic,
                    tp.partition,
                    state.buffered,
                )
                state.drop()

    # -- writing ---------------------------------------------------------------------------------
    def _with_lake_retries(self, what: str, call: Callable[[], T]) -> T:
        """The object store may be away for a while: retry with back-off rather than lose the partition."""

        def before_sleep(state: RetryCallState) -> None:
            LAKE_RETRIES.inc()
            exc = state.outcome.exception() if state.outcome else None
            log.warning("lake %s failed (%s); retrying", what, exc)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                # Nothing half-written stays (the temporary is removed); polling waits with the write.
                self._failed(
                    "lake-space-full",
                    f"no space left for the lake's files ({self.settings.lake.url}): this consumer takes no"
                    " new work and commits nothing until space returns",
                )
            else:
                self._failed(
                    "lake-unreachable", f"the lake ({self.settings.lake.url}) fails: {exc}; writes and commits wait"
                )

        retrying = retry(
            # A refused write is an answer, not an outage; and only errors (Exception) are retried.
            retry=retry_if_exception_type(Exception) & retry_if_not_exception_type(_Fenced),
            wait=wait_exponential(multiplier=0.5, max=15),
            stop=stop_after_delay(self.settings.lake_retry_seconds),
            before_sleep=before_sleep,
            reraise=True,
        )
        result = retrying(call)()
        self._recovered("lake-unreachable", "the lake answers again: writing and committing")
        self._recovered("lake-space-full", "the lake has space again: writing and committing")
        return result

    def _failed(self, key: str, detail: str) -> None:
        """One more failure in a row; enough of them open a Slack incident (once)."""
        self._failures[key] = self._failures.get(key, 0) + 1
        if self._failures[key] == self.settings.alert_after_retries:
            self.alerter.incident(key, f":rotating_light: stockpipe consumer: {detail}", kind="consumer")

    def _recovered(self, key: str, detail: str) -> None:
        if self._failures.pop(key, 0):
            self.alerter.resolve(key, f":white_check_mark: stockpipe consumer: {detail}")

    def _check_dead_letter_rate(self) -> None:
        """Dead letters per message over the last dlq_alert_min_messages or more, against the threshold.

        Checked at heartbeats; the count accumulates across them until it is large enough to judge, so a
        slow stream (few messages a heartbeat) is judged too and the verdict does not hang on the timing.
        """
        messages, letters = self.stats.messages, self.stats.dead_letters
        seen, dead = messages - self._rate_mark[0], letters - self._rate_mark[1]
        if seen < self.settings.dlq_alert_min_messages:
            return
        self._rate_mark = (messages, letters)
        if dead / seen > self.settings.dlq_alert_ratio:
            self.alerter.incident(
                "dead-letter-rate",
                f":warning: stockpipe consumer: {dead} of {seen} messages went to the dead-letter topic"
                f" ({dead / seen:.1%}, threshold {self.settings.dlq_alert_ratio:.1%}): a producer sends bad data",
                kind="consumer",
            )
        else:
            self.alerter.resolve("dead-letter-rate", ":white_check_mark: stockpipe consumer: dead-letter rate normal")

    def _write_fenced(self, obj: StreamObject, data: bytes) -> None:
        """Write an object unless another writer holds the partition past its start (raises _Fenced)."""
        ahead = find_resume_offset(self.lake, obj.dataset, obj.topic, obj.partition)
        if ahead is not None and ahead > obj.first_offset and not self.lake.exists(obj.key):
            raise _Fenced(obj, f"the lake holds {obj.topic}[{obj.partition}] up to offset {ahead - 1} already")
        try:
            if not self.lake.write_new(obj.key, data):
                log.info("%s is in the lake already with the same bytes (a retry, or another writer): kept", obj.key)
        except ObjectConflict as exc:
            raise _Fenced(obj, "the name is taken by other bytes") from exc

    def _write_object(self, obj: StreamObject, data: bytes, rows: int) -> None:
        self._with_lake_retries(f"write of {obj.key}", lambda: self._write_fenced(obj, data))
        ROWS_WRITTEN.labels(obj.dataset).inc(rows)
        FILES_WRITTEN.labels(obj.dataset).inc()
        LAST_FLUSH.set_to_current_time()
        self.stats.rows += rows
        self.stats.files += 1
        self.stats.last_flush = time.perf_counter()
        self.notifier.written(obj, rows)  # a hint only: a lost notice is found by the loader's listing
        # Durable: now (and only now) the offsets it covers may be committed.
        self._to_commit[(obj.topic, obj.partition)] = obj.last_offset + 1
        self._commit_pending()

    def _send_dead_letters(self, topic: str, rejects: list[Reject]) -> None:
        if topic == self.settings.kafka.topic_dlq:
            for r in rejects:  # never loop a dead letter back into its own topic
                log.error("unreadable dead letter at %s[%d]@%d: %s", topic, r.partition, r.offset, r.reason)
            return
        for r in rejects:
            value = {
                "schema": DLQ_V1.name,
                "reason": r.reason,
                "source_topic": topic,
                "source_partition": r.partition,
                "source_offset": r.offset,
                "original_b64": base64.b64encode(r.value or b"").decode(),
                "original_key": r.key.decode("utf-8", "replace") if r.key is not None else None,
                "detected_at": iso(datetime.fromtimestamp(max(r.timestamp_ms, 0) / 1000, UTC)),
            }
            self._produce_dlq(f"{topic}/{r.partition}/{r.offset}", orjson.dumps(value), r.reason)
            self._dlq_unmarked = True
            DLQ.labels(topic, r.reason.split(":", 1)[0]).inc()
            self.stats.dead_letters += 1
            log.warning("dead letter %s[%d]@%d: %s", topic, r.partition, r.offset, r.reason)

    def _produce_dlq(self, key: str, value: bytes, reason: str) -> None:
        headers: list[tuple[str, str | bytes | None]] = [("reason", reason.encode())]
        while True:
            try:
                self.dlq.produce(self.settings.kafka.topic_dlq, value, key=key.encode(), headers=headers)
                self._dlq_pending += 1
                return
            except BufferError:
                self.dlq.poll(0.5)

    def _mark_dead_letters(self) -> None:
        """Dead letters are rare, so time in their topic is moved on by watermarks we put in it ourselves.

        The watermark is in the log, so every incarnation closes the same DLQ files.
        """
        if not self._dlq_unmarked:
            return
        topic = self.settings.kafka.topic_dlq
        value = orjson.dumps({"schema": WATERMARK_V1, "watermark_ts": iso(datetime.now(UTC))})
        for p in self.dlq.list_topics(topic, timeout=10).topics[topic].partitions:
            self.dlq.produce(topic, value, partition=p)
        self._dlq_unmarked = False

    def _commit_pending(self) -> None:
        if not self._to_commit:
            return
        if self._dlq_pending:
            # Offsets past a rejected message may be committed only once its dead letter is safe.
            while self.dlq.flush(10) > 0:
                log.warning("dead-letter topic not acknowledging yet; holding commits")
            self._dlq_pending = 0
        offsets = [TopicPartition(t, p, o, metadata=self._marker_of((t, p))) for (t, p), o in self._to_commit.items()]
        for attempt in range(30):
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
                for tp in offsets:
                    self._committed[(tp.topic, tp.partition)] = tp.offset
                self._to_commit.clear()
                return
            except KafkaException as exc:
                COMMIT_FAILURES.inc()
                err = exc.args[0]
                if err.code() in (
                    KafkaError.UNKNOWN_MEMBER_ID,
                    KafkaError.ILLEGAL_GENERATION,
                    KafkaError.REBALANCE_IN_PROGRESS,
                    KafkaError._NO_OFFSET,
                ):
                    # Not ours any more: the objects are in the lake and the next owner resumes from it.
                    log.warning("commit skipped (%s); the lake keeps the progress", err.name())
                    self._to_commit.clear()
                    return
                log.warning("commit failed (%s), attempt %d", err.name(), attempt + 1)
                time.sleep(min(0.2 * 2**attempt, 5.0))
        raise RuntimeError("offsets could not be committed for a minute; the lake keeps the progress")

    # -- the loop --------------------------------------------------------------------------------
    def _process(self, msgs: list[Message]) -> None:
        """Check and route one batch, start to end."""
        self._complete(self._prepare(msgs))

    def _prepare(self, msgs: list[Message]) -> list[_TopicBatch]:
        """Pick what is new in a batch, per topic, and start checking it on the checker thread."""
        # Column-wise from the start: each accessor is mapped over the batch as an unbound method (a C
        # loop, no bound-method or tuple per message), since per-message Python is the cost here.
        # Errors and timestamps are looked at only where needed (a None value; a rejected message).
        values: list[bytes | None] = list(map(Message.value, msgs))
        if None in values:
            msgs = self._drop_errors(msgs, values)
            if not msgs:
                return []
            values = list(map(Message.value, msgs))
        n = len(msgs)
        topics = list(map(Message.topic, msgs))
        keys: list[bytes | None] = list(map(Message.key, msgs))
        partitions = np.fromiter(map(Message.partition, msgs), dtype=np.int64, count=n)
        offsets = np.fromiter(map(Message.offset, msgs), dtype=np.int64, count=n)
        topic_names = set(topics)
        batches = []
        for topic in topic_names:
            plan = self.plans.get(topic or "")
            if plan is None or topic is None:
                continue
            mine = np.asarray(topics, dtype=object) == topic if len(topic_names) > 1 else None
            quarantine = frozenset(
                (p, c.quarantine) for (t, p), c in self._careful.items() if t == topic and c.quarantine is not None
            )
            batch = _TopicBatch(topic, plan, msgs, values, keys, partitions, offsets, mine, quarantine)
            if batch.select(self._fresh(topic, batch.all_partitions, batch.all_offsets)):
                batch.start(self._checker)
                batches.append(batch)
        return batches

    def _careful_pass(self, msgs: list[Message]) -> None:
        """A poll with messages of careful partitions: those in their careful range in chunks, each under a marker."""
        self._complete_pending()  # nothing in flight
        by_key: dict[tuple[str, int], list[Message]] = {}
        rest: list[Message] = []
        for m in msgs:
            key = (m.topic() or "", m.partition() or 0)
            (by_key.setdefault(key, []) if key in self._careful else rest).append(m)
        if rest:
            self._complete(self._prepare(rest))
        for key, part in by_key.items():
            careful = self._careful.get(key)
            i = 0
            while careful is not None and i < len(part):
                offset = int(part[i].offset() or 0)
                if offset > careful.hi:
                    break
                chunk = [m for m in part[i : i + careful.chunk] if int(m.offset() or 0) <= careful.hi]
                careful.probe = (offset, int(chunk[-1].offset() or 0))
                start = self._committed.get(key)
                if start is not None:
                    self._commit_marker(self.consumer, key[0], key[1], start, self._marker_of(key))
                self._complete(self._prepare(chunk))
                i += len(chunk)
                careful = self._careful.get(key)  # a revoke may have ended it
            if careful is not None and (
                i < len(part) or (careful.probe is not None and careful.probe[1] >= careful.hi)
            ):
                del self._careful[key]  # past the careful range: back to full batches
                start = self._committed.get(key)
                if start is not None:
                    self._commit_marker(self.consumer, key[0], key[1], start, _marker(0, None))
            if i < len(part):
                self._complete(self._prepare(part[i:]))

    def _fresh(self, topic: str, partitions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Which messages are new to this incarnation: not yet seen (a redelivery after a seek) and still ours."""
        fresh = np.zeros(len(partitions), dtype=bool)
        for (t, p), state in self.partitions.items():
            if t == topic:
                fresh |= (partitions == p) & (offsets >= state.position)
        return fresh

    def _complete(self, batches: list[_TopicBatch]) -> None:
        """Dead letters and lake files for prepared batches, in order."""
        for batch in batches:
            fresh = self._fresh(batch.topic, batch.all_partitions, batch.all_offsets)
            if not np.array_equal(fresh, batch.fresh):
                # Positions or ownership moved since the batch was prepared (a rebalance): pick again.
                batch.result()
                if not batch.select(fresh):
                    continue
                batch.start(None)
            checked = batch.result()
            for r in checked.rejects:
                if r.reason == "crashed_consumer" and (careful := self._careful.get((batch.topic, r.partition))):
                    careful.quarantine = None
            MESSAGES.labels(batch.topic).inc(len(batch.values))
            self.stats.messages += len(batch.values)
            self._send_dead_letters(batch.topic, checked.rejects)
            self._route(batch.topic, checked, batch.partitions, batch.offsets)

    def _complete_pending(self, keep: int = 0) -> None:
        """Complete polled batches, oldest first, until `keep` are left in flight."""
        while len(self._pending) > keep:
            self._complete(self._pending.popleft())

    def _drop_errors(self, msgs: list[Message], values: list[bytes | None]) -> list[Message]:
        """Consumer errors arrive as messages without a value: raise the fatal ones, log and skip the rest."""
        bad = [i for i, v in enumerate(values) if v is None and msgs[i].error() is not None]
        for i in bad:
            err = msgs[i].error()
            assert err is not None
            if err.fatal():
                raise KafkaException(err)
            log.warning("consumer error: %s", err)
            if err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE):
                self._failed("kafka-unreachable", f"Kafka ({self.settings.kafka.bootstrap_servers}) unreachable: {err}")
        skip = set(bad)
        return [m for i, m in enumerate(msgs) if i not in skip] if skip else msgs

    def _route(self, topic: str, checked: CheckedBatch, partitions: np.ndarray, offsets: np.ndarray) -> None:
        valid = checked.valid
        present = np.unique(partitions)
        if len(present) > 1:
            # One stable sort by partition, then a zero-copy slice per partition (offset order kept).
            part_col = valid["kafka_partition"].to_numpy()
            if np.any(part_col[1:] < part_col[:-1]):
                order = np.argsort(part_col, kind="stable")
                valid, part_col = valid.take(order), part_col[order]
            bounds = np.searchsorted(part_col, present, side="left"), np.searchsorted(part_col, present, side="right")
        for i, p in enumerate(present):
            state = self.partitions.get((topic, int(p)))
            if state is None:
                continue
            rows = valid if len(present) == 1 else valid.slice(bounds[0][i], bounds[1][i] - bounds[0][i])
            marks = [(w.offset, w.ts) for w in checked.watermarks if w.partition == p]
            try:
                state.add(rows, marks)
            except _Fenced as fenced:
                self._give_up(state, fenced)
                continue
            state.position = int(offsets[partitions == p].max()) + 1
            if state.buffered == 0 and state.position > state.next_offset:
                # Nothing open: rejects and watermarks past the last object may be committed too.
                self._to_commit[(topic, int(p))] = state.position
        BUFFERED.set(sum(s.buffered for s in self.partitions.values()))

    def _give_up(self, state: PartitionFiles, fenced: _Fenced) -> None:
        """A fenced write: give the batch up, commit nothing for it, and find out whether the partition is ours."""
        FENCED.inc()
        key = (state.topic, state.partition)
        rows = state.buffered
        state.drop()
        self._to_commit.pop(key, None)
        if not self._still_owner(key):
            log.warning(
                "%s; %s[%d] belongs to another consumer now: %d rows given up, nothing committed", fenced, *key, rows
            )
            self._forget([TopicPartition(*key)], "fenced")
            return
        log.warning("%s; %d rows given up, nothing committed; %s[%d] re-reads from the lake", fenced, rows, *key)
        state.position = _NOT_SEEN  # what is in flight for it is stale now
        self._resync.add(key)

    def _still_owner(self, key: tuple[str, int]) -> bool:
        """Ask the group (a synchronous commit of what is committed already) whether a partition is still ours."""
        offset = self._committed.get(key)
        if offset is None:
            return True  # nothing to ask with; re-reading from the lake is safe either way
        try:
            self.consumer.commit(
                offsets=[TopicPartition(*key, offset, metadata=self._marker_of(key))], asynchronous=False
            )
        except KafkaException as exc:
            return exc.args[0].code() not in _NOT_OURS
        return True

    def _resync_partitions(self) -> None:
        """Fenced partitions that are still ours resume after the lake's newest object, like an assignment."""
        self._complete_pending()  # nothing older in flight: what the seek re-reads comes next, in order
        for key in sorted(self._resync):
            state = self.partitions.get(key)
            if state is None:
                continue
            resume = self._with_lake_retries(
                f"lookup of {key[0]}[{key[1]}]",
                lambda: find_resume_offset(self.lake, state.schema.dataset, *key),  # noqa: B023
            )
            state.next_offset = state.position = resume or 0
            try:
                self.consumer.seek(TopicPartition(*key, state.position))
            except KafkaException as exc:
                log.warning("seek of %s[%d] failed (%s); it is left to the next assignment", *key, exc)
                self._forget([TopicPartition(*key)], "unseekable")
                continue
            log.info("%s[%d] re-reads from offset %d (the lake's resume point)", *key, state.position)
        self._resync.clear()

    def health(self) -> tuple[bool, dict[str, Any]]:
        age = time.monotonic() - self.stats.last_loop
        return age < 120, {"loop_age_s": round(age, 1), "partitions": len(self.partitions), "rows": self.stats.rows}

    def run(self, max_idle_s: float | None = None) -> _Stats:
        """Consume until stopped (SIGTERM) or, when max_idle_s is set, until nothing arrives for that long."""
        k = self.settings.kafka
        self.consumer.subscribe(
            [k.topic_quotes, k.topic_trades, k.topic_dlq],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        idle_since = time.monotonic()
        gc_tuned = False
        try:
            while not self.stop_event.is_set():
                msgs = self.consumer.consume(
                    num_messages=self.settings.batch_size, timeout=self.settings.poll_timeout_seconds
                )
                self.stats.last_loop = time.monotonic()
                if msgs and "kafka-unreachable" in self._failures and msgs[-1].error() is None:
                    self._recovered("kafka-unreachable", "Kafka answers again")
                if msgs:
                    if not gc_tuned:
                        _tune_gc()
                        gc_tuned = True
                    if not self.stats.first_message:
                        self.stats.first_message = time.perf_counter()
                    idle_since = self.stats.last_loop
                    if self._careful:  # a partition whose last owner died: small chunks, each under a marker
                        self._careful_pass(msgs)
                    else:
                        # Check this batch on a checker thread while older ones are finished here.
                        self._pending.append(self._prepare(msgs))
                        self._complete_pending(keep=self.settings.checker_threads)
                else:
                    self._complete_pending()
                    if not self.partitions:
                        idle_since = self.stats.last_loop  # idleness counts from the assignment on
                    elif max_idle_s is not None and self.stats.last_loop - idle_since > max_idle_s:
                        break
                if self._resync:
                    self._resync_partitions()
                self.dlq.poll(0)
                self._commit_pending()
                if self.heartbeat.beat_if_due(
                    {
                        "rows": self.stats.rows,
                        "files": self.stats.files,
                        "buffered": sum(s.buffered for s in self.partitions.values()),
                    }
                ):
                    self._mark_dead_letters()
                    self._check_dead_letter_rate()
            # SIGTERM: what was polled is checked and routed; complete objects are written and committed,
            # partial ones are re-read later.
            self._complete_pending()
            self._commit_pending()
            self._clear_markers()  # a clean exit: no crash at these starts
        finally:
            self._commit_pending()
            if dropped := close_producer(self.dlq, 30):
                log.error("%d dead letters or notices undelivered at exit (their offsets are uncommitted)", dropped)
            self.heartbeat.close()
            self._checker.shutdown(wait=True, cancel_futures=True)
            self.consumer.close()
        return self.stats


def _tune_gc() -> None:
    """Every poll makes tens of thousands of short-lived, GC-tracked Message objects.

    With CPython's default thresholds they survive a few young collections while their batch is
    being worked on, get promoted, and trigger full collections over the whole heap every few polls
    (measured: 15-25% of the loop). Freezing what start-up made and collecting the young generation
    less often keeps cycle collection, at a cost that no longer grows with the batch.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def run_consumer(settings: ConsumerSettings) -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    from stockpipe.stream.topics import ensure_pipeline_topics

    ensure_pipeline_topics(settings.kafka)
    consumer = LakeConsumer(settings, stop)
    server = start_observability(settings.metrics_port, consumer.health)
    log.info("consumer started: lake %s, group %s", settings.lake.url, settings.group_id)
    stats = consumer.run()
    if server:
        server.stop()
    log.info(
        "consumer stopped: %d messages, %d rows in %d objects, %d dead letters",
        stats.messages,
        stats.rows,
        stats.files,
        stats.dead_letters,
    )
