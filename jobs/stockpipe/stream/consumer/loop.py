"""`LakeConsumer`: its parts composed, the write of a closed file, health, and the loop."""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from typing import Any

from stockpipe.lake.layout import StreamObject
from stockpipe.observability import start_observability
from stockpipe.stream.consumer.batches import Batches
from stockpipe.stream.consumer.core import _Stopped
from stockpipe.stream.consumer.deadletters import DeadLetters
from stockpipe.stream.consumer.fence import Fence
from stockpipe.stream.consumer.markers import CrashMarkers
from stockpipe.stream.consumer.offsets import Offsets
from stockpipe.stream.consumer.settings import FILES_WRITTEN, LAST_FLUSH, ROWS_WRITTEN, ConsumerSettings, _Stats
from stockpipe.stream.publisher import close_producer

log = logging.getLogger("stockpipe.consumer")


class LakeConsumer(Batches, Offsets, Fence, DeadLetters, CrashMarkers):
    def _write_object(self, obj: StreamObject, data: bytes, rows: int) -> None:
        # The lake is the resume point: no object past a dead letter its topic has not taken yet.
        self._hold_for_dead_letters((obj.topic, obj.partition), obj.last_offset)
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

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while making progress, or while retrying a known outage within its budget.

        A lake write or lookup blocks the loop for up to lake_retry_seconds; a refused dead letter holds
        it for as long as its topic refuses. A restart would not help either (the new incarnation blocks in
        the same place), so they fail health only once past their budget.
        """
        now = time.monotonic()
        age = now - max(self.stats.last_loop, self._outage_over)
        stall = self.settings.stall_seconds
        budgets = {"lake": self.settings.lake_retry_seconds, "dead-letters": self.settings.dead_letter_hold_seconds}
        outages = {name: round(now - since, 1) for name, since in list(self._outages.items())}
        retrying = any(age_s < budgets.get(name, 0) + stall for name, age_s in outages.items())
        detail: dict[str, Any] = {"loop_age_s": round(age, 1), "partitions": len(self.partitions)}
        detail.update(rows=self.stats.rows, waiting_on=outages, dead_letters_outstanding=len(self._letters))
        return age < stall or retrying, detail

    def run(self, max_idle_s: float | None = None) -> _Stats:
        """Consume until stopped (SIGTERM) or, when max_idle_s is set, until nothing arrives for that long."""
        k = self.settings.kafka
        idle_since = time.monotonic()
        gc_tuned = False
        try:
            self._check_fence()
            self.consumer.subscribe(
                [k.topic_quotes, k.topic_trades, k.topic_dlq],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
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
        except _Stopped as stopped:
            log.warning("%s: nothing is committed past it; the next owner sends it again", stopped)
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
