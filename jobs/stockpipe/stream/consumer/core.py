"""The state the consumer's parts share, lake retries and the incidents they open.

Each part of `LakeConsumer` is a mixin over `_Core`: the state lives here, in one place, and the
methods one part calls on another are declared here (implemented by the part that owns them), so
that no part imports another.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_delay,
    wait_exponential,
)

from stockpipe.alerts.slack import SlackAlerter
from stockpipe.contracts.messages import DLQ_V1, QUOTE_V1, TRADE_V1, MessageSchema
from stockpipe.lake.layout import StreamObject
from stockpipe.lake.notices import ObjectNotifier
from stockpipe.lake.store import Lake
from stockpipe.stream.consumer.settings import LAKE_RETRIES, ConsumerSettings, _Stats
from stockpipe.stream.heartbeat import Heartbeat
from stockpipe.stream.lakewriter import PartitionFiles
from stockpipe.stream.validation import BatchValidator, CheckedBatch, Reject

if TYPE_CHECKING:  # annotations only: the parts import this module, never the reverse
    import numpy as np

    from stockpipe.stream.consumer.batches import _TopicBatch
    from stockpipe.stream.consumer.deadletters import _Letter
    from stockpipe.stream.consumer.fence import _Fenced
    from stockpipe.stream.consumer.markers import _Careful

log = logging.getLogger("stockpipe.consumer")
T = TypeVar("T")


class _Stopped(Exception):
    """Asked to stop while waiting for something the next step needs: the loop ends, nothing is committed past it."""


class _Answer(Exception):
    """An answer from the lake, not an outage: never retried (e.g. a fenced write)."""


@dataclass
class _TopicPlan:
    schema: MessageSchema
    validator: BatchValidator


class _Core(ABC):
    def __init__(
        self, settings: ConsumerSettings, stop_event: threading.Event | None = None, alerter: SlackAlerter | None = None
    ) -> None:
        self.settings = settings
        url = settings.slack_webhook_url.get_secret_value() if settings.slack_webhook_url else None
        self.alerter = alerter or SlackAlerter(
            url, settings.alert_min_interval_s, state_file=settings.incident_state_file
        )
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
        # Dead letters sent and not acknowledged yet, by (source topic, partition, offset).
        self._letters: dict[tuple[str, int, int], _Letter] = {}
        self._refused_since: float | None = None
        # Known outages being retried within their budget (health stays good): name -> since (monotonic).
        self._outages: dict[str, float] = {}
        # When the last outage ended: the loop's stall counts from there (see health()).
        self._outage_over = 0.0
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
                "message.max.bytes": settings.dlq_max_message_bytes,  # the DLQ topic's max.message.bytes
                "linger.ms": 50,
            }
        )
        self.heartbeat = Heartbeat(k, "consumer", settings.heartbeat_seconds)
        self.notifier = ObjectNotifier(self.dlq, k.topic_lake_objects)  # tells the bronze loader what is new
        self._checker = ThreadPoolExecutor(max_workers=settings.checker_threads, thread_name_prefix="checker")
        # Polled and being checked, oldest first; completed in poll order, checker_threads polls behind.
        self._pending: deque[list[_TopicBatch]] = deque()

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
            retry=retry_if_exception_type(Exception) & retry_if_not_exception_type(_Answer),
            wait=wait_exponential(multiplier=0.5, max=15),
            stop=stop_after_delay(self.settings.lake_retry_seconds),
            before_sleep=before_sleep,
            reraise=True,
        )
        # A lake call blocks the loop for at most its retry budget: health allows it that long.
        with self._outage("lake"):
            result = retrying(call)()
        self._recovered("lake-unreachable", "the lake answers again: writing and committing")
        self._recovered("lake-space-full", "the lake has space again: writing and committing")
        return result

    @contextlib.contextmanager
    def _outage(self, name: str) -> Iterator[None]:
        """A known outage being waited out. When it ends the loop has just moved: without marking that, a
        probe between one long lake call and the loop's next turn saw a stalled loop and no outage."""
        self._outages.setdefault(name, time.monotonic())
        try:
            yield
        finally:
            self._outage_over = time.monotonic()
            self._outages.pop(name, None)

    def _failed(self, key: str, detail: str) -> None:
        """One more failure in a row; enough of them open a Slack incident (once)."""
        self._failures[key] = self._failures.get(key, 0) + 1
        if self._failures[key] == self.settings.alert_after_retries:
            self.alerter.incident(key, f":rotating_light: stockpipe consumer: {detail}", kind="consumer")

    def _recovered(self, key: str, detail: str) -> None:
        # An incident may have been opened by an earlier incarnation (the book survives restarts).
        if self._failures.pop(key, 0) or key in self.alerter.open_incidents:
            self.alerter.resolve(key, f":white_check_mark: stockpipe consumer: {detail}")

    # -- abstract: implemented by the part that owns them (LakeConsumer composes them all) -------
    @abstractmethod
    def _complete_pending(self, keep: int = 0) -> None: ...

    @abstractmethod
    def _complete(self, batches: list[_TopicBatch]) -> None: ...

    @abstractmethod
    def _prepare(self, msgs: list[Message]) -> list[_TopicBatch]: ...

    @abstractmethod
    def _route(self, topic: str, checked: CheckedBatch, partitions: np.ndarray, offsets: np.ndarray) -> None: ...

    @abstractmethod
    def _commit_marker(self, consumer: Consumer, topic: str, partition: int, offset: int, metadata: str) -> None: ...

    @abstractmethod
    def _marker_of(self, key: tuple[str, int]) -> str: ...

    @abstractmethod
    def _clear_markers(self) -> None: ...

    @abstractmethod
    def _mark_start(
        self,
        consumer: Consumer,
        topic: str,
        partition: int,
        start: int,
        last: tuple[int, tuple[int, int] | None] | None,
    ) -> None: ...

    @abstractmethod
    def _forget(self, partitions: list[TopicPartition], why: str) -> None: ...

    @abstractmethod
    def _give_up(self, state: PartitionFiles, fenced: _Fenced) -> None: ...

    @abstractmethod
    def _write_fenced(self, obj: StreamObject, data: bytes) -> None: ...

    @abstractmethod
    def _send_dead_letters(self, topic: str, rejects: list[Reject]) -> None: ...

    @abstractmethod
    def _commit_pending(self) -> None: ...

    @abstractmethod
    def _commit_cap(self, source: tuple[str, int], offset: int) -> int: ...

    @abstractmethod
    def _hold_for_dead_letters(self, source: tuple[str, int], last_offset: int) -> None: ...

    @abstractmethod
    def _write_object(self, obj: StreamObject, data: bytes, rows: int) -> None: ...
