"""Offsets: assignment (resume from the lake), revocation and loss, and commits after durability."""

from __future__ import annotations

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from stockpipe.contracts.messages import DLQ_V1
from stockpipe.stream.consumer.core import _Core
from stockpipe.stream.consumer.markers import _read_marker
from stockpipe.stream.consumer.settings import COMMIT_FAILURES
from stockpipe.stream.lakewriter import PartitionFiles, find_resume_offset

log = logging.getLogger("stockpipe.consumer")


class Offsets(_Core):
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
            for letter in [k for k in self._letters if k[:2] == (tp.topic, tp.partition)]:
                del self._letters[letter]  # the next owner re-reads from before it and sends it again
            if state:
                log.info(
                    "%s %s[%d]: %d buffered rows dropped, re-read by the next owner",
                    why,
                    tp.topic,
                    tp.partition,
                    state.buffered,
                )
                state.drop()

    def _commit_pending(self) -> None:
        if not self._to_commit:
            return
        self.dlq.poll(0)  # the dead letters' delivery reports so far
        # Never past a dead letter not acknowledged yet: what is held stays pending for a later commit.
        capped = {key: self._commit_cap(key, o) for key, o in self._to_commit.items()}
        ready = {key: o for key, o in capped.items() if o > self._committed.get(key, -1)}
        held = {key: o for key, o in self._to_commit.items() if capped[key] < o}
        if not ready:
            return
        offsets = [TopicPartition(t, p, o, metadata=self._marker_of((t, p))) for (t, p), o in ready.items()]
        for attempt in range(30):
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
                for tp in offsets:
                    self._committed[(tp.topic, tp.partition)] = tp.offset
                self._to_commit = held
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
